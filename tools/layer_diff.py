"""Where does a compiled artifact part from its fake-quant reference? Tap every quantized layer and compare.

    python -m mxc.tools.layer_diff ARTIFACT [--taps in|out|both] [--only REGEX] [--keep DIR] [--all]

Recompiles the artifact's model.py (same options) wrapped so that forward hooks
return, besides the model's outputs, the input and/or output of every quantized
layer (`nn.Linear`/`nn.Conv2d` modules named in the manifest), then runs it and
`mxc.runtime.reference.fake_quant_forward` on the same wrapper and compares tap
by tap, in execution order. For each tap it prints rel_l2, max_abs, the fraction
of bit-equal values and the first differing row (token); for a layer input with a
quantized activation it also quantizes both sides with `mxc.numerics` and prints
the NV tensor scales and the number of blocks whose element values (+0 = -0) or
scale codes differ; for a
layer with both taps it recomputes the layer from the *compiled* input
(fake_quant(x_c) @ fake_quant(W)^T + b) and compares with the compiled output,
which separates a layer's own error from upstream drift ("self" column).

Caveat: a tapped layer output has two users, so mxq-fuse no longer folds the
following relu/silu/gelu into the layer's epilogue; `--taps in` leaves every
fusion as it was (the final-output line says whether the tapped program still
reproduces the artifact's discrepancy).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

import torch

PREFIX = "model."

_WRAPPER = '''\
"""layer_diff wrapper of {orig}: the model's outputs, then the tapped tensors."""
import importlib.util
import torch

_spec = importlib.util.spec_from_file_location("_layer_diff_orig", {orig!r})
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)
TAPS = {taps!r}


class Tapped(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model
        self._buf, self.labels = [], []
        for name, kind in TAPS:
            m = model.get_submodule(name)
            if kind == "in":
                m.register_forward_pre_hook(self._hook_in(name))
            else:
                m.register_forward_hook(self._hook_out(name))

    def _hook_in(self, name):
        def hook(mod, args):
            self._buf.append(args[0]); self.labels.append((name, "in"))
        return hook

    def _hook_out(self, name):
        def hook(mod, args, out):
            self._buf.append(out); self.labels.append((name, "out"))
        return hook

    def forward(self, *inputs):
        self._buf, self.labels = [], []
        out = self.model(*inputs)
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        return (*outs, *self._buf)


def get_model():
    return Tapped(_mod.get_model())


def get_example_inputs():
    return _mod.get_example_inputs()
'''


def _stats(c: torch.Tensor, r: torch.Tensor) -> dict:
    c64, r64 = c.double(), r.double()
    d = c64 - r64
    rn = float(r64.norm())
    rows = (d.abs().reshape(-1, c.shape[-1]) > 0).any(-1) if c.dim() else d.abs().reshape(1) > 0
    bad = torch.nonzero(rows).flatten()
    return {
        "rel_l2": float(d.norm()) / rn if rn else float(d.norm()),
        "max_abs": float(d.abs().max()) if d.numel() else 0.0,
        "equal": float((c == r).double().mean()),
        "first_row": int(bad[0]) if bad.numel() else None,
        "rows_differing": int(bad.numel()),
        "rows": int(rows.numel()),
    }


def _codes(x: torch.Tensor, spec) -> dict:
    from mxc.numerics import quantize
    return quantize(x.to(torch.float32), spec, axis=-1)


def _act_detail(xc: torch.Tensor, xr: torch.Tensor, spec) -> dict:
    """Both sides' activation quantization: NV tensor scales, differing element codes and blocks."""
    qc, qr = _codes(xc, spec), _codes(xr, spec)
    vals = qc.element_values() != qr.element_values()  # by value: a +0 / -0 code pair is no flip
    el = vals | (qc.scales != qr.scales).repeat_interleave(spec.format.block_size, -1)
    blocks = el.unflatten(-1, (-1, spec.format.block_size)).any(-1)
    out = {"codes_diff": int(vals.sum()), "blocks_diff": int(blocks.sum()),
           "blocks": int(blocks.numel())}
    if qc.tensor_scale is not None:
        out["s_dec_compiled_input"] = float(qc.tensor_scale)
        out["s_dec_reference_input"] = float(qr.tensor_scale)
        ac = xc.abs().flatten().argmax()
        ar = xr.abs().flatten().argmax()
        out["amax_compiled"], out["amax_reference"] = float(xc.abs().max()), float(xr.abs().max())
        out["amax_at_compiled"] = list(map(int, torch.unravel_index(ac, xc.shape)))
        out["amax_at_reference"] = list(map(int, torch.unravel_index(ar, xr.shape)))
    return out


def _self_check(model, name: str, x_c: torch.Tensor, y_c: torch.Tensor, fmts) -> dict | None:
    """The layer recomputed by the reference's rule from the compiled input, vs the compiled output."""
    from mxc.numerics import fake_quantize
    mod = model.get_submodule(PREFIX + name)
    if not isinstance(mod, torch.nn.Linear):
        return None
    act, wfmt = fmts
    w = mod.weight.detach().float()
    w = fake_quantize(w, wfmt, axis=-1) if wfmt is not None else w
    x = fake_quantize(x_c.float(), act, axis=-1) if act is not None else x_c.float()
    y = torch.nn.functional.linear(x, w, None if mod.bias is None else mod.bias.detach().float())
    return _stats(y_c, y)


def layer_diff(artifact: str | Path, taps: str = "in", only: str | None = None,
               keep: str | None = None) -> dict:
    from mxc.compiler.driver import compile_file
    from mxc.compiler.frontend import load_model_file
    from mxc.options import Options
    from mxc.runtime.artifact import load
    from mxc.runtime.reference import fake_quant_forward, layer_formats

    artifact = Path(artifact)
    manifest = json.loads((artifact / "manifest.json").read_text())
    orig = manifest["model"]
    fmts = layer_formats(manifest)
    base = load_model_file(orig).model
    names = [n for n in fmts if (not only or re.search(only, n))]
    mods = dict(base.named_modules())
    names = [n for n in names if n in mods]
    kinds = {"in": ["in"], "out": ["out"], "both": ["in", "out"]}[taps]
    tap_list = [(n, k) for n in names for k in kinds]
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="layer_diff_"))
    work.mkdir(parents=True, exist_ok=True)
    wrapper = work / "tapped_model.py"
    wrapper.write_text(_WRAPPER.format(orig=orig, taps=tap_list))
    out_dir = work / "artifact"
    res = compile_file(wrapper, out_dir, Options.from_dict(manifest["options"]))
    spec = load_model_file(wrapper)
    art = load(out_dir)
    compiled = art(*spec.example_inputs)
    ref = fake_quant_forward(spec.model, spec.example_inputs, res.manifest)
    with torch.no_grad():
        spec.model(*spec.example_inputs)  # eager run: the hooks' execution order, with labels
    labels = [(n.removeprefix(PREFIX), k) for n, k in spec.model.labels]
    n_out = len(compiled) - len(labels)
    # the tapped program's final output vs the untapped artifact's
    orig_art = load(artifact)
    orig_out = orig_art(*orig_art.example_inputs())[0]
    report = {"artifact": str(artifact), "wrapper_artifact": str(out_dir), "taps": [],
              "final_tapped_vs_reference": _stats(compiled[0], ref[0]),
              "final_untapped_vs_reference": _stats(orig_out, ref[0])}
    by_key = {}
    for (name, kind), c, r in zip(labels, compiled[n_out:], ref[n_out:]):
        row = {"layer": name, "tap": kind, "shape": list(c.shape), **_stats(c, r)}
        act = fmts.get(name, (None, None))[0]
        if kind == "in" and act is not None and row["max_abs"] > 0:
            row.update(_act_detail(c, r, act))
        by_key[(name, kind)] = c
        if kind == "out" and (name, "in") in by_key:
            s = _self_check(spec.model, name, by_key[(name, "in")], c, fmts.get(name, (None, None)))
            if s is not None:
                row["self_rel_l2"], row["self_max_abs"] = s["rel_l2"], s["max_abs"]
        report["taps"].append(row)
    return report


def _print(report: dict, show_all: bool) -> None:
    def line(s):
        return (f"rel_l2 {s['rel_l2']:.3e} max_abs {s['max_abs']:.3e} equal {100 * s['equal']:.2f}% "
                f"rows {s['rows_differing']}/{s['rows']} first {s['first_row']}")
    print(f"final output, untapped artifact vs reference: {line(report['final_untapped_vs_reference'])}")
    print(f"final output, tapped program   vs reference: {line(report['final_tapped_vs_reference'])}")
    first = None
    for row in report["taps"]:
        parted = row["rel_l2"] > 1e-5
        if parted and first is None:
            first = row
        if show_all or parted or row is report["taps"][0]:
            extra = ""
            if "self_rel_l2" in row:
                extra += f"  self rel_l2 {row['self_rel_l2']:.2e}"
            if "blocks_diff" in row:
                extra += (f"  act blocks differing {row['blocks_diff']}/{row['blocks']}"
                          f" elements {row['codes_diff']}")
            if "s_dec_compiled_input" in row:
                extra += (f"  S_dec(q(x_c)) {row['s_dec_compiled_input']:.9g} S_dec(q(x_r)) "
                          f"{row['s_dec_reference_input']:.9g}  amax_c {row['amax_compiled']:.9g}"
                          f"@{row['amax_at_compiled']} amax_r {row['amax_reference']:.9g}"
                          f"@{row['amax_at_reference']}")
            print(f"{row['layer']:45s} {row['tap']:3s} {line(row)}{extra}")
    flip = next((r for r in report["taps"] if r.get("blocks_diff", 0) > 0), None)
    if flip is not None:
        print(f"first quantized activation with blocks differing: {flip['layer']} "
              f"({flip['blocks_diff']} blocks; quantize both sides with mxc.numerics to see them)")
    if first is None:
        print("no tap parts from the reference by more than rel_l2 1e-5")
    else:
        print(f"first tap parting (rel_l2 > 1e-5): {first['layer']} {first['tap']}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mxc.tools.layer_diff", description=__doc__.split("\n")[0])
    p.add_argument("artifact")
    p.add_argument("--taps", choices=["in", "out", "both"], default="in")
    p.add_argument("--only", help="regex on layer names to tap")
    p.add_argument("--keep", help="directory for the wrapper model.py and its artifact (default: a temp dir)")
    p.add_argument("--all", action="store_true", help="print every tap, not only those that part")
    p.add_argument("--json", help="write the full report here")
    a = p.parse_args(argv)
    report = layer_diff(a.artifact, a.taps, a.only, a.keep)
    _print(report, a.all)
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

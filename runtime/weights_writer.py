"""`mxc write-weights OUT`: write an artifact's `.irpa` on the machine that runs it, from model.py.

An artifact of a large model is mostly weights; the program is small. `mxc compile` records in the manifest
how each parameter of the `.irpa` is computed from model.py's parameters (`weights_recipes`, in archive
order), so a host that received only the program (model.vmfb, manifest.json, inputs.pt, kernels/ ...)
and has model.py (and torch, numpy, iree-base-runtime: no compiler) writes the same `.irpa` itself:

    {"op": "param", "name": N}                       model.py's parameter / buffer N (its state_dict)
    {"op": "f32" | "reshape" | "transpose", "of": R}  the casts and views the passes saw through
    {"op": "quantize", "of": R, "spec": S, "s_enc": E, "part": 0|1|2}
                                                     mxc.numerics.quantize(R, S, s_enc=E): packed elements,
                                                     scale codes or the FP32 tensor scale
    {"op": "checkpoint", "param": P, "part": 0|1|2}   a --checkpoint layer's codes, scales or tensor scale
    {"op": "pack", "layout": L, "fmt", "k", "n", "kb", "elements": R, "scales": R, "part": 0|1}
                                                     a CUDA kernel's weight layout (mxc.kernels.operands)
    {"op": "concat", "rows": [N...], "parts": [R...]}  the parts' bytes side by side along N (the layers of
                                                     one decode launch, mxq.launch_group)

The archive is then checked against the sha256 `mxc compile` recorded for model.irpa: the bytes are
those mxc compile wrote, or the file is not kept. A parameter without a recipe (a GPTQ-calibrated weight,
which needs the calibration data; an anonymous constant of the graph) is refused by name. An artifact
compiled with --checkpoint takes the checkpoint again (its codes and its other tensors, as the compile
applied them).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from mxc.errors import ArtifactError, MxcError

from .fingerprint import file_sha256


class _Evaluator:
    def __init__(self, state: dict[str, torch.Tensor], imported: dict | None = None):
        self.state, self.imported = state, imported or {}
        self.memo: dict[str, object] = {}

    def __call__(self, r: dict) -> torch.Tensor:
        key = json.dumps(r, sort_keys=True)
        if key not in self.memo:
            self.memo[key] = self._eval(r)
        return self.memo[key]

    def _quantized(self, r: dict):
        from mxc.numerics import FormatSpec, quantize

        key = json.dumps({**r, "part": None}, sort_keys=True)
        if key not in self.memo:
            w = self(r["of"]).to(torch.float32)
            self.memo[key] = quantize(w, FormatSpec.parse(r["spec"]), axis=-1, s_enc=r["s_enc"])
        return self.memo[key]

    def _imported(self, r: dict):
        """A --checkpoint layer's codes, as mxq-quantize-weights stored them (mxc.runtime.interchange)."""
        w = self.imported.get(r["param"])
        if w is None:
            raise MxcError(f"the artifact's weight '{r['param']}' has codes from a --checkpoint, and none was "
                           "applied (or it has no such layer): give the checkpoint with --checkpoint DIR")
        return w.qtensor()

    def _eval(self, r: dict) -> torch.Tensor:
        op = r["op"]
        if op == "param":
            if r["name"] not in self.state:
                raise MxcError(f"model.py has no parameter or buffer '{r['name']}', which the artifact was "
                               "compiled from; is this the model.py it was compiled from?")
            return self.state[r["name"]].detach()
        if op == "f32":
            return self(r["of"]).to(torch.float32)
        if op == "reshape":
            return self(r["of"]).reshape(r["shape"])
        if op == "transpose":
            return self(r["of"]).transpose(*r["dims"])
        if op in ("quantize", "checkpoint"):
            qt = self._quantized(r) if op == "quantize" else self._imported(r)
            return [qt.packed_elements(), qt.scales, qt.tensor_scale.reshape(()) if qt.tensor_scale is not None
                    else None][r["part"]]
        if op == "pack":
            from mxc.kernels.operands import layout_of
            from mxc.numerics import get_format, unpack_fp6, unpack_nibbles

            key = json.dumps({**r, "part": None}, sort_keys=True)
            if key not in self.memo:
                bits = get_format(r["fmt"]).element.bits
                packed = self(r["elements"]).contiguous().view(torch.uint8)
                codes = {4: unpack_nibbles, 6: unpack_fp6}.get(bits, lambda c: c)(packed)
                scales = self(r["scales"]).contiguous().view(torch.uint8).reshape(r["n"], r["kb"])
                self.memo[key] = layout_of(r["layout"]).pack(codes.reshape(r["n"], -1), scales, r["fmt"], r["k"])
            return self.memo[key][r["part"]]
        if op == "concat":
            return torch.cat([self(p).contiguous().view(torch.uint8).reshape(n, -1)
                              for p, n in zip(r["parts"], r["rows"])])
        raise MxcError(f"unknown weight recipe op '{op}' (written by a newer mxc?)")


def write_weights(path: str | Path, model_py: str | Path | None = None, checkpoint: str | Path | None = None) -> dict:
    """Write `path`/model.irpa from model.py (the manifest's, or `model_py`) and, for an artifact compiled with
    --checkpoint, that checkpoint (the manifest's, or `checkpoint`); checked against the compile's sha256.
    Returns {"file", "parameters", "bytes"}."""
    from iree import runtime as rt

    from mxc.compiler.frontend import entry_points, load_model_file, make_buffers_persistent
    from mxc.options import Options

    from .artifact import read_manifest

    path = Path(path)
    if not (path / "manifest.json").is_file():
        raise ArtifactError(f"{path}: no manifest.json (copy the artifact directory without its .irpa, then run "
                            "mxc write-weights there)")
    manifest = read_manifest(path)
    recipes = manifest.get("weights_recipes")
    if not recipes:
        raise ArtifactError(f"{path}: the manifest records no weights_recipes (compiled by an older mxc, or with "
                            "--compile-to); recompile with mxc compile")
    missing = [n for n, r in recipes.items() if r is None]
    if missing:
        raise ArtifactError(f"{path}: {len(missing)} parameter(s) cannot be recomputed from model.py, e.g. "
                            f"'{missing[0]}' (a GPTQ-calibrated weight needs the calibration data, an anonymous "
                            "constant the export); copy the model.irpa mxc compile wrote instead")
    spec = load_model_file(model_py or manifest["model"], checkpoint or manifest["options"].get("checkpoint") or "")
    state: dict[str, torch.Tensor] = {}
    programs = entry_points(spec, Options.from_dict(manifest["options"]))
    for module, _ in programs.values():
        make_buffers_persistent(module)
        state.update(module.state_dict())
    imported = spec.imported and spec.imported.in_program(spec.model, next(iter(programs.values()))[0])[1]
    ev = _Evaluator(state, imported)
    index = rt.ParameterIndex()
    total = 0
    for name, recipe in recipes.items():
        t = ev(recipe).detach().contiguous()
        total += t.numel() * t.element_size()
        index.add_buffer(name, t.reshape(-1).view(torch.uint8).numpy())
    target = path / manifest["parameters"]["file"]
    tmp = target.with_name(target.name + ".tmp")
    index.create_archive_file(str(tmp))
    want = manifest["files"].get(target.name)
    if want is not None and file_sha256(tmp) != want:
        tmp.unlink()
        raise ArtifactError(f"{path}: the weights written from {spec.path} differ from the ones mxc compile wrote "
                            "(their sha256 differs): model.py must give the same weights here (seed it; same "
                            "torch and transformers versions for random initialisations), or copy model.irpa")
    tmp.replace(target)
    return {"file": str(target), "parameters": len(recipes), "bytes": total}

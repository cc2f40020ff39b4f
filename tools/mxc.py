"""The `mxc` command: compile, run, generate, inspect, formats, export, write-weights."""

from __future__ import annotations

import argparse
import json
import sys


def _add_compile(sub):
    from mxc.numerics.options import ERROR_METRICS, HADAMARD_SIZES, ROUNDINGS, SCALE_RULES
    from mxc.options import ACT_DTYPES, CONTRACTION_CHOICES, DEFAULT_MAX_SEQ_LEN
    from mxc.targets import TARGET_NAMES, targets

    p = sub.add_parser("compile", help="compile model.py to an artifact directory")
    p.add_argument("model", help="a model.py defining get_model() and get_example_inputs()")
    p.add_argument("-o", "--output", required=True, help="artifact directory to write")
    # --target is checked by Options, whose message lists the targets
    p.add_argument("--target", default="cpu", metavar="{" + ",".join(TARGET_NAMES) + "}",
                   help="; ".join(f"{t.name}: {t.help}" for t in targets()))
    p.add_argument("--format", default=None, help="format for every quantizable layer (see `mxc formats`; "
                   "default mxfp4)")
    p.add_argument("--policy", default="", help="TOML policy file with per-layer formats")
    p.add_argument("--auto", default="",
                   metavar="bits=B|speedup=Y|time=T[,acts=w|wa|any][,same_weights=1][,formats=F+G]",
                   help="choose every layer's format and options from calibration data under a budget: B "
                        "bits/weight, scales counted, or (cuda targets) an estimated GEMM time of at most the "
                        "high-precision time / Y, or T (e.g. 300us); layers a --policy rule names are kept as "
                        "it says; writes OUT/policy.toml")
    p.add_argument("--calibrate", default="", metavar="rtn|gptq|mr-gptq[{damp=D,actorder=0|1,scales=rule|mse,rotate=always|auto}]",
                   help="choose the weights' codes from calibration data (model.py's get_calibration_inputs()): "
                        "GPTQ through each format's own quantizer, or MR-GPTQ (GPTQ with a block Hadamard "
                        "rotation); default rtn, round to nearest")
    p.add_argument("--generate", action="store_true",
                   help="a causal LM for `mxc generate`: prefill and decode entry points over a KV cache "
                        "(model.py's get_model() returns a transformers causal LM; get_tokenizer() its tokenizer)")
    p.add_argument("--max-seq-len", type=_positive_int, default=0, metavar="N",
                   help=f"--generate: the KV cache's length, prompt and new tokens (default {DEFAULT_MAX_SEQ_LEN})")
    p.add_argument("--checkpoint", default="", metavar="DIR",
                   help="a compressed-tensors checkpoint of model.py's model (NVFP4, MXFP4, MXFP8; e.g. from "
                        "llm-compressor or mxc export): its quantized layers' codes and scales are compiled as "
                        "they are, its quantization_config is the policy (OUT/policy.toml), its other tensors "
                        "replace model.py's")
    p.add_argument("--kv-cache", default="", metavar="F",
                   help="--generate: the KV cache holds format F's values (e.g. mxfp8, nvfp4): each position's "
                        "keys and values quantized along the head dimension as they are written (default: the "
                        "model's dtype)")
    p.add_argument("--weights-only", action="store_true", help="quantize weights only; activations stay f32")
    p.add_argument("--act-format", default=None, help="activations' format when it differs from --format "
                   "(same block size, e.g. --format mxfp4 --act-format mxfp8)")
    p.add_argument("--scale-rule", default="floor", choices=SCALE_RULES,
                   help="MX scale rule (FORMATS.md); floor is the OCP spec's")
    p.add_argument("--rounding", default="rne", choices=ROUNDINGS, help="element rounding")
    p.add_argument("--seed", type=int, default=0, help="seed of stochastic rounding")
    p.add_argument("--error-metric", default="mse", choices=ERROR_METRICS,
                   help="block choice metric of nvfp4_4over6 and if4")
    p.add_argument("--hadamard", type=_hadamard, default=None,
                   metavar="{" + ",".join(map(str, HADAMARD_SIZES)) + ",none}",
                   help="Hadamard rotation block along K (default: none)")
    p.add_argument("--contraction", default="auto", choices=CONTRACTION_CHOICES,
                   help="CPU contraction: amx (AMX bf16 tiles, exact products), dpbf16 (fma, with the layers whose "
                        "operands are exact in bf16 on AVX512-BF16 dot products), fma (mxc's float32 FMA kernel, "
                        "AVX2), decomposed (IREE's float32 linalg), scaled-generic; auto (default): amx where "
                        "this CPU has AMX, else dpbf16 where it has AVX512-BF16, else fma where it has AVX2 and "
                        "FMA, else decomposed")
    p.add_argument("--act-dtype", default="f32", choices=ACT_DTYPES,
                   help="weight-only layers: round activations to bf16 before the GEMM, as cuda-sm90's kernels do")
    p.add_argument("--dump-compilation-phases-to", "--dump-ir", dest="dump", default=None,
                   help="write every phase's IR as <stem>.<N>.<phase>.mlir")
    p.add_argument("--compile-to", default="vmfb", help="stop after this phase")
    p.add_argument("--mlir-print-ir-after-all", action="store_true", help="print the IR after every pass")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")


def _hadamard(text: str) -> int | None:
    """--hadamard's value: a size, or none."""
    from mxc.numerics.options import HADAMARD_SIZES

    sizes = {str(n): n for n in HADAMARD_SIZES}
    if text != "none" and text not in sizes:
        raise argparse.ArgumentTypeError(f"invalid choice: '{text}' (choose from {', '.join(sizes)}, none)")
    return sizes.get(text)


def _cmd_compile(a) -> int:
    import dataclasses

    from mxc.compiler import knobs
    from mxc.compiler.driver import compile_file
    from mxc.options import Options, OptionsError

    if a.auto and a.format is not None:
        raise OptionsError("--format and --auto exclude each other: --auto chooses the formats (name its "
                           "candidates with --auto ...,formats=mxfp4+nvfp4)")
    if a.checkpoint and a.format is not None:
        raise OptionsError("--format and --checkpoint exclude each other: the checkpoint's quantization_config "
                           "chooses the formats (layers it leaves in float stay in high precision)")
    a.format = a.format or "mxfp4"
    opts = Options(**{f.name: getattr(a, f.name) for f in dataclasses.fields(Options)})  # the flags' names
    res = compile_file(
        a.model, a.output, opts,
        dump_dir=a.dump or knobs.dump_dir(),
        compile_to=a.compile_to,
        print_ir_after_all=a.mlir_print_ir_after_all or knobs.print_ir_after_all(),
        progress=not a.quiet,
    )
    rows = [r for r in res.manifest["layers"] if not _is_table(r)]
    tables = [r for r in res.manifest["layers"] if _is_table(r)]
    q = sum(1 for r in rows if r.get("status") == "quantized")
    done = "" if a.compile_to == "vmfb" else f"stopped after phase {a.compile_to}; "
    kept: dict[str, list[str]] = {}  # reason -> layers kept in high precision not by a policy's "none"
    for r in rows:
        why = r.get("decision", "")
        if not r.get("status", "").startswith("quantized") and not why.startswith("none: kept in high precision"):
            kept.setdefault(why.removesuffix(": stays in high precision"), []).append(r["layer"])
    note = "".join(f"; kept in high precision: {_first3(ls)} ({why})" for why, ls in kept.items())
    if tables:
        note += "; embedding tables in high precision: " + _first3(
            [f"{r['layer']} ({_size(r['weight_bytes'])})" if r.get("weight_bytes") is not None else r["layer"]
             for r in tables])
    print(f"wrote {a.output} ({done}{q} of {len(rows)} layers quantized{note}; "
          f"`mxc inspect {a.output}` for the table)")
    if "auto" in res.manifest:
        print(_auto_summary(res.manifest["auto"], a.output))
    cal = [r["calibration"] for r in rows if "calibration" in r]
    if cal:
        before, after = (sum(c[k] for c in cal) / len(cal) for k in ("output_error_rtn", "output_error"))
        print(f"calibrated {len(cal)} layers ({cal[0]['method']}, {cal[0]['tokens']} tokens, "
              f"{res.timings.get('calibration', 0):.1f} s): mean relative output error {before:.4g} (round to "
              f"nearest) -> {after:.4g}")
    return 0


def _auto_table(auto: dict) -> str:
    """`mxc inspect`'s --auto section: the budget, then each layer's choice, score and runner-up."""
    from mxc.selection.report import split_text

    b, c = auto["budget"], auto["calibration"]
    head = (f"--auto {b['text']}: {auto['effective_bits']:.4f} bits/weight (scales counted) over "
            f"{len(auto['layers'])} searched layers; objective {auto['objective']}; calibration "
            f"{c['batches']} batch(es) of {c['shapes']} from {c['source']}{split_text(c)}, loss: {c['loss']}; "
            f"policy: {auto['policy']}")
    timed = "speed" in auto
    if timed:
        head += "\n" + _speed_text(auto["speed"]) + f"\ncost model: {auto['speed']['cost_model']['source']}"
    rows = [[layer, d["choice"], f"{d['bits_per_weight']:.2f}",
             *([f"{d['estimated_gemm_s'] * 1e6:.2f}"] if timed else []), f"{d['score']:.4g}",
             "" if d["runner_up"] is None else d["runner_up"]["choice"],
             "" if d["runner_up"] is None else f"{d['runner_up']['score']:.4g}"
             + ("" if d["runner_up"]["scored"] else " (est.)"),
             f"{d['scored']}/{d['candidates']}"]
            for layer, d in auto["layers"].items()]
    table = text_table(["layer", "choice", ">bits/w", *([">est. us"] if timed else []), ">score",
                        f"runner-up (no more {'time' if timed else 'bits'})", ">its score",
                        ">scored"], rows)
    pinned = "".join(f"\npinned by --policy: {k} = {v}" for k, v in auto["pinned"].items())
    return f"{head}\n{_check_text(auto.get('check', {}))}\n{table}{pinned}"


def _check_text(check: dict) -> str:
    """The end-to-end checks of --auto (selection/check.py): each class's spec and the final verdict."""
    from mxc.selection.report import final_text

    lines = [f"  {cls}: {rep['chosen']} (held-out loss of the uniform policies: "
             + ", ".join(f"{k} {v:.5g}" for k, v in rep["losses"].items()) + ")"
             for cls, rep in check.get("representatives", {}).items()]
    if check.get("dominated"):
        lines.append("  dominated on every layer by the estimates, not checked: " + "; ".join(check["dominated"]))
    final = check.get("final")
    return "one spec per cost class:\n" + "\n".join(lines) + (f"\nfinal check: {final_text(final)}" if final else "")


def _auto_summary(auto: dict, out: str) -> str:
    """One paragraph on what --auto chose: bits used, the choices by count, the time it took."""
    counts: dict[str, int] = {}
    for d in auto["layers"].values():
        counts[d["choice"]] = counts.get(d["choice"], 0) + 1
    mix = ", ".join(f"{n} x {c}" for c, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    t = auto["timings_s"]
    speed = f"; {_speed_text(auto['speed'])}" if "speed" in auto else ""
    return (f"--auto {auto['budget']['text']}: {auto['effective_bits']:.3f} bits/weight over {len(auto['layers'])} "
            f"layers ({mix}){speed}; calibration {t['calibrate']:.1f}s, scoring {t['score']:.1f}s "
            f"({1000 * t['per_layer_mean']:.0f} ms/layer), end-to-end checks {t.get('check', 0):.1f}s, solve "
            f"{t['solve']:.2f}s; {_final_text(auto)}policy: {out}/policy.toml")


def _final_text(auto: dict) -> str:
    from mxc.selection.report import final_text

    final = auto.get("check", {}).get("final")
    return f"{final_text(final)}; " if isinstance(final, dict) and final["kept"] == "uniform" else ""


def _speed_text(speed: dict) -> str:
    return (f"estimated GEMM time {speed['estimated_gemm_s'] * 1e6:.1f} us on {speed['target']} "
            f"({speed['estimated_speedup']:.2f}x the high-precision {speed['high_precision_gemm_s'] * 1e6:.1f} us; "
            f"budget {speed['budget_gemm_s'] * 1e6:.1f} us)")


def _first3(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" +{len(names) - 3} more" if len(names) > 3 else "")


def _is_table(row: dict) -> bool:
    """A manifest row of an embedding table (a lookup kept in high precision), not of a layer."""
    return row.get("op") == "embedding"


def _size(n: int) -> str:
    """Bytes for people: 512 B, 16.0 KiB, 2.3 MiB, 1.1 GiB."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _add_run(sub):
    p = sub.add_parser("run", help="run an artifact on its example inputs (or --inputs)")
    p.add_argument("artifact")
    p.add_argument("--inputs", default=None, metavar="FILE.pt",
                   help="run on these inputs instead (torch.save of a tensor or a tuple of tensors); sizes that "
                        "model.py's get_dynamic_shapes() made dynamic may take any value in their range")
    p.add_argument("--device", default="cpu", help="cpu, or cuda for cuda-sm90 artifacts (IREE's CUDA driver)")
    p.add_argument("--compare", action="store_true", help="compare with the fake-quant reference and torch f32")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _read_inputs(path: str) -> tuple:
    """`mxc run --inputs`: a torch.save'd tensor or tuple/list of tensors (checked against the artifact's inputs
    when it runs)."""
    import torch

    from mxc.errors import InputError

    try:
        inputs = torch.load(path)
    except Exception as e:
        raise InputError(f"--inputs {path}: cannot be read by torch.load ({type(e).__name__}: {e})") from e
    inputs = (inputs,) if isinstance(inputs, torch.Tensor) else inputs
    if not isinstance(inputs, (tuple, list)) or not all(isinstance(t, torch.Tensor) for t in inputs):
        raise InputError(f"--inputs {path}: expected a tensor or a tuple of tensors (torch.save((x,), path)), "
                         f"found {type(inputs).__name__}")
    return tuple(inputs)


def _cmd_run(a) -> int:
    import time

    from mxc.runtime.artifact import load

    art = load(a.artifact, a.device)
    inputs = art.example_inputs() if a.inputs is None else _read_inputs(a.inputs)
    t = time.perf_counter()
    outputs = art(*inputs)
    result = {"outputs": [{"shape": list(o.shape)} for o in outputs], "run_ms": (time.perf_counter() - t) * 1e3}
    if a.compare:
        from mxc.runtime.compare import compare

        compared = compare(art, outputs, inputs)
        for entry, c in zip(result["outputs"], compared.pop("outputs")):
            entry.update(c)  # every output's comparison; the top-level keys are the worst output's
        result.update(compared)
    if a.json:
        print(json.dumps(result))
        return 0 if not a.compare or result["vs_reference"]["within_tolerance"] else 1
    print(f"ran {a.artifact}: {len(outputs)} output(s) {[o['shape'] for o in result['outputs']]} "
          f"in {result['run_ms']:.1f} ms")
    if not a.compare:
        return 0
    for i, out in enumerate(result["outputs"]):
        if len(outputs) > 1:
            print(f"  output {i} {out['shape']}:")
        for key in ("vs_reference", "vs_torch", "reference_vs_torch"):
            e = out[key]
            bad = f"  {e['nonfinite_mismatches']} NaN/Inf mismatches" if e["nonfinite_mismatches"] else ""
            print(f"  {key:20s} max_abs {e['max_abs_error']:.3e}  rel_l2 {e['rel_l2_error']:.3e}  "
                  f"sqnr {e['sqnr_db']:.1f} dB{bad}")
        ref = out["vs_reference"]
        print(f"  {100 * ref['fraction_within_rtol']:.2f}% of outputs equal the reference within "
              f"{ref['abs_tolerance']:.2e}; check [{ref['rule']}, tolerance {ref['tolerance']:.2e}]: "
              f"{'pass' if ref['within_tolerance'] else 'FAIL'}")
        if "verdict" in ref:
            print(f"  note: passes as a {ref['verdict']}")
    ok, worst = result["vs_reference"]["within_tolerance"], result["vs_reference"]["output"]
    if len(outputs) > 1:
        print(f"  all {len(outputs)} outputs: {'pass' if ok else f'FAIL (output {worst} first)'}")
    if "hint" in result:
        print(f"  hint: {result['hint']}")
    return 0 if ok else 1


def _add_inspect(sub):
    p = sub.add_parser("inspect", help="print the per-layer table of an artifact")
    p.add_argument("artifact")
    from mxc.targets import targets

    estimated = [t for t in targets() if t.roofline]
    p.add_argument("--target", default=None, choices=[t.name for t in estimated],
                   help="also estimate each layer's time on that target ("
                   + ", ".join(f"{t.name}: a {t.roofline.device} roofline" for t in estimated) + ")")


def _cmd_inspect(a) -> int:
    import json as _json
    from pathlib import Path

    from mxc.errors import ArtifactError

    path = Path(a.artifact) / "manifest.json"
    if not path.is_file():
        raise ArtifactError(f"{a.artifact}: no manifest.json (create the artifact with mxc compile)")
    try:
        m = _json.loads(path.read_text())
    except ValueError as e:
        raise ArtifactError(f"{path} is corrupt: {e}") from e
    print(f"model {m['model']}  target {m['target']}  options {m['options']}")
    if m.get("inputs"):
        from mxc.runtime.artifact import takes

        print("inputs " + ", ".join(takes(e) for e in m["inputs"]))
    rows = []
    for r in m["layers"]:
        bits, sq, nbytes = r.get("bits_per_weight"), r.get("weight_sqnr_db"), r.get("weight_bytes")
        opts = ",".join(f"{k}={v}" for k, v in r.get("options", {}).items())
        kernel = f"  [{r['kernel']}; {r.get('path', '')}]" if m["target"] != "cpu" and r.get("kernel") else ""
        shared = f" (weights shared with {r['shares_weight_with']})" if r.get("shares_weight_with") else ""
        rows.append([r["layer"], r["op"], _format_name(r, "weight_format"), _format_name(r, "activation_format"),
                     opts, "" if bits is None else f"{bits:.2f}", "" if sq is None else f"{sq:.1f}",
                     "" if nbytes is None else "shared" if shared else _size(nbytes),
                     f"{r['decision']}{shared}{_shared_source(r)}{kernel}"])
    print(text_table(["layer", "op", "weights", "acts", "options", ">bits/w", ">SQNR dB", ">bytes", "decision"],
                     rows))
    if any("weight_bytes" in r for r in m["layers"]):  # (manifests before weight_bytes: no breakdown)
        print()
        print(_where_bytes_go(m))
    if "auto" in m:
        print()
        print(_auto_table(m["auto"]))
    cal = [r for r in m["layers"] if "calibration" in r]
    if cal:
        print()
        print(_calibration_table(cal, m.get("timings_s", {}).get("calibration")))
    imported = [r for r in m["layers"] if "imported" in r]
    if imported:
        print(f"\n--checkpoint: {len(imported)} layers' codes and scales compiled as the checkpoint "
              f"{imported[0]['imported']['checkpoint']} holds them (not re-quantized)")
    for w in m.get("warnings", []):
        print(f"warning: {w}")
    if a.target:
        from mxc.targets.roofline import report

        print()
        print(report(m, a.target))
    return 0


def _calibration_table(rows: list[dict], seconds: float | None) -> str:
    """`mxc inspect`'s --calibrate section: each calibrated layer's output error before and after."""
    c0 = rows[0]["calibration"]
    head = (f"--calibrate: {len(rows)} layers on {c0['tokens']} calibration tokens"
            + (f", {seconds:.1f} s" if seconds is not None else "")
            + "; relative output error on the calibration set, round to nearest -> calibrated")
    body = [[r["layer"], r["calibration"]["method"], f"{r['calibration']['output_error_rtn']:.4g}",
             f"{r['calibration']['output_error']:.4g}",
             f"{r['calibration']['output_error'] / r['calibration']['output_error_rtn']:.2f}x"
             if r["calibration"]["output_error_rtn"] else ""] for r in rows]
    return head + "\n" + text_table(["layer", "method", ">error RTN", ">error", ">ratio"], body)


def _shared_source(row: dict) -> str:
    """What a row says when other rows read its parameter but store other data (a tied embedding and a
    quantized lm_head: the quantized codes are a second copy, not the table)."""
    others = row.get("shares_source_with")
    if not others:
        return ""
    if row.get("source_param"):
        return (f" (quantized from {row['source_param']}, which {', '.join(others)} also reads: "
                "this layer stores its own quantized copy)")
    return (f" (its parameter {row['weight_param']} also feeds {', '.join(others)}, which stores a quantized "
            "copy)")


def _where_bytes_go(m: dict) -> str:
    """model.irpa's bytes by kind of row: each stored weight counted once (shared rows are not), the rest
    (biases, norms, buffers) by difference."""
    parts: dict[str, list[int]] = {kind: [] for kind in ("quantized weights", "high-precision weights",
                                                         "embedding tables")}
    for r in m["layers"]:
        if r.get("weight_bytes") is None or r.get("shares_weight_with"):
            continue
        kind = ("embedding tables" if _is_table(r) else
                "quantized weights" if r.get("status") == "quantized" else "high-precision weights")
        parts[kind].append(r["weight_bytes"])
    text = " + ".join(f"{kind} {_size(sum(ns))} ({len(ns)})" for kind, ns in parts.items())
    total = m.get("weights_bytes")
    if total is None:  # --compile-to: no model.irpa
        return f"weight bytes: {text}"
    other = total - sum(sum(ns) for ns in parts.values())
    return (f"model.irpa {_size(total)} = {text} + other parameters {_size(max(other, 0))} "
            "(biases, norms, buffers)")


def text_table(head: list[str], rows: list[list[str]]) -> str:
    """A table whose columns are as wide as their widest cell (nothing truncated); a '>' before
    a heading right-aligns that column."""
    right = [h.startswith(">") for h in head]
    head = [h.removeprefix(">") for h in head]
    width = [max(len(c) for c in col) for col in zip(head, *rows)]

    def line(cells):
        return " ".join(f"{c:{'>' if r else '<'}{w}s}" for c, r, w in zip(cells, right, width)).rstrip()

    top = line(head)
    return "\n".join([top, "-" * len(top), *map(line, rows)])


def _format_name(row: dict, key: str) -> str:
    """A manifest row's format name ("none": high precision); older manifests hold only the specs."""
    if f"{key}_name" in row:
        return row[f"{key}_name"]
    from mxc.numerics.options import parse_optional

    spec = parse_optional(row.get(key, "none"))
    return spec.name if spec else "none"


def _add_formats(sub):
    p = sub.add_parser("formats", help="list the formats mxc knows, with each target's hardware path")
    p.add_argument("--json", action="store_true", help="print one JSON list")
    p.add_argument("--error-table", action="store_true",
                   help="measure every format's MSE and SQNR on Gaussian, Laplace and Student-t samples")
    p.add_argument("--samples", type=_positive_int, default=1024, help="rows of 1024 values per distribution")
    p.add_argument("--weight", default=None, help="also measure a weight: FILE.pt[:KEY] or MODEL.py:param.name")
    p.add_argument("--png", default=None, help="write the error table as a bar chart (needs matplotlib)")


def _positive_int(text: str) -> int:
    """A count of at least 1 (--samples 0 measured nothing and printed a table of NaN)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: '{text}'") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def _cmd_formats(a) -> int:
    import json as _json

    from mxc.targets import TARGET_NAMES, support_table

    if a.error_table:
        from mxc.tools.error_table import error_table, print_table, write_png

        columns, rows = error_table(a.samples, a.weight)
        print_table(columns, rows, a.samples)
        if a.png:
            write_png(columns, rows, a.png)
            print(f"wrote {a.png}")
        return 0
    table = support_table()
    if a.json:
        print(_json.dumps(table))
        return 0
    shown = TARGET_NAMES[1:]  # cpu emulates every format: said below
    width = {t: max(len(t), *(len(r["paths"][t]) for r in table)) for t in shown}
    print((f"{'format':13s} {'element':6s} {'block':>5s} {'scale':10s} {'bits/elem':>9s}  " + "  ".join(
        f"{t:{width[t]}s}" for t in shown)).rstrip())
    for r in table:
        ts = " +32 bits/tensor" if r["tensor_scale"] else ""
        paths = "  ".join(f"{r['paths'][t]:{width[t]}s}" for t in shown)
        print(f"{r['name']:13s} {r['element']:6s} {r['block_size']:5d} {r['scale']:10s} "
              f"{r['bits_per_element']:9.3f}  {paths}{ts}".rstrip())
    print("\ncpu: every format emulated bit-exactly (IREE llvm-cpu). cuda-sm90 (README, CUDA target): Hopper has FP8")
    print("tensor cores only; the other block-scaled pairs run on the skeleton's twin (decoded to bf16). cuda-sm100")
    print("(README, Blackwell target): block-scaled tcgen05.mma; formats it has no kind for take the decode path")
    print("with high-precision activations. Each layer's path is in the manifest and `mxc inspect` (`path`).")
    return 0


def _add_generate(sub):
    p = sub.add_parser("generate", help="generate text with an artifact compiled with --generate")
    p.add_argument("artifact")
    p.add_argument("--prompt", required=True, help="the prompt text (the artifact's tokenizer encodes it)")
    p.add_argument("--max-new-tokens", type=_positive_int, default=32, metavar="N")
    p.add_argument("--device", default="cpu", help="cpu, or cuda for cuda-sm90 artifacts (IREE's CUDA driver)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 (the default): greedy")
    p.add_argument("--top-k", type=int, default=0, help="sample among the k most likely tokens (0: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling")
    p.add_argument("--ignore-eos", action="store_true", help="do not stop at the end-of-sequence token")
    p.add_argument("--compare", action="store_true",
                   help="also run the same loop over the fake-quant reference in torch (model.py, as compiled) "
                        "and check that the tokens are equal")
    p.add_argument("--model", default=None, help="--compare: model.py, where it is not at the path the manifest records")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _cmd_generate(a) -> int:
    from mxc.runtime.artifact import load

    art = load(a.artifact, a.device)
    out = art.generate(a.prompt, a.max_new_tokens, temperature=a.temperature, top_k=a.top_k, seed=a.seed,
                       stop_at_eos=not a.ignore_eos)
    result = out.to_dict()
    if a.compare:
        from mxc.runtime.compare import compare_generation

        ref = compare_generation(art, a.prompt, a.max_new_tokens, a.temperature, a.top_k, a.seed, not a.ignore_eos,
                                 a.model)
        first = next((i for i, (x, y) in enumerate(zip(out.tokens, ref.tokens)) if x != y),
                     None if len(out.tokens) == len(ref.tokens) else min(len(out.tokens), len(ref.tokens)))
        result["reference"] = {"tokens": ref.tokens, "equal": first is None, "first_difference": first,
                               "decode_tokens_per_s": round(ref.decode_tokens_per_s, 3)}
    ok = not a.compare or result["reference"]["equal"]
    if a.json:
        print(json.dumps(result))
        return 0 if ok else 1
    print(out.text)
    print(f"-- {out.prompt_tokens} prompt tokens, {len(out.tokens)} new ({out.stopped}); prefill "
          f"{out.prefill_ms:.1f} ms, decode {out.decode_tokens_per_s:.1f} tokens/s", file=sys.stderr)
    if a.compare:
        r = result["reference"]
        print(f"-- fake-quant reference in torch ({r['decode_tokens_per_s']:.1f} tokens/s): "
              + ("the same tokens" if ok else f"DIFFERENT from token {r['first_difference']}"), file=sys.stderr)
    return 0 if ok else 1


def _add_export(sub):
    p = sub.add_parser("export", help="write an artifact's quantized weights as another tool's checkpoint")
    p.add_argument("artifact")
    p.add_argument("--to", required=True, choices=["compressed-tensors"], help="the checkpoint layout")
    p.add_argument("output", metavar="DIR", help="directory to write (model.safetensors, config.json)")


def _cmd_export(a) -> int:
    from mxc.runtime.interchange import export_compressed_tensors

    r = export_compressed_tensors(a.artifact, a.output)
    print(f"wrote {a.output}: {r['layers']} quantized layers ({', '.join(r['formats'])}), {r['tensors']} tensors, "
          "compressed-tensors layout")
    return 0


def _add_write_weights(sub):
    p = sub.add_parser("write-weights", help="write an artifact's model.irpa here, from model.py "
                       "(for a host that received only the program)")
    p.add_argument("artifact")
    p.add_argument("--model", default=None, help="model.py, where it is not at the path the manifest records")
    p.add_argument("--checkpoint", default=None, metavar="DIR",
                   help="an artifact compiled with --checkpoint: the checkpoint, where it is not at the path the "
                        "manifest records")


def _cmd_write_weights(a) -> int:
    from mxc.runtime.weights_writer import write_weights

    r = write_weights(a.artifact, a.model, a.checkpoint)
    print(f"wrote {r['file']}: {r['parameters']} parameters, {r['bytes'] / 2**20:.1f} MiB, bytes equal to "
          "those mxc compile wrote (sha256)")
    return 0


COMMANDS = {"write-weights": _cmd_write_weights, "export": _cmd_export, "compile": _cmd_compile, "run": _cmd_run, "inspect": _cmd_inspect, "formats": _cmd_formats,
            "generate": _cmd_generate}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="mxc", description="quantizing compiler for block-scaled formats")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_compile, _add_run, _add_generate, _add_inspect, _add_formats, _add_export, _add_write_weights):
        add(sub)
    a = parser.parse_args(argv)
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)  # torch.export's pytree deprecations
    from mxc.errors import MxcError
    from mxc.numerics.formats import UnknownFormatError
    from mxc.numerics.options import OptionError

    try:
        rc = COMMANDS[a.command](a)
        sys.stdout.flush()  # inside the try: a closed pipe surfaces here
        return rc
    except (MxcError, UnknownFormatError, OptionError) as e:
        print(f"mxc: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `mxc formats --json | head`: the reader left; stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit's flush must not raise again
        return 0
    except KeyboardInterrupt:  # the compile driver removes its temporary directory on the way out
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while the interpreter exits: still 130
        print("mxc: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

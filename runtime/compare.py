"""`mxc run --compare`: the artifact against the fake-quant reference and torch float32."""

from __future__ import annotations

import dataclasses

import math

import torch

from mxc.errors import ArtifactError, MxcError

from .artifact import Artifact
from .fingerprint import weights_fingerprint

# Tolerance of compiled vs fake-quant reference (README "Tolerance"). Both
# compute the same dequantized products (the quantizers are bit-exact, tested
# separately); they differ in float32 summation order, bounded per dot product
# by gamma_K * sum|a_i b_i|, gamma_K = K u / (1 - K u), u = 2^-24, and in the
# last ulp of the high-precision ops (IREE's exp/rsqrt vs torch's).
# * Weight-only: nothing is re-rounded, so those differences stay ~1e-6
#   relative: we require max_abs <= RTOL * max|y_ref|, RTOL = 1e-4.
# * Activations quantized: an activation within float32 noise of a rounding
#   boundary of its element format can round the other way (one element moves
#   by one element ulp), and the change propagates to later layers and, through
#   causal attention, to later tokens. We then require the discrepancy to stay
#   far below the format's own error: rel_l2(compiled, ref) <= FLIP_FRACTION *
#   rel_l2(ref, torch f32), and report the fraction of outputs within RTOL.
# * cuda-sm90's dec and wgmma kernels read activations as bf16 (the manifest's run_time_rounding): the
#   reference rounds those layers' activations to bf16 too (reference.py), and the check is the
#   activation-quantized one, since a float32-noise difference can still cross a bf16 rounding boundary.
# * cuda-sm90 MXFP8 x MXFP8 as artifacts compiled before 2026-12-03 run it (actq + qgmma, whose manifests
#   say "fp8 block sums"): Hopper's FP8 tensor cores sum each 32-product
#   block with less than float32 precision (measured up to 1.1e-5 of sum|a||b| by
#   `pytest tests/gpu`, vs 1e-7 in float32), which flips more activation roundings
#   downstream: FLIP_FRACTION_FP8 (the 4-layer Llama: 4.3e-2 vs 1.6e-2 on the CPU target).
# * bf16/f16 outputs: the model's own high-precision ops run in its dtype, and
#   IREE rounds each step of, e.g., GELU to bf16 where torch computes it in f32
#   and rounds once, so outputs part by an ulp or two of the dtype (the quantized
#   matmuls themselves match bit for bit: the same MLP with ReLU gives max_abs 0
#   in bf16, weight-only and weights+activations). Weight-only: RTOL_HALF_EPS *
#   eps(dtype) (the 3-layer GELU MLP, mxfp4/nvfp4/mxfp8/mxint8: max_abs up to
#   0.95 eps * max|y| in bf16 and in f16). Activations quantized: those ulps
#   flip activation codes far more often than float32 noise does, so
#   FLIP_FRACTION_HALF (the same MLP: 0.28-0.66 of the format's error in bf16,
#   0.13-0.36 in f16): compiled no farther from the reference than the format
#   is from the unquantized model.
# * Deep models in float32 (the 10-layer Llama): one flip cascades until the compiled output is as far
#   from the reference as the format from torch, and no fixed fraction separates that from a bug. A
#   failing activation-rounding check is then measured against the model's own flip envelope: the
#   reference rerun ENVELOPE_SEEDS times with every activation, just before its run-time rounding,
#   multiplied by (1 + ENVELOPE_SIGMA n), n ~ N(0, 1) (float32-sized noise, what another summation
#   order gives). If compiled-vs-reference is below ENVELOPE_FACTOR x the largest of those moves and
#   below OWN_ERROR_CAP x the format's own error, and the compiled output is at least
#   TORCH_DISTANCE_FLOOR x that error from torch (a program that skipped quantizing would sit near
#   torch), the check passes *as a flip cascade* and says so: the end-to-end
#   comparison cannot see a bug smaller than that envelope in such a model (each layer's bits are
#   checked by the lowering tests; `mxc.tools.layer_diff` checks every layer of an artifact). The
#   10-layer Llama, f32, weights+activations: compiled 0.044 / envelope 0.039 (MXFP8), 0.0149 / 0.019
#   (MXINT8), 0.236 / 0.278 (NVFP4), 0.211 / 0.209 (IF4); a model that is not chaotic has an envelope
#   near 1e-7 and keeps the strict check.
RTOL = 1e-4
FLIP_FRACTION = 0.25
FLIP_FRACTION_FP8 = 0.5
RTOL_HALF_EPS = 4
FLIP_FRACTION_HALF = 1.0
HALF_DTYPES = (torch.bfloat16, torch.float16)
ENVELOPE_SEEDS = 4
ENVELOPE_SIGMA = 2.0**-23
ENVELOPE_FACTOR = 2.0
OWN_ERROR_CAP = 0.75
TORCH_DISTANCE_FLOOR = 0.5


def _rtol(dtype: torch.dtype) -> float:
    """The weight-only tolerance relative to max|reference| for outputs of `dtype`."""
    return max(RTOL, RTOL_HALF_EPS * torch.finfo(dtype).eps) if dtype in HALF_DTYPES else RTOL


def _references(artifact: Artifact, inputs: tuple) -> tuple[list, list, torch.nn.Module | None]:
    """(fake-quant reference, torch float32) outputs, stored at compile time (GPU targets; for the inputs they
    were computed from, the artifact's inputs.pt) or computed now, and the model when it was loaded for them."""
    stored = artifact.manifest.get("reference_outputs")  # a file the manifest lists, so load() checked its hash
    if stored and _same_inputs(inputs, artifact.example_inputs()):
        ref = torch.load(artifact.path / stored)
        return ref["fake_quant"], ref["eager"], None
    from .reference import calibrated_weights, eager_forward, fake_quant_forward

    model = _model(artifact)
    stored = calibrated_weights(artifact.path, artifact.manifest)
    return fake_quant_forward(model, inputs, artifact.manifest, stored), eager_forward(model, inputs), model


def _same_inputs(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(isinstance(x, torch.Tensor) and x.shape == y.shape and x.dtype == y.dtype
                                    and torch.equal(x.cpu(), y) for x, y in zip(a, b))


def _checked_model(artifact: Artifact, model_py=None) -> torch.nn.Module:
    """model.py's get_model() (the manifest's model.py, or `model_py`), refused if its weights are not the ones
    compiled."""
    from mxc.compiler.frontend import load_model_file

    checkpoint = artifact.manifest.get("options", {}).get("checkpoint") or ""  # --checkpoint: applied again
    model = load_model_file(model_py or artifact.manifest["model"], checkpoint).model
    _check_fingerprint(artifact, model)
    return model


def _model(artifact: Artifact) -> torch.nn.Module:
    """The compiled model.py's get_model() (a --generate artifact's prefill program), refused if its weights are
    not the ones compiled."""
    model = _checked_model(artifact)
    gen = artifact.manifest.get("generate")
    if gen:  # a --generate artifact runs its first entry point (prefill) on inputs.pt
        from mxc import generation

        return generation.programs(generation.causal_lm(model), gen["max_seq_len"],
                                   generation.cache_format(artifact.manifest),
                                   generation.dynamic_prefill(artifact.manifest))[generation.ENTRY_POINTS[0]][0]
    return model


def cache_values(outputs: list, manifest: dict) -> list:
    """The outputs with a --generate artifact's KV cache of codes (`--kv-cache`: int8 rows of bytes, outputs 1 and
    2) decoded to the values attention reads (`mxc.numerics.from_row_bytes`), so they compare as values: a
    code flipped by float32 noise is one quantization step, not a byte's distance."""
    gen = manifest.get("generate") or {}
    kv = gen.get("kv_cache", "none")
    if kv == "none" or gen.get("cache_dtype") != "int8":
        return list(outputs)
    from mxc.numerics import from_row_bytes

    dim = gen["head_dim"]
    return [from_row_bytes(t.cpu(), kv, dim).dequantize() if i in (1, 2) else t for i, t in enumerate(outputs)]


def flip_envelope(model: torch.nn.Module, manifest: dict, inputs: tuple, n_outputs: int,
                  stored: dict | None = None) -> list[list[float]]:
    """Per output, rel_l2(reference with float32-sized noise before every activation rounding, the same
    graph without noise) for ENVELOPE_SEEDS seeds: how far float32 noise alone moves the quantized outputs."""
    from .reference import ActNoise, _flatten, fake_quant_module

    inputs = tuple(t.cpu() if isinstance(t, torch.Tensor) else t for t in inputs)  # the reference runs on the CPU
    noise = ActNoise()
    gm = fake_quant_module(model, inputs, manifest, noise, stored)
    with torch.no_grad():  # noise off: the baseline comes from this very graph, not a stored file
        base = cache_values(_flatten(gm(*inputs)), manifest)
    moves = [[] for _ in range(n_outputs)]
    for seed in range(ENVELOPE_SEEDS):
        noise.reseed(ENVELOPE_SIGMA, seed)
        with torch.no_grad():
            outs = cache_values(_flatten(gm(*inputs)), manifest)
        for i, (o, b) in enumerate(zip(outs, base)):
            moves[i].append(errors(o, b)["rel_l2_error"])
    return moves


def _check_fingerprint(artifact: Artifact, model: torch.nn.Module) -> None:
    """Refuse to compare against a model whose weights are not the ones compiled (the numbers would be nonsense)."""
    recorded = artifact.manifest.get("weights_fingerprint")
    if recorded is None or weights_fingerprint(model) == recorded:
        return
    path, model_py = artifact.path, artifact.manifest["model"]
    raise ArtifactError(f"{model_py}: get_model() now returns other weights than {path} was compiled from "
                        f"(their sha256 fingerprint differs), so --compare would measure another model: either "
                        f"model.py changed since compiling (recompile: mxc compile {model_py} -o {path}) or "
                        f"get_model() is not deterministic (seed it: torch.manual_seed(0) before building the model)")


def _sqnr_db(signal: float, noise: float) -> float:
    if noise == 0:
        return math.inf if signal else math.nan  # nan: nothing was measured (no finite, non-zero reference)
    return 10 * math.log10(signal / noise) if signal else -math.inf


def errors(y: torch.Tensor, ref: torch.Tensor) -> dict:
    """max abs error, relative L2 error and SQNR (dB) of y against ref over the positions where both are finite.

    NaN where the reference has NaN, or the same infinity, is a match; any other NaN/Inf on either side is
    counted in `nonfinite_mismatches` and makes the errors infinite (never "sqnr inf dB"). `compared` counts
    the positions where both are finite.
    """
    y, ref = y.double(), ref.double()
    same = (torch.isnan(y) & torch.isnan(ref)) | (torch.isinf(y) & (y == ref))
    finite = torch.isfinite(y) & torch.isfinite(ref)
    mismatches = int((~finite & ~same).sum())
    diff, r = (y - ref)[finite], ref[finite]
    noise, signal = float((diff * diff).sum()), float((r * r).sum())
    if mismatches:
        return {"max_abs_error": math.inf, "rel_l2_error": math.inf, "sqnr_db": -math.inf,
                "nonfinite_mismatches": mismatches, "compared": int(finite.sum())}
    return {
        "max_abs_error": float(diff.abs().max()) if diff.numel() else 0.0,
        "rel_l2_error": math.sqrt(noise / signal) if signal else math.sqrt(noise),
        "sqnr_db": _sqnr_db(signal, noise),
        "nonfinite_mismatches": 0,
        "compared": int(finite.sum()),
    }


def _rule(manifest: dict) -> tuple[float | None, str]:
    """(FLIP_FRACTION to allow, why) when activations are re-rounded at run time; (None, "") otherwise."""
    layers = manifest["layers"]
    requantized = any(r.get("activation_format", "none") != "none" for r in layers) or \
        (manifest.get("generate") or {}).get("kv_cache", "none") != "none"  # a KV-cache format: keys/values too
    rounding = {x for r in layers for x in r.get("run_time_rounding", [])}  # what the kernels add (manifest)
    if manifest.get("options", {}).get("act_dtype") == "bf16":
        # program and reference both round weight-only layers' activations to bf16; an ulp of difference
        # upstream (IREE's GELU vs torch's) still moves some values across a bf16 rounding boundary
        rounding.add("bf16 activations")
    bf16, fp8_tc = "bf16 activations" in rounding, "fp8 block sums" in rounding
    if not (requantized or bf16):
        return None, ""
    why = "bf16 activations" if bf16 and not requantized else "activation rounding flips"
    why += ", FP8 tensor-core block sums" if fp8_tc else ""
    return (FLIP_FRACTION_FP8 if fp8_tc else FLIP_FRACTION), why


def _compare_output(y: torch.Tensor, fq: torch.Tensor, eager: torch.Tensor, frac: float | None, why: str) -> dict:
    """One output against its references; `tolerance` is the bound the rule compares with."""
    vs_ref, ref_vs_torch = errors(y, fq), errors(fq, eager)
    finite = fq[torch.isfinite(fq)]
    rtol = _rtol(fq.dtype)
    frac = max(frac, FLIP_FRACTION_HALF) if frac is not None and fq.dtype in HALF_DTYPES else frac
    abs_tol = rtol * float(finite.abs().max()) if finite.numel() else 0.0
    same_nonfinite = (torch.isnan(y) & torch.isnan(fq)) | (torch.isinf(y) & (y == fq))
    close = ((y - fq).abs() <= abs_tol) | same_nonfinite
    if frac is None:
        order = f"{fq.dtype} ulps of the model's own ops" if fq.dtype in HALF_DTYPES else "float32 summation order"
        tol, rule = abs_tol, f"max_abs <= {rtol:g} * max|reference| ({order})"
        ok = vs_ref["max_abs_error"] <= abs_tol
    else:
        tol = frac * ref_vs_torch["rel_l2_error"]
        rule = f"rel_l2 <= {frac} * reference_vs_torch.rel_l2 ({why} allowed), or max_abs <= {rtol:g} * max|reference|"
        ok = vs_ref["rel_l2_error"] <= tol or vs_ref["max_abs_error"] <= abs_tol
    if vs_ref["nonfinite_mismatches"]:
        ok, rule = False, rule + f"; FAILS: {vs_ref['nonfinite_mismatches']} NaN/Inf where the reference differs"
    elif not vs_ref["compared"] and y.numel():
        ok, rule = False, rule + "; FAILS: every value is NaN/Inf, nothing to compare"
    return {
        "vs_reference": {**vs_ref, "tolerance": tol, "abs_tolerance": abs_tol, "rule": rule,
                         "within_tolerance": bool(ok), "fraction_within_rtol": float(close.double().mean())},
        "vs_torch": errors(y, eager),
        "reference_vs_torch": ref_vs_torch,
    }


# A failing check with quantized activations is often one element rounded the other way at an exact
# tie (float32 noise decides it), spread by the model: through causal attention to later tokens and,
# for NV-family activations, whose tensor scale is the amax of the whole activation, to every token.
# The 4-layer Llama at [1, 128] in NVFP4 w+a: one E2M1 tie (x/scale 4.999998 vs 5.000001) in layer 0's
# down_proj input gives rel_l2 0.146; forcing that one element in the reference reproduces 0.144.
FLIP_HINT = ("quantized activations: find the first flipped block with `python -m mxc.tools.layer_diff {path}`; "
             "a single rounding tie flipped by float32 noise can move NV-family (per-tensor scaled) models this "
             "far (README, Tolerance)")


def _judge_flip_cascade(artifact: Artifact, model: torch.nn.Module | None, inputs: tuple, fq: list,
                        per: list[dict], failing: list[int]) -> None:
    """Re-judge failing outputs against the model's flip envelope (the comment at RTOL); records it in
    `vs_reference.flip_envelope` and, where it passes, says that the pass is a flip cascade's."""
    try:
        from .reference import calibrated_weights

        moves = flip_envelope(model if model is not None else _model(artifact), artifact.manifest, inputs, len(fq),
                              calibrated_weights(artifact.path, artifact.manifest))
    except (MxcError, ImportError) as e:  # a stored reference (GPU), its model.py gone or changed, or no torch-mlir
        # on a GPU host that only runs artifacts (the reference's export needs its decompositions)
        for i in failing:
            per[i]["vs_reference"]["flip_envelope"] = {"unavailable": str(e).splitlines()[0]}
        return
    for i in failing:
        ref, own = per[i]["vs_reference"], per[i]["reference_vs_torch"]["rel_l2_error"]
        envelope = max(moves[i])
        bound = min(ENVELOPE_FACTOR * envelope, OWN_ERROR_CAP * own)
        ref["flip_envelope"] = {"moves": moves[i], "sigma": ENVELOPE_SIGMA, "bound": bound}
        ref["rule"] += (f"; else a flip cascade: rel_l2 < min({ENVELOPE_FACTOR:g} * flip envelope {envelope:.3g}, "
                        f"{OWN_ERROR_CAP:g} * the format's own error {own:.3g}) and rel_l2 to torch >= "
                        f"{TORCH_DISTANCE_FLOOR:g} * the format's own error")
        # a program as far from torch as the reference is (quantized like it), moved by flips alone; one that
        # skipped its quantization would sit near torch, at the format's own error from the reference
        quantized_alike = per[i]["vs_torch"]["rel_l2_error"] >= TORCH_DISTANCE_FLOOR * own
        if ref["rel_l2_error"] < bound and quantized_alike:
            ref["within_tolerance"] = True
            ref["tolerance"] = bound
            ref["verdict"] = (f"flip cascade: float32-sized noise before the activation roundings alone moves the "
                              f"reference by up to {envelope:.3g} ({ENVELOPE_SEEDS} seeds); this end-to-end check "
                              f"cannot see a smaller error in this model (layer by layer: python -m "
                              f"mxc.tools.layer_diff {artifact.path})")


def compare(artifact: Artifact, outputs: list[torch.Tensor], inputs: tuple) -> dict:
    """Every output vs the fake-quant reference and vs torch eager float32.

    Returns `outputs` (one comparison per output) and, at the top level, the comparison of the worst
    output (`vs_reference.output` names it: the first that fails, else the largest rel_l2), so
    `vs_reference.within_tolerance` is true only when every output passes.
    """
    if artifact.manifest.get("generate"):  # the first entry point's layers, named as its own graph names them
        from mxc.generation import ENTRY_POINTS, entry_manifest

        artifact = dataclasses.replace(artifact, manifest=entry_manifest(artifact.manifest, ENTRY_POINTS[0]))
    fq, eager, model = _references(artifact, inputs)
    if len(fq) != len(outputs):
        raise ArtifactError(f"{artifact.path}: the artifact returns {len(outputs)} output(s), the model "
                            f"{len(fq)}; recompile with mxc compile")
    outputs, fq, eager = (cache_values(x, artifact.manifest) for x in (outputs, fq, eager))
    frac, why = _rule(artifact.manifest)
    per = [_compare_output(y, f, e, frac, why) for y, f, e in zip(outputs, fq, eager)]
    failing = [i for i, c in enumerate(per) if not c["vs_reference"]["within_tolerance"]]
    # only a finite output past the rel-L2 bound can be a flip cascade; NaN/Inf or nothing compared never is
    flips = [i for i in failing
             if not per[i]["vs_reference"]["nonfinite_mismatches"] and per[i]["vs_reference"]["compared"]]
    if flips and frac is not None:
        _judge_flip_cascade(artifact, model, inputs, fq, per, flips)
        failing = [i for i, c in enumerate(per) if not c["vs_reference"]["within_tolerance"]]
    worst = failing[0] if failing else max(range(len(per)), key=lambda i: per[i]["vs_reference"]["rel_l2_error"])
    top = per[worst]
    result = {**top, "vs_reference": {**top["vs_reference"], "output": worst}, "outputs": per}
    if failing and any(r.get("activation_format", "none") != "none" for r in artifact.manifest["layers"]):
        result["hint"] = FLIP_HINT.format(path=artifact.path)
    return result


def compare_generation(artifact: Artifact, prompt, max_new_tokens: int, temperature: float = 0.0, top_k: int = 0,
                       seed: int = 0, stop_at_eos: bool = True, model_py=None):
    """`mxc generate --compare`: the same generation loop over the fake-quant reference in torch (model.py's
    causal LM with the artifact's layers fake-quantized, mxc.generation.torch_steps); mxc.generation.Generated."""
    from mxc import generation

    model = _checked_model(artifact, model_py)
    gen = artifact.manifest["generate"]
    ids, _ = artifact.encode(prompt)
    from .reference import calibrated_weights

    prefill, decode = generation.torch_steps(generation.causal_lm(model), gen["max_seq_len"], artifact.manifest,
                                             calibrated_weights(artifact.path, artifact.manifest))
    return generation.generate_ids(prefill, decode, ids, max_new_tokens, gen["max_seq_len"],
                                   gen["eos_token_id"] if stop_at_eos else [],
                                   generation.Sampling(temperature, top_k, seed),
                                   dynamic=generation.dynamic_prefill(artifact.manifest))

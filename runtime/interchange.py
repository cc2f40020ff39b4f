"""`mxc export OUT --to compressed-tensors DIR`: an artifact's quantized weights as a compressed-tensors checkpoint.

compressed-tensors (vLLM's and llm-compressor's checkpoint layout) defines NVFP4
(`nvfp4-pack-quantized`), MXFP4 (`mxfp4-pack-quantized`) and MXFP8 (`mxfp8-quantized`) weights; mxc writes
those, codes and scales copied from the artifact's `.irpa` unchanged:

    <module>.weight_packed        uint8 [N, K/2]   E2M1 codes, column 2j in the low nibble (mxc's packing)
    <module>.weight               float8_e4m3fn [N, K] (MXFP8)
    <module>.weight_scale         float8_e4m3fn [N, K/16] (NVFP4, UE4M3) | uint8 [N, K/32] (MX, E8M0, bias 127)
    <module>.weight_global_scale  float32 [1] (NVFP4): compressed-tensors divides by it, so 1 / mxc's
                                  decode-side tensor scale (the encode-side scale mxc quantized with)

Every other parameter (embeddings, norms, layers kept in high precision) is written from model.py's model as
it is, and `config.json` holds the transformers config (when model.py's model is one) with the
`quantization_config` (one config group per format, `ignore` for the linear layers kept in high precision).
Layers in a format or with options the layout cannot express (Four Over Six, IF4, NVINT4, UE5M3 scales,
MXFP6, MXINT8, E5M2, a Hadamard rotation), with K not a multiple of the block, or convolutions are refused
by name: the checkpoint would not decode to what the artifact computes.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import torch

from mxc.errors import ArtifactError, MxcError
from mxc.layers import split_layer

# mxc format -> (compressed-tensors format, preset scheme name weights-only, with activations)
LAYOUTS = {"nvfp4": ("nvfp4-pack-quantized", "NVFP4A16", "NVFP4"),
           "mxfp4": ("mxfp4-pack-quantized", "MXFP4A16", "MXFP4"),
           "mxfp8": ("mxfp8-quantized", "MXFP8A16", "MXFP8")}
_FREE_OPTIONS = {"scale_rule", "rounding", "seed"}  # change which codes are chosen, not how they decode


def _read_irpa(path: Path, manifest: dict):
    from mxc.runtime.artifact import parameter_reader

    names, read = parameter_reader(path, manifest)

    def checked(name: str) -> torch.Tensor:
        if name not in names:
            raise ArtifactError(f"{path}: parameter {name} is not in the .irpa (a {manifest.get('target')} artifact "
                                "stores its weights in the kernels' layout); export a --target cpu artifact")
        return read(name)
    return checked


def _layer_tensors(row: dict, read) -> tuple[str, dict[str, torch.Tensor]]:
    """(compressed-tensors format, {suffix: tensor}) of one quantized linear layer."""
    layer, fmt = split_layer(row["layer"])[1], row["weight_format"].split("{")[0]
    if fmt not in LAYOUTS:
        raise MxcError(f"layer '{layer}': {row['weight_format']} has no compressed-tensors layout (it has "
                       f"{', '.join(LAYOUTS)}); compile that layer in one of them or keep it in high precision")
    bad = set(row.get("options") or {}) - _FREE_OPTIONS
    if bad:
        raise MxcError(f"layer '{layer}': option {', '.join(sorted(bad))} changes how its codes decode, which "
                       "compressed-tensors cannot express; compile without it")
    act = row.get("activation_format", "none")
    if act not in ("none", row["weight_format"]):
        raise MxcError(f"layer '{layer}': activations in {act} with {fmt} weights have no compressed-tensors "
                       "scheme; use --weights-only or the same format")
    n, k = row["weight_shape"]
    block = row["block_size"]
    if k % block:
        raise MxcError(f"layer '{layer}': K = {k} is not a multiple of the block ({block}), so its codes are "
                       "padded, which compressed-tensors cannot hold")
    base = row["weight_param"].removesuffix(".elements")
    elements, scales = read(f"{base}.elements"), read(f"{base}.scales").reshape(n, k // block)
    if fmt == "mxfp8":
        tensors = {"weight": elements.reshape(n, k).view(torch.float8_e4m3fn), "weight_scale": scales}
    else:
        tensors = {"weight_packed": elements.reshape(n, k // 2),
                   "weight_scale": scales.view(torch.float8_e4m3fn) if fmt == "nvfp4" else scales}
    if fmt == "nvfp4":
        s_dec = read(f"{base}.tensor_scale").view(torch.float32).reshape(1)
        tensors["weight_global_scale"] = (1.0 / s_dec.double()).to(torch.float32)
    return fmt, tensors


def export_compressed_tensors(path: str | Path, out: str | Path) -> dict:
    """Write the artifact at `path` as a compressed-tensors checkpoint in `out`; returns a summary."""
    from safetensors.torch import save_file

    from mxc.runtime.artifact import open_manifest

    from .compare import _checked_model

    path, out = Path(path), Path(out)
    manifest = open_manifest(path)
    read = _read_irpa(path, manifest)
    model = _checked_model(SimpleNamespace(path=path, manifest=manifest))  # the codes are that model's
    state = {k: v.detach() for k, v in model.state_dict(keep_vars=False).items()}
    modules = dict(model.named_modules())
    tensors: dict[str, torch.Tensor] = {}
    groups: dict[tuple[str, bool], list[str]] = {}
    quantized: set[str] = set()
    for row in manifest["layers"]:
        if not row.get("status", "").startswith("quantized") or row.get("weight_format", "none") == "none":
            continue
        module = split_layer(row["layer"])[1]  # (not source_param: a tied lm_head's weight has the embedding's name)
        if not isinstance(modules.get(module), torch.nn.Linear):
            raise MxcError(f"layer '{module}' is not an nn.Linear of the model ({row.get('op')}): only linear "
                           "layers' weights map to compressed-tensors; keep it in high precision to export")
        if module in quantized:
            continue  # (the same weight in another entry point, or a tied use)
        quantized.add(module)
        fmt, layer = _layer_tensors(row, read)
        tensors.update({f"{module}.{k}": v.contiguous() for k, v in layer.items()})
        groups.setdefault((fmt, row.get("activation_format", "none") == "none"), []).append(module)
    if not quantized:
        raise MxcError(f"{path}: no quantized layer to export (compiled with --format none?)")
    for name, t in state.items():
        if name.removesuffix(".weight") not in quantized and name not in tensors:
            tensors[name] = t.contiguous()
    linear = [n for n, m in modules.items() if isinstance(m, torch.nn.Linear)]
    config = _quantization_config(groups, sorted(set(linear) - quantized))
    out.mkdir(parents=True, exist_ok=True)
    save_file(_untie(tensors), str(out / "model.safetensors"), metadata={"format": "pt"})
    from mxc.generation import causal_lm

    try:
        hf = causal_lm(model).config.to_dict()
    except MxcError:
        hf = {}
    (out / "config.json").write_text(json.dumps({**hf, "quantization_config": config}, indent=2, default=str))
    return {"layers": len(quantized), "tensors": len(tensors), "formats": sorted({f for f, _ in groups})}


def _untie(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors that share memory (tied embeddings): give each its own copy."""
    seen: set[int] = set()
    out = {}
    for k, t in tensors.items():
        key = t.untyped_storage().data_ptr()
        out[k] = t.clone() if key in seen else t
        seen.add(key)
    return out


def _quantization_config(groups: dict, ignore: list[str]) -> dict:
    """The `quantization_config` object, built and serialized by compressed-tensors' own classes."""
    from compressed_tensors.quantization import QuantizationConfig, QuantizationScheme
    from compressed_tensors.quantization.quant_scheme import PRESET_SCHEMES

    config_groups = {}
    for i, ((fmt, weights_only), modules) in enumerate(sorted(groups.items())):
        ct_format, preset_w, preset_wa = LAYOUTS[fmt]
        preset = PRESET_SCHEMES[preset_w if weights_only else preset_wa]
        config_groups[f"group_{i}"] = QuantizationScheme(targets=modules, format=ct_format, **preset)
    formats = {g.format for g in config_groups.values()}
    qc = QuantizationConfig(config_groups=config_groups, ignore=ignore, quantization_status="compressed",
                            format=formats.pop() if len(formats) == 1 else "mixed-precision")
    return qc.model_dump(mode="json")

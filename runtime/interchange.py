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

`mxc compile MODEL.py --checkpoint DIR` is the way back (`import_compressed_tensors`): the checkpoint's
quantized layers keep their codes and scales as they are (no re-quantization), its `quantization_config`
becomes the compile's policy (every other layer in high precision), and its other tensors replace
model.py's. NVFP4's `weight_global_scale` g enters as mxc's decode-side tensor scale 1/g rounded to float32
(compressed-tensors divides by g; the two decodes differ by at most one float32 rounding; `mxc export` picks
g so that an exported artifact imports to the same bytes).
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import torch

from mxc.errors import ArtifactError, MxcError, MxcWarning
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
        tensors["weight_global_scale"] = _global_scale(s_dec)
    return fmt, tensors


def _global_scale(s_dec: torch.Tensor) -> torch.Tensor:
    """compressed-tensors' global scale g for mxc's decode-side tensor scale: 1 / s_dec in float32, nudged by an
    ulp where needed so that the import's float32 1/g gives s_dec back (the round trip keeps the bytes)."""
    g = (1.0 / s_dec.double()).to(torch.float32)
    for cand in (g, torch.nextafter(g, g * 2), torch.nextafter(g, g * 0)):
        if torch.equal(1.0 / cand, s_dec):
            return cand
    return g


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


# ---- import: `mxc compile MODEL.py --checkpoint DIR` ------------------------------------------------------------

_FORMAT_OF = {layout: fmt for fmt, (layout, _, _) in LAYOUTS.items()}
# what each format's weights (and activations) args must say: (num_bits, type, group_size)
_ARGS = {"nvfp4": (4, "float", 16), "mxfp4": (4, "float", 32), "mxfp8": (8, "float", 32)}
# per-module tensors a quantized layer may carry besides its codes and scales (read, checked or not used)
_EXTRA = ("weight_shape", "input_global_scale")


class CheckpointError(MxcError):
    """A compressed-tensors checkpoint mxc cannot compile as it is; the message names the layer or tensor."""


@dataclass(frozen=True)
class ImportedWeight:
    """One quantized layer of a checkpoint: its codes as mxc stores them, and where they came from."""

    module: str
    fmt: str  # mxc's format name
    weights_only: bool
    codes: torch.Tensor  # uint8 [N, K], one code per element
    scales: torch.Tensor  # uint8 [N, K / block] scale codes
    tensor_scale: torch.Tensor | None  # float32 decode-side tensor scale (NVFP4)
    tensors: tuple[str, ...]  # the checkpoint's tensor names
    checkpoint: str  # its directory

    def qtensor(self):
        from mxc.numerics import FormatSpec, QTensor

        spec = FormatSpec.parse(self.fmt)
        return QTensor(spec.format, self.codes, self.scales, self.tensor_scale, tuple(self.codes.shape), 1,
                       spec.options)

    def record(self) -> dict:
        """The manifest's "imported" record of the layer (mxq-quantize-weights puts it on the param)."""
        return {"checkpoint": self.checkpoint, "tensors": list(self.tensors), "format": self.fmt}


@dataclass(frozen=True)
class Imported:
    """A checkpoint applied to model.py's model: parameter name -> its layer's codes, and the policy."""

    checkpoint: str
    weights: dict[str, ImportedWeight]

    def in_program(self, model: torch.nn.Module, program: torch.nn.Module) -> tuple[dict, dict]:
        """(checkpoint module -> its path in `program`, program parameter name -> ImportedWeight): the compiled
        program is model.py's model itself, or --generate's wrapper of its causal LM (under `lm.`)."""
        where = {id(m): n for n, m in program.named_modules()}
        paths = {n: where.get(id(m), n) for n, m in model.named_modules()}
        return paths, {f"{paths[w.module]}.weight": w for w in self.weights.values()}

    def policy(self, weights_only: bool = False, paths: dict[str, str] | None = None) -> str:
        """The checkpoint's formats as an mxc policy (TOML): its layers as it quantized them (`weights_only`:
        their activations in high precision whatever the checkpoint's scheme says), the rest none. `paths`: a
        checkpoint module's path in the compiled program where it differs (--generate's `lm.` prefix)."""
        lines = [f"# the formats of the compressed-tensors checkpoint {self.checkpoint}", 'default = "none"',
                 "", "[layers]"]
        for w in sorted(self.weights.values(), key=lambda w: w.module):
            only = str(w.weights_only or weights_only).lower()
            lines.append(f'"{(paths or {}).get(w.module, w.module)}" = {{ format = "{w.fmt}", weights_only = {only} }}')
        return "\n".join(lines) + "\n"


def _read_checkpoint(directory: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(quantization_config, every tensor) of a compressed-tensors checkpoint directory."""
    from safetensors.torch import load_file

    if not directory.is_dir():
        raise CheckpointError(f"--checkpoint {directory}: no such directory (a compressed-tensors checkpoint: "
                              "config.json and *.safetensors, e.g. written by mxc export --to compressed-tensors)")
    try:
        config = json.loads((directory / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"--checkpoint {directory}: cannot read config.json ({e})") from e
    qc = config.get("quantization_config") or config.get("compression_config")
    if not isinstance(qc, dict) or qc.get("quant_method", "compressed-tensors") != "compressed-tensors":
        raise CheckpointError(f"--checkpoint {directory}: config.json has no compressed-tensors quantization_config; "
                              "compile a float checkpoint from model.py without --checkpoint")
    if qc.get("quantization_status", "compressed") != "compressed":
        raise CheckpointError(f"--checkpoint {directory}: quantization_status is {qc['quantization_status']!r}, not "
                              "'compressed': save the checkpoint compressed (llm-compressor's save_compressed=True)")
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"--checkpoint {directory}: no *.safetensors file")
    tensors: dict[str, torch.Tensor] = {}
    for f in files:
        try:
            tensors.update(load_file(str(f)))
        except Exception as e:  # (safetensors raises its own error types for a bad header or a short file)
            raise CheckpointError(f"--checkpoint {f}: not a readable safetensors file ({e})") from e
    return qc, tensors


def _matches(name: str, module: torch.nn.Module, targets) -> bool:
    """compressed-tensors' target matching: the exact name, `re:` + a regex (re.match), or a class name."""
    classes = {c.__name__ for c in type(module).__mro__}
    return any(t == name or (t.startswith("re:") and re.match(t[3:], name)) or t in classes for t in targets or ())


def _group(qc: dict, name: str, module: torch.nn.Module) -> tuple[str, str, bool]:
    """(group name, mxc format, weights-only) of a quantized module, checked against what mxc computes."""
    found = [(g, v) for g, v in (qc.get("config_groups") or {}).items() if _matches(name, module, v.get("targets"))]
    if not found:
        raise CheckpointError(f"layer '{name}': it holds quantized tensors but no config group of the checkpoint's "
                              "quantization_config targets it; the checkpoint is inconsistent")
    group, scheme = found[0]
    layout = scheme.get("format") or qc.get("format")
    fmt = _FORMAT_OF.get(layout)
    if fmt is None:
        raise CheckpointError(f"layer '{name}' (config group {group}): format {layout!r} has no mxc equivalent "
                              f"(mxc compiles {', '.join(_FORMAT_OF)}); keep the layer in float in the checkpoint")
    w = scheme.get("weights") or {}
    got = (w.get("num_bits"), w.get("type"), w.get("group_size"))
    if got != _ARGS[fmt]:
        raise CheckpointError(f"layer '{name}' (config group {group}): weights num_bits/type/group_size {got} are "
                              f"not {layout}'s {_ARGS[fmt]}")
    act = scheme.get("input_activations")
    if act and (act.get("num_bits"), act.get("type"), act.get("group_size")) != _ARGS[fmt]:
        raise CheckpointError(f"layer '{name}' (config group {group}): input activations "
                              f"{act.get('num_bits')}-bit {act.get('type')} in groups of {act.get('group_size')} "
                              f"with {fmt} weights have no mxc scheme; compile with --weights-only to keep them "
                              "in high precision")
    return group, fmt, not act


def _codes(name: str, fmt: str, t: dict[str, torch.Tensor], shape: tuple[int, int]) -> tuple:
    """(codes [N, K], scale codes [N, K/B], decode tensor scale) from one layer's tensors, checked."""
    from mxc.numerics import FORMATS, unpack_nibbles

    n, k = shape
    block = FORMATS[fmt].block_size

    def need(suffix: str, dtype: torch.dtype, want: tuple[int, ...]) -> torch.Tensor:
        v = t.get(suffix)
        if v is None:
            raise CheckpointError(f"layer '{name}': the checkpoint has no {name}.{suffix} ({fmt} needs it)")
        if v.dtype != dtype or tuple(v.shape) != want:
            raise CheckpointError(f"layer '{name}': {name}.{suffix} is {str(v.dtype).removeprefix('torch.')} "
                                  f"{list(v.shape)}, {fmt} of model.py's [{n}, {k}] weight needs "
                                  f"{str(dtype).removeprefix('torch.')} {list(want)}: is the checkpoint this "
                                  "model's?")
        return v
    if k % block:
        raise CheckpointError(f"layer '{name}': K = {k} is not a multiple of {fmt}'s block ({block})")
    if fmt == "mxfp8":
        codes = need("weight", torch.float8_e4m3fn, (n, k)).view(torch.uint8)
    else:
        codes = unpack_nibbles(need("weight_packed", torch.uint8, (n, k // 2)))
    if fmt == "nvfp4":
        scales = need("weight_scale", torch.float8_e4m3fn, (n, k // block)).view(torch.uint8)
        if bool((scales & 0x80).any()):
            raise CheckpointError(f"layer '{name}': {name}.weight_scale holds negative block scales, which NVFP4's "
                                  "UE4M3 scales cannot be")
        g = need("weight_global_scale", torch.float32, (1,)).reshape(())
        if not (bool(torch.isfinite(g)) and float(g) > 0):
            raise CheckpointError(f"layer '{name}': {name}.weight_global_scale is {float(g)}, not a positive number")
        return codes, scales, (1.0 / g).to(torch.float32)
    return codes, need("weight_scale", torch.uint8, (n, k // block)), None


def import_compressed_tensors(model: torch.nn.Module, directory: str | Path) -> Imported:
    """Apply the checkpoint in `directory` to `model` (in place) and return its quantized layers' codes.

    Every tensor of the checkpoint must land: a quantized layer's codes go to the compile (its model weight
    becomes their decoded value, so the model in torch computes what the codes mean); any other tensor
    replaces the model's of that name (cast to its dtype). A model parameter the checkpoint lacks (except one
    tied to a loaded one) or a checkpoint tensor the model lacks is an error naming it.
    """
    directory = Path(directory)
    qc, tensors = _read_checkpoint(directory)
    modules = dict(model.named_modules())
    by_module: dict[str, dict[str, torch.Tensor]] = {}
    for key, v in tensors.items():
        mod, _, suffix = key.rpartition(".")
        if suffix in ("weight_packed", "weight_scale", "weight_global_scale", *_EXTRA):
            by_module.setdefault(mod, {})[suffix] = v
    quantized = {m: t for m, t in by_module.items() if "weight_packed" in t or "weight_scale" in t}
    if not quantized:
        raise CheckpointError(f"--checkpoint {directory}: no quantized layer (no *.weight_packed or *.weight_scale "
                              "tensor); compile the float weights without --checkpoint")
    weights: dict[str, ImportedWeight] = {}
    static_inputs: list[str] = []
    for mod, t in sorted(quantized.items()):
        module = modules.get(mod)
        if not isinstance(module, torch.nn.Linear):
            raise CheckpointError(f"layer '{mod}': the checkpoint quantizes it but model.py's model has "
                                  f"{'no such module' if module is None else 'a ' + type(module).__name__ + ' there'}"
                                  "; only nn.Linear layers import (is the checkpoint this model's?)")
        _, fmt, weights_only = _group(qc, mod, module)
        if fmt == "mxfp8":
            t = {**t, "weight": tensors.get(f"{mod}.weight")}
        codes, scales, ts = _codes(mod, fmt, t, tuple(module.weight.shape))
        if "input_global_scale" in t:
            static_inputs.append(mod)
        names = tuple(f"{mod}.{s}" for s in t if t[s] is not None)
        w = ImportedWeight(mod, fmt, weights_only, codes, scales, ts, names, str(directory.resolve()))
        module.weight = torch.nn.Parameter(w.qtensor().dequantize().to(module.weight.dtype), requires_grad=False)
        weights[f"{mod}.weight"] = w
    used = {n for w in weights.values() for n in w.tensors}
    _load_rest(model, {k: v for k, v in tensors.items() if k not in used}, set(weights), directory)
    if static_inputs:
        warnings.warn(f"{len(static_inputs)} layer(s), e.g. '{static_inputs[0]}': the checkpoint's "
                      "input_global_scale (a calibrated NVFP4 activation tensor scale) is not used: mxc computes "
                      "the activations' tensor scale from their amax at every call (FORMATS.md)", MxcWarning,
                      stacklevel=2)
    return Imported(str(directory.resolve()), weights)


def _load_rest(model: torch.nn.Module, rest: dict[str, torch.Tensor], imported: set[str], directory: Path) -> None:
    """Copy the checkpoint's other tensors into the model by name; refuse what does not line up."""
    state = model.state_dict(keep_vars=True)
    unknown = sorted(set(rest) - set(state))
    if unknown:
        raise CheckpointError(f"--checkpoint {directory}: model.py's model has no parameter '{unknown[0]}'"
                              f"{f' (and {len(unknown) - 1} more)' if len(unknown) > 1 else ''}: is the "
                              "checkpoint this model's?")
    loaded: set[int] = set()
    with torch.no_grad():
        for name, v in rest.items():
            p = state[name]
            if tuple(p.shape) != tuple(v.shape):
                raise CheckpointError(f"--checkpoint {directory}: '{name}' is {list(v.shape)} in the checkpoint, "
                                      f"{list(p.shape)} in model.py's model: is the checkpoint this model's?")
            p.copy_(v.to(p.dtype))
            loaded.add(p.untyped_storage().data_ptr())
    params = dict(model.named_parameters(remove_duplicate=False))
    missing = [n for n, p in params.items() if n not in rest and n not in imported
               and p.untyped_storage().data_ptr() not in loaded]
    if missing:
        raise CheckpointError(f"--checkpoint {directory}: the checkpoint has no tensor '{missing[0]}'"
                              f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''} that model.py's "
                              "model has: is the checkpoint this model's?")

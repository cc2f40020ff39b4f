"""Load an mxc artifact directory and run it with IREE's runtime: local-task on the CPU, the CUDA driver on a GPU.

This module needs only torch, numpy and iree-base-runtime (no compiler), so a
GPU machine can run artifacts compiled elsewhere.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import ml_dtypes
import numpy as np
import torch

from mxc.errors import ArtifactError, InputError
from mxc.targets import TARGET_NAMES, by_device, get_target, targets
from mxc.weights import PARAMETER_SCOPE

from .fingerprint import file_sha256

ARTIFACT_FILES = ("model.vmfb", "model.irpa", "manifest.json", "inputs.pt")
# The manifest keys load() and --compare read, with their types.
_MANIFEST_KEYS = {"model": str, "target": str, "compiled_to": str, "inputs": list, "layers": list, "files": dict}


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    """A tensor as numpy; bf16 (which numpy lacks) as ml_dtypes.bfloat16, the type IREE's runtime reads as bf16."""
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:
        return t.view(torch.uint16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


def _from_numpy(a: np.ndarray) -> torch.Tensor:
    """numpy (ml_dtypes.bfloat16 included) -> torch, bits unchanged."""
    if a.dtype == ml_dtypes.bfloat16:
        return torch.from_numpy(a.view(np.uint16).copy()).view(torch.bfloat16)
    return torch.from_numpy(a.copy())


@dataclass
class Artifact:
    """A compiled model ready to run: call it with torch tensors, get torch tensors back."""

    path: Path
    manifest: dict
    _ctx: object
    _fn: object  # the first entry point: `main`, or --generate's `prefill`
    _device: object
    functions: dict = None  # entry point -> IREE function (`main`; --generate: `prefill`, `decode`)

    def __call__(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        from iree import runtime as rt

        check_inputs(inputs, self.manifest["inputs"])
        args = [rt.asdevicearray(self._device, _to_numpy(t)) for t in inputs]
        out = self._fn(*args)
        outs = out if isinstance(out, (list, tuple)) else [out]
        return [_from_numpy(np.asarray(o)) for o in outs]

    def generate(self, prompt: str | list[int], max_new_tokens: int = 32, *, temperature: float = 0.0,
                 top_k: int = 0, seed: int = 0, stop_at_eos: bool = True):
        """Generate text from a `--generate` artifact (mxc.generation.Generated: tokens, text, speeds).

        `prompt` is text (the artifact's tokenizer encodes it) or token ids. The KV cache stays on the
        device between steps: the runtime's output arrays go straight back in."""
        from mxc import generation

        gen = self.manifest.get("generate")
        if gen is None:
            raise ArtifactError(f"{self.path}: compiled without --generate, so it has no prefill/decode entry "
                                "points; recompile with mxc compile MODEL.py --generate")
        ids, tokenizer = self.encode(prompt)
        prefill, decode = (self.functions[f] for f in generation.ENTRY_POINTS)
        out = generation.generate_ids(
            lambda *a: self._call(prefill, a), lambda *a: self._call(decode, a), ids, max_new_tokens,
            gen["max_seq_len"], gen["eos_token_id"] if stop_at_eos else [],
            generation.Sampling(temperature, top_k, seed), to_host=lambda x: _from_numpy(np.asarray(x)),
            dynamic=generation.dynamic_prefill(self.manifest))
        if tokenizer is not None:
            out.text = tokenizer.decode(out.tokens, skip_special_tokens=True)
        return out

    def encode(self, prompt: str | list[int]) -> tuple[list[int], object]:
        """(token ids, the tokenizer) of a text prompt; (the ids, None) of ids."""
        if not isinstance(prompt, str):
            return list(prompt), None
        tokenizer = self.tokenizer()
        return tokenizer(prompt, add_special_tokens=False)["input_ids"], tokenizer

    def tokenizer(self):
        """The tokenizer `mxc compile --generate` saved from model.py's get_tokenizer()."""
        from transformers import AutoTokenizer

        where = self.path / self.manifest["generate"]["tokenizer"]
        try:
            return AutoTokenizer.from_pretrained(where)
        except Exception as e:
            raise ArtifactError(f"{where}: cannot load the tokenizer ({type(e).__name__}: {e}); recompile "
                                "with mxc compile --generate") from e

    def _call(self, fn, args) -> list:
        """Call an entry point: torch tensors go in as device arrays, device arrays (a KV cache) as they are."""
        from iree import runtime as rt

        args = [rt.asdevicearray(self._device, _to_numpy(a)) if isinstance(a, torch.Tensor) else a for a in args]
        out = fn(*args)
        return list(out) if isinstance(out, (list, tuple)) else [out]

    def example_inputs(self) -> tuple:
        """The inputs saved at compile time (a tuple of tensors, one per manifest `inputs` entry)."""
        where = self.path / "inputs.pt"
        try:
            inputs = torch.load(where)
        except Exception as e:
            raise ArtifactError(f"{where} is corrupt ({type(e).__name__}); recompile with mxc compile") from e
        n = len(self.manifest["inputs"])
        if not isinstance(inputs, (tuple, list)) or len(inputs) != n or \
                not all(isinstance(t, torch.Tensor) for t in inputs):
            raise ArtifactError(f"{where} has the wrong structure: expected a tuple of {n} tensor(s), "
                                f"found {type(inputs).__name__}; recompile with mxc compile")
        return tuple(inputs)


def takes(entry: dict) -> str:
    """An input's accepted shape in words: [1..64, 256] (a dynamic size as its range)."""
    sizes = [str(d) for d in entry["shape"]]
    for d in entry.get("dynamic", []):
        sizes[d["dim"]] = f"{d['min']}..{'' if d['max'] is None else d['max']}"
    return f"[{', '.join(sizes)}] {entry['dtype']}"


def check_inputs(inputs, expected: list[dict]) -> None:
    """InputError naming the input and what the artifact takes, unless `inputs` match the manifest's inputs:
    the dtype, the rank, every static size, and each dynamic size (get_dynamic_shapes()) within its range."""
    if len(inputs) != len(expected):
        raise InputError(f"the model takes {len(expected)} input(s), got {len(inputs)}")
    for i, (t, e) in enumerate(zip(inputs, expected)):
        if not isinstance(t, torch.Tensor):
            raise InputError(f"input {i} is a {type(t).__name__}, not a torch.Tensor")
        dyn = {d["dim"]: d for d in e.get("dynamic", [])}
        ok = str(t.dtype).removeprefix("torch.") == e["dtype"] and t.dim() == len(e["shape"]) and all(
            (d["min"] <= n and (d["max"] is None or n <= d["max"])) if (d := dyn.get(j)) else n == e["shape"][j]
            for j, n in enumerate(t.shape))
        if not ok:
            fix = ("a size outside its range needs a recompile with a wider range in model.py's get_dynamic_shapes()"
                   if dyn else "the artifact was compiled for the example inputs' shapes; declare the sizes that vary "
                   "in model.py's get_dynamic_shapes() and recompile")
            raise InputError(f"input {i} is {list(t.shape)} {str(t.dtype).removeprefix('torch.')}; the artifact takes "
                             f"{takes(e)}: {fix}")


def read_manifest(path: Path) -> dict:
    """`path`/manifest.json, checked for the keys mxc reads; ArtifactError (one line) otherwise."""
    where = path / "manifest.json"
    try:
        manifest = json.loads(where.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{where} is corrupt ({e}); recompile with mxc compile") from e
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{where} has the wrong structure (a JSON {type(manifest).__name__}, not an object); "
                            f"recompile with mxc compile")
    for key, kind in _MANIFEST_KEYS.items():
        if not isinstance(manifest.get(key), kind):
            why = "no" if key not in manifest else f"a {type(manifest[key]).__name__} as"
            hint = " (written by an older mxc?)" if key == "files" and key not in manifest else ""
            raise ArtifactError(f"{where} has the wrong structure: {why} '{key}' (expected a {kind.__name__}){hint}; "
                                f"recompile with mxc compile")
    bad = [f for f, h in manifest["files"].items() if not isinstance(h, str) or Path(f).is_absolute() or ".." in Path(f).parts]
    if bad:
        raise ArtifactError(f"{where} has the wrong structure: bad 'files' entry {bad[0]!r}; recompile with mxc compile")
    return manifest


def _check_files(path: Path, manifest: dict) -> None:
    """Every file the manifest lists is there with the sha256 it was written with."""
    listed = manifest["files"]
    missing = [f for f in dict.fromkeys([*ARTIFACT_FILES, *listed]) if f != "manifest.json" and not (path / f).is_file()]
    if missing:
        raise ArtifactError(f"{path}: incomplete artifact, missing {', '.join(missing)}; recompile with mxc compile")
    unlisted = [f for f in ARTIFACT_FILES if f != "manifest.json" and f not in listed]
    if unlisted:
        raise ArtifactError(f"{path}/manifest.json lists no hash for {', '.join(unlisted)}; recompile with mxc compile")
    for name, digest in listed.items():
        if file_sha256(path / name) != digest:
            raise ArtifactError(f"{path}/{name} is corrupt or from another compile (its sha256 is not the one "
                                f"manifest.json records); recompile with mxc compile")


def parameter_reader(path: Path, manifest: dict):
    """(the names in the artifact's .irpa, read(name) -> that parameter's bytes as a uint8 tensor)."""
    from iree import runtime as rt

    index = rt.ParameterIndex()
    index.load(str(Path(path) / manifest["parameters"]["file"]))
    entries = dict(index.items())
    return set(entries), lambda name: torch.from_numpy(np.frombuffer(entries[name].file_view, dtype=np.uint8).copy())


def open_manifest(path: Path) -> dict:
    """The manifest of a complete, compiled artifact directory, every file's hash checked; ArtifactError
    (one line, saying how to rebuild) otherwise."""
    if not path.is_dir():
        raise ArtifactError(f"{path}: no such artifact directory (create one with: mxc compile MODEL.py -o {path})")
    if not (path / "manifest.json").is_file():
        missing = [f for f in ARTIFACT_FILES if not (path / f).is_file()]
        raise ArtifactError(f"{path}: incomplete artifact, missing {', '.join(missing)}; recompile with mxc compile")
    manifest = read_manifest(path)
    if manifest["compiled_to"] != "vmfb":
        raise ArtifactError(f"{path}: compiled with --compile-to {manifest['compiled_to']}, so it holds no program "
                            f"to run (`mxc inspect {path}` reads it); recompile without --compile-to to run it")
    _check_files(path, manifest)
    return manifest


def load(path: str | Path, device: str = "cpu") -> Artifact:
    """Open an artifact directory; errors say which file is missing or corrupt and how to rebuild."""
    from iree import runtime as rt

    path = Path(path)
    runs = by_device(device)
    if runs is None:
        devices = [t.device for t in targets() if t.device]  # each runs the artifacts of one target
        raise ArtifactError(f"unknown device '{device}' (devices: {', '.join(devices)})")
    manifest = open_manifest(path)
    built_for = manifest.get("target")
    target = get_target(built_for) if built_for in TARGET_NAMES else None
    if target is not None and target.device is None:
        raise ArtifactError(f"{path}: a {built_for} artifact cannot run here: {target.not_runnable}")
    if target is not runs:
        fix = f"run it with --device {target.device}" if target else "recompile it"
        raise ArtifactError(f"{path}: built for target '{built_for}', not for --device {device} "
                            f"(which runs {runs.name} artifacts); {fix}, or recompile with --target {runs.name}")
    if manifest.get("options", {}).get("contraction") == "amx":  # the program runs AMX tile instructions
        from mxc.runtime.amx import enable_amx
        try:
            enable_amx()
        except RuntimeError as e:
            raise ArtifactError(f"{path}: compiled with --contraction amx, which this machine cannot run: {e}; "
                                "recompile it here without --contraction amx") from e
    if manifest.get("options", {}).get("contraction") == "dpbf16":  # the program runs vdpbf16ps
        from mxc.runtime.amx import host_has_dpbf16
        if not host_has_dpbf16():
            raise ArtifactError(f"{path}: compiled with --contraction dpbf16, which needs a CPU with AVX512-BF16 "
                                "(the /proc/cpuinfo flags avx512_bf16 and avx512vl) and this one lacks it; "
                                "recompile it here (--contraction fma)")
    driver = runs.driver
    extra = os.environ.get("MXC_IREE_FLAGS", "").split()  # IREE runtime flags, e.g. --cuda_use_streams=false
    if extra:
        try:
            rt.flags.parse_flags(*extra)
        except Exception as e:
            raise ArtifactError(f"MXC_IREE_FLAGS={' '.join(extra)}: IREE's runtime refused them ({e})") from e
    try:
        config = rt.Config(driver)
    except Exception as e:
        raise ArtifactError(f"--device {device}: IREE's {driver} driver found no usable device ({e}); "
                            f"run on a machine with an NVIDIA GPU and driver, or compile with --target cpu") from e
    try:
        index = rt.ParameterIndex()
        index.load(str(path / "model.irpa"))
        params = rt.create_io_parameters_module(config.vm_instance, index.create_provider(scope=PARAMETER_SCOPE))
    except Exception as e:
        raise ArtifactError(f"{path}/model.irpa is corrupt: {e}; recompile with mxc compile") from e
    try:
        module = rt.VmModule.copy_buffer(config.vm_instance, (path / "model.vmfb").read_bytes())
        ctx = rt.SystemContext(
            vm_modules=[params, rt.create_hal_module(config.vm_instance, config.device), module], config=config
        )
        functions = {f: ctx.modules.module[f] for f in manifest.get("entry_points") or ["main"]}
    except Exception as e:
        raise ArtifactError(f"{path}/model.vmfb cannot be loaded: {e}; recompile with mxc compile") from e
    return Artifact(path, manifest, ctx, next(iter(functions.values())), config.device, functions)

"""Load an mxc artifact directory and run it with IREE's runtime: local-task on the CPU, the CUDA driver on a GPU.

This module needs only torch, numpy and iree-base-runtime (no compiler), so a
GPU machine can run artifacts compiled elsewhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import ml_dtypes
import numpy as np
import torch

from mxc.errors import ArtifactError
from mxc.targets import TARGET_NAMES, by_device, get_target, targets
from mxc.weights import PARAMETER_SCOPE

ARTIFACT_FILES = ("model.vmfb", "model.irpa", "manifest.json", "inputs.pt")


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
    _fn: object
    _device: object

    def __call__(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        from iree import runtime as rt

        expected = self.manifest["inputs"]
        if len(inputs) != len(expected):
            raise ValueError(f"the model takes {len(expected)} inputs, got {len(inputs)}")
        args = [rt.asdevicearray(self._device, _to_numpy(t)) for t in inputs]
        out = self._fn(*args)
        outs = out if isinstance(out, (list, tuple)) else [out]
        return [_from_numpy(np.asarray(o)) for o in outs]

    def example_inputs(self) -> tuple:
        return torch.load(self.path / "inputs.pt")


def load(path: str | Path, device: str = "cpu") -> Artifact:
    """Open an artifact directory; errors say which file is missing or corrupt and how to rebuild."""
    from iree import runtime as rt

    path = Path(path)
    runs = by_device(device)
    if runs is None:
        devices = [t.device for t in targets() if t.device]  # each runs the artifacts of one target
        raise ArtifactError(f"unknown device '{device}' (devices: {', '.join(devices)})")
    if not path.is_dir():
        raise ArtifactError(f"{path}: no such artifact directory (create one with: mxc compile MODEL.py -o {path})")
    missing = [f for f in ARTIFACT_FILES if not (path / f).is_file()]
    if missing:
        raise ArtifactError(f"{path}: incomplete artifact, missing {', '.join(missing)}; recompile with mxc compile")
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{path}/manifest.json is corrupt ({e}); recompile with mxc compile") from e
    built_for = manifest.get("target")
    target = get_target(built_for) if built_for in TARGET_NAMES else None
    if target is not None and target.device is None:
        raise ArtifactError(f"{path}: a {built_for} artifact cannot run here: {target.not_runnable}")
    if target is not runs:
        fix = f"run it with --device {target.device}" if target else "recompile it"
        raise ArtifactError(f"{path}: built for target '{built_for}', not for --device {device} "
                            f"(which runs {runs.name} artifacts); {fix}, or recompile with --target {runs.name}")
    driver = runs.driver
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
        fn = ctx.modules.module["main"]
    except Exception as e:
        raise ArtifactError(f"{path}/model.vmfb cannot be loaded: {e}; recompile with mxc compile") from e
    return Artifact(path, manifest, ctx, fn, config.device)

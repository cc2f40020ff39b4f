"""mxc's targets, one module each: what a target compiles to, how it runs, which kernels a layer gets.

    cpu.py         IREE llvm-cpu, bit-exact emulation
    cuda_sm90.py   Hopper: mxc's sm_90a kernels in an IREE CUDA program
    cuda_sm100.py  Blackwell: block-scaled tcgen05 kernels for sm_100a (assembled, not run)

Adding a target: a module with a `Target` subclass and `TARGET = ...`, named in `_MODULES`.
"""

from __future__ import annotations

import importlib

from mxc.errors import MxcError
from mxc.numerics.formats import FORMATS

from .base import GemmLayer, Roofline, Target

_MODULES = {"cpu": "cpu", "cuda-sm90": "cuda_sm90", "cuda-sm100": "cuda_sm100"}
TARGET_NAMES = tuple(_MODULES)


class UnknownTargetError(MxcError, ValueError):
    """A target name mxc does not know; the message lists the valid ones."""


def get_target(name: str) -> Target:
    """The target called `name` (UnknownTargetError naming the valid ones otherwise)."""
    if name not in _MODULES:
        raise UnknownTargetError(f"unknown target '{name}': valid targets are {', '.join(TARGET_NAMES)}")
    return importlib.import_module(f"{__name__}.{_MODULES[name]}").TARGET


def targets() -> list[Target]:
    return [get_target(n) for n in TARGET_NAMES]


def by_device(device: str) -> Target | None:
    """The target whose artifacts `mxc run --device DEVICE` runs."""
    return next((t for t in targets() if t.device == device), None)


def support_table() -> list[dict]:
    """One row per format: name, element, block, scale, bits per element, each target's path (`mxc formats`)."""
    return [{**f.to_dict(), "paths": {t.name: t.format_path(f) for t in targets()}} for f in FORMATS.values()]


__all__ = ["TARGET_NAMES", "GemmLayer", "Roofline", "Target", "UnknownTargetError", "by_device", "get_target",
           "support_table", "targets"]

"""The GPU checks of mxc's sm_90a kernels against mxc.numerics: `pytest tests/gpu` on an H100 or H200.

The kernels come from one library, `mxc.runtime.cuda.hopper_kernels()`: assembled with nvcc
(`mxc.kernels.build`, cached under MXC_CACHE) or, where there is no nvcc, the prebuilt cubin that
MXC_GPU_CUBIN names (`python -m mxc.tools.bench_cuda build DIR` writes DIR/kernels.cubin and beside
it DIR/kernels.json, the names of the kernels it holds; MXC_GPU_CUBIN wins over nvcc). Elsewhere (no
CUDA device, not sm_90, neither nvcc nor MXC_GPU_CUBIN) every test is skipped with the reason.

CI runs tests/lit and tests/pytest only; these need the GPU.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import torch

CUBIN_ENV = "MXC_GPU_CUBIN"  # a prebuilt kernels.cubin, its kernels.json beside it


@dataclass(frozen=True)
class Gpu:
    """The loaded kernel library: its module, the names of the kernels it holds, where it came from."""

    module: object  # mxc.runtime.cuda.Module
    names: frozenset[str]
    source: str

    def require(self, kernels) -> None:
        """Skip the test when the library lacks one of `kernels` (a prebuilt cubin that is too old)."""
        missing = [k.name for k in kernels if k.name not in self.names]
        if missing:
            pytest.skip(f"{self.source} does not hold {', '.join(missing)}: rebuild it with "
                        "`python -m mxc.tools.bench_cuda build DIR`")


def _has_nvcc() -> bool:
    from mxc.kernels.build import nvcc
    from mxc.kernels.codegen import KernelError

    try:
        nvcc()
    except KernelError:
        return False
    return True


@cache
def unavailable() -> str | None:
    """Why the checks cannot run here, or None."""
    if not torch.cuda.is_available():
        return "no CUDA device: tests/gpu run on an H100 or H200 (sm_90)"
    major, minor = torch.cuda.get_device_capability()
    if (major, minor) != (9, 0):
        return f"{torch.cuda.get_device_name()} is sm_{major}{minor}: the kernels are sm_90a (H100, H200)"
    if not os.environ.get(CUBIN_ENV) and not _has_nvcc():
        return (f"no nvcc to assemble the kernels and {CUBIN_ENV} is unset: build the library elsewhere with "
                f"`python -m mxc.tools.bench_cuda build DIR`, then set {CUBIN_ENV}=DIR/kernels.cubin")
    return None


def _library() -> tuple[bytes, frozenset[str], str]:
    path = os.environ.get(CUBIN_ENV)
    if path:
        cubin, listing = Path(path), Path(path).with_suffix(".json")
        if not (cubin.is_file() and listing.is_file()):
            raise FileNotFoundError(f"{CUBIN_ENV}={path}: expected a cubin and the list of its kernels "
                                    f"beside it ({listing}), as `python -m mxc.tools.bench_cuda build DIR` "
                                    "writes them")
        return cubin.read_bytes(), frozenset(json.loads(listing.read_text())), f"the prebuilt cubin {cubin}"
    from mxc.kernels import build
    from mxc.runtime.cuda import hopper_kernels

    ks = hopper_kernels()
    built = build(ks)
    return built.cubin, frozenset(k.name for k in ks), f"the library nvcc assembled ({built.cubin_path})"


def pytest_configure(config) -> None:
    """Under pytest-xdist (`-n N`), each worker's torch takes its share of the cores for the CPU references
    (by default every worker takes them all: N x cores threads)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def pytest_report_header(config) -> str:
    why = unavailable()
    if why:
        return f"mxc gpu checks: skipped ({why})"
    return f"mxc gpu checks: {torch.cuda.get_device_name()}, torch {torch.__version__}"


@pytest.fixture(scope="session")
def gpu() -> Gpu:
    why = unavailable()
    if why:
        pytest.skip(why)
    from mxc.runtime.cuda import Module

    cubin, names, source = _library()
    return Gpu(Module(cubin), names, source)

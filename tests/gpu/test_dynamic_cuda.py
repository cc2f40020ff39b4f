"""A dynamic row count on cuda-sm90: one artifact of `examples/mlp_dynamic.py` (batch 1-8, tokens 1-512) run on
the GPU at row counts in every bucket of kernels the compile chose (dec at M = 1, 8 and 16, tilea / tileq + rdec
from 17, its K split fewer as M grows), within `mxc run --compare`'s tolerance of the fake-quant reference.

The GPU host has no torch-mlir: the artifacts are compiled beforehand where mxc compiles (this machine, CI's),
`python -m mxc.tools.gpu_artifacts DIR`, and named by MXC_GPU_ARTIFACTS=DIR; where torch-mlir is importable they
are compiled here instead. Skipped without a CUDA device or artifacts.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from mxc.tools.gpu_artifacts import DYNAMIC, compile_dynamic

ARTIFACTS_ENV = "MXC_GPU_ARTIFACTS"
# (batch, tokens): M = 1 (dec1), 6 (dec m8), 16 (dec m16), 17, 40, 100, 200 (rdec na 32-256), 1500 (rdec, K split),
# 2048 and 4096 (rdec, one split), each row count's own bucket of kernels
SHAPES = [(1, 1), (2, 3), (1, 16), (1, 17), (4, 10), (1, 100), (8, 25), (3, 500), (4, 512), (8, 512)]


@pytest.fixture(scope="module", params=sorted(DYNAMIC))
def artifact(request, tmp_path_factory):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: run on an H100 or H200")
    given = os.environ.get(ARTIFACTS_ENV)
    if given:
        path = Path(given) / request.param
        if not (path / "model.vmfb").is_file():
            pytest.skip(f"{path} has no artifact: `python -m mxc.tools.gpu_artifacts {given}` where mxc compiles")
        return path
    try:
        import torch_mlir  # noqa: F401
    except ImportError:
        pytest.skip(f"no torch-mlir to compile with: set {ARTIFACTS_ENV} (python -m mxc.tools.gpu_artifacts DIR)")
    return compile_dynamic(tmp_path_factory.mktemp("dyn"), request.param)


def test_every_bucket_matches_the_reference(artifact):
    from mxc.runtime.artifact import load
    from mxc.runtime.compare import compare

    art = load(artifact, device="cuda")
    failures = []
    for batch, tokens in SHAPES:
        x = torch.randn(batch, tokens, 256, generator=torch.Generator().manual_seed(batch * 1000 + tokens))
        (y,) = art(x)
        assert list(y.shape) == [batch, tokens, 64]
        verdict = compare(art, [y], (x,))["vs_reference"]
        if not verdict["within_tolerance"]:
            failures.append(f"M = {batch * tokens} ({batch}x{tokens}): {verdict}")
    assert not failures, "\n".join(failures)

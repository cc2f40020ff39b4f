"""`mxc compile --target cuda-sm90` on a machine without a GPU: the artifact, its kernels, the manifest,
the dumps, the decisions where Hopper has no kernel, and the errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import EXAMPLES, run_mxc

pytestmark = pytest.mark.skipif(shutil.which("nvcc") is None and not Path("/usr/local/cuda/bin/nvcc").is_file(),
                                reason="nvcc not found: the cuda-sm90 target assembles its kernels with nvcc/ptxas")


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def test_weight_only_artifact_embeds_the_kernels(tmp_path):
    out, dump = tmp_path / "a", tmp_path / "ir"
    rc, _, err = run_mxc("compile", str(EXAMPLES / "mlp.py"), "--target", "cuda-sm90", "--format", "nvfp4",
                         "--weights-only", "-o", str(out), "--dump-compilation-phases-to", str(dump))
    assert rc == 0, err
    m = _manifest(out)
    assert m["target"] == "cuda-sm90" and m["kernel_library"] == "kernels/mxc_sm90a.cubin"
    assert m["options"] == {"target": "cuda-sm90", "format": "nvfp4", "policy": "", "weights_only": True,
                            "contraction": "decomposed", "act_format": "", "scale_rule": "floor", "rounding": "rne",
                            "seed": 0, "error_metric": "mse", "hadamard": 0,
                            "act_dtype": "f32", "auto": "", "calibrate": "", "generate": False,
                            "max_seq_len": 0, "checkpoint": "", "kv_cache": ""}  # the manifest's documented JSON
    kernels = {r["layer"]: r["kernel"] for r in m["layers"]}
    assert kernels == {"fc1": "mxc_dec_nvfp4_m8_bias", "fc2": "mxc_dec_nvfp4_m8_bias",
                       "head": "mxc_dec_nvfp4_m8"}
    fc1 = m["layers"][0]  # the same choice as data, and what its numerics add (bf16 activations)
    assert fc1["kernels"] == [{"kind": "dec", "name": "mxc_dec_nvfp4_m8_bias", "arch": "sm_90a",
                               "w_format": "nvfp4", "bias": True, "mt": 8, "r": 1}]
    assert fc1["run_time_rounding"] == ["bf16 activations"]
    vmfb = (out / "model.vmfb").read_bytes()
    assert b"mxc_dec_nvfp4_m8_bias" in vmfb and b"mxc_dec_nvfp4_m8\x00" in vmfb  # the cubin, embedded
    for ext in ("cu", "ptx", "cubin"):
        assert (out / "kernels" / f"mxc_sm90a.{ext}").stat().st_size > 0
        assert (dump / f"mxc_sm90a.{ext}").is_file()  # beside the MLIR of every phase
    phases = sorted((p.name for p in dump.glob("mlp.*.mlir")), key=lambda n: int(n.split(".")[1]))
    assert phases[6:11] == ["mlp.6.legalize-cuda.mlir", "mlp.7.lower-cuda.mlir", "mlp.8.lower-linalg.mlir",
                            "mlp.9.decompose-attention.mlir", "mlp.10.iree-input.mlir"]
    assert "flow.dispatch" in (dump / "mlp.7.lower-cuda.mlir").read_text()
    assert (out / "reference.pt").is_file()  # what `mxc run --compare` reads on the GPU machine


def test_fp4_activations_take_the_block_scaled_twin(tmp_path):
    out = tmp_path / "a"
    rc, _, err = run_mxc("compile", str(EXAMPLES / "mlp.py"), "--target", "cuda-sm90", "-o", str(out))
    assert rc == 0, err
    for r in _manifest(out)["layers"]:
        assert r["weight_format"] == r["activation_format"] == "mxfp4"
        assert r["kernel"].startswith("mxc_bsq_mxfp4_u32 + mxc_bsmma_mxfp4_mxfp4")
        assert r["path"] == "twin of kind::mxf4: decoded to bf16, wgmma"


def test_int8_activations_stay_high_precision_with_a_warning(tmp_path):
    out = tmp_path / "a"
    rc, _, err = run_mxc("compile", str(EXAMPLES / "mlp.py"), "--target", "cuda-sm90", "--format", "mxint8",
                         "-o", str(out))
    assert rc == 0, err
    assert "3 layer(s) (fc1, fc2, head): mxint8 activations x mxint8 weights have no cuda-sm90 kernel" in err
    for r in _manifest(out)["layers"]:
        assert r["weight_format"] == "mxint8" and r["activation_format"] == "none"
        assert "activations high precision on cuda-sm90" in r["decision"]


def test_mxfp8_activations_run_as_exact_bf16_tiles(tmp_path):
    """MXFP8 x MXFP8: the activations quantized (bit for bit) and held as bf16 (exact), then rdec: no
    run-time rounding beyond float32 summation order."""
    out = tmp_path / "a"
    rc, _, err = run_mxc("compile", str(EXAMPLES / "mlp.py"), "--target", "cuda-sm90", "--format", "mxfp8",
                         "-o", str(out))
    assert rc == 0, err
    for r in _manifest(out)["layers"]:
        assert r["activation_format"] == "mxfp8"
        assert r["kernel"].startswith("mxc_tileq_mxfp8_r16p + mxc_rdec_mxfp8_n16_s")
        assert r["run_time_rounding"] == [] and r["path"].startswith("mxfp8 activations quantized")


def test_prefill_shapes_take_rdec(tmp_path):
    out = tmp_path / "a"
    rc, _, err = run_mxc("compile", str(EXAMPLES / "cnn.py"), "--target", "cuda-sm90", "--format", "if4",
                         "--weights-only", "-o", str(out))
    assert rc == 0, err
    kernels = {r["layer"]: r["kernel"] for r in _manifest(out)["layers"]}
    assert kernels["conv1"] == "mxc_tilea_r256p + mxc_rdec_if4_n256_s1_bias" and kernels["head"].startswith("mxc_dec_if4")


def test_cuda_artifact_errors_name_the_device(tmp_path):
    out = tmp_path / "a"
    assert run_mxc("compile", str(EXAMPLES / "mlp.py"), "--target", "cuda-sm90", "--weights-only",
                   "-o", str(out))[0] == 0
    rc, _, err = run_mxc("run", str(out))
    assert rc == 2 and "built for target 'cuda-sm90', not for --device cpu" in err and "--device cuda" in err
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    if not has_gpu:
        rc, _, err = run_mxc("run", str(out), "--device", "cuda")
        assert rc == 2 and "found no usable device" in err


def test_unknown_target_lists_the_targets(tmp_path):
    rc, _, err = run_mxc("compile", str(EXAMPLES / "mlp.py"), "--target", "cuda-sm89", "-o", str(tmp_path / "a"))
    assert rc == 2 and "unknown target 'cuda-sm89' (targets: cpu, cuda-sm90, cuda-sm100)" in err

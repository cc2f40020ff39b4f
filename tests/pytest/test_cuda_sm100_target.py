"""`mxc compile --target cuda-sm100` (Blackwell): the artifact embeds the sm_100a kernels, the dumps
hold their PTX and cubin, the manifest says which path each layer took, `mxc inspect --target
cuda-sm100` estimates each layer on a B200, and the errors (running it, options that do not apply,
bad policy rules) say what to do."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from conftest import EXAMPLES, run_mxc

pytestmark = pytest.mark.skipif(shutil.which("nvcc") is None and not Path("/usr/local/cuda/bin/nvcc").is_file(),
                                reason="nvcc not found: the cuda-sm100 target assembles its kernels with nvcc/ptxas")


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


@pytest.fixture(scope="module")
def mlp_sm100(tmp_path_factory):
    """The MLP with NVFP4 (Four Over Six) weights and NVFP4 activations, fc2 weight-only IF4 (policy)."""
    d = tmp_path_factory.mktemp("sm100")
    policy = d / "policy.toml"
    policy.write_text('default = "nvfp4_4over6"\nact_format = "nvfp4"\n[layers]\n'
                      '"fc2" = {format = "if4", weights_only = true}\n')
    out, dump = d / "a", d / "ir"
    rc, _, err = run_mxc("compile", str(EXAMPLES / "mlp.py"), "--target", "cuda-sm100", "--policy", str(policy),
                         "-o", str(out), "--dump-compilation-phases-to", str(dump))
    assert rc == 0, err
    return out, dump


def test_artifact_embeds_the_sm100a_kernels(mlp_sm100):
    out, dump = mlp_sm100
    m = _manifest(out)
    assert m["target"] == "cuda-sm100" and m["kernel_library"] == "kernels/mxc_sm100a.cubin"
    cubin = (out / "kernels" / "mxc_sm100a.cubin").read_bytes()
    assert cubin[:4] == b"\x7fELF" and cubin in (out / "model.vmfb").read_bytes()  # embedded as is
    for ext in ("cu", "ptx", "cubin"):
        assert (dump / f"mxc_sm100a.{ext}").read_bytes() == (out / "kernels" / f"mxc_sm100a.{ext}").read_bytes()
    ptx = (dump / "mxc_sm100a.ptx").read_text()
    assert ".target sm_100a" in ptx
    assert re.search(r"tcgen05\.mma\.cta_group::1\.kind::mxf4nvf4\.block_scale\.block16", ptx)
    assert "tcgen05.cp.cta_group::1.32x128b.warpx4" in ptx and "cp.async.bulk.shared::cluster.global" in ptx
    assert ".entry mxc_gemv_if4_m16_bias" in ptx  # IF4 at M = 8: the decode path in registers
    assert "flow.dispatch" in (dump / "mlp.7.lower-cuda.mlir").read_text()


def test_manifest_says_which_path_each_layer_took(mlp_sm100):
    rows = {r["layer"]: r for r in _manifest(mlp_sm100[0])["layers"]}
    assert rows["fc1"]["kernel"] == "mxc_amax_nvfp4 + mxc_bsq_nvfp4_u32 + mxc_bsmma_nvfp4_nvfp4_4over6_bias"
    assert rows["fc1"]["path"] == "native: tcgen05.mma kind::mxf4nvf4.block_scale"
    assert rows["fc2"]["kernel"] == "mxc_gemv_if4_m16_bias"  # M = 8: decode shape
    assert rows["fc2"]["path"].startswith("decode:")


def test_inspect_prints_the_b200_roofline(mlp_sm100):
    rc, out, err = run_mxc("inspect", str(mlp_sm100[0]), "--target", "cuda-sm100")
    assert rc == 0, err
    assert "roofline on cuda-sm100 (B200: 2.25 PF bf16, 4.5 PF FP8/FP6, 9 PF FP4, 8 TB/s" in out
    line = next(s for s in out.split("roofline on")[1].splitlines() if s.startswith("fc1 "))
    assert "8x512x256" in line and " 9.00 " in line and "memory" in line  # M = 8: bandwidth-bound


def test_roofline_numbers():
    from mxc.targets.roofline import estimate

    row = {"layer": "big", "status": "quantized", "input_shape": [8192, 8192], "weight_shape": [8192, 8192],
           "weight_format": "mxfp8", "activation_format": "mxfp8", "has_bias": False, "bits_per_weight": 8.25}
    e = estimate(row)
    assert e.bound == "compute" and e.peak == 4.5e15
    assert e.seconds == pytest.approx(2 * 8192**3 / 4.5e15)
    e4 = estimate({**row, "weight_format": "mxfp4", "activation_format": "mxfp4", "bits_per_weight": 4.25})
    assert e4.peak == 9e15 and e4.seconds == pytest.approx(e.seconds / 2)
    mixed = estimate({**row, "weight_format": "mxfp4", "bits_per_weight": 4.25})  # kind::mxf8f6f4: FP8 rate
    assert mixed.peak == 4.5e15
    wo = estimate({**row, "activation_format": "none"})
    assert wo.peak == 2.25e15 and wo.path.startswith("decode:")
    dec = estimate({**row, "input_shape": [1, 8192], "activation_format": "none"})
    assert dec.bound == "memory" and dec.seconds == pytest.approx(dec.bytes / 8e12)
    assert estimate({**row, "status": "high precision"}) is None


def test_running_a_blackwell_artifact_says_why_not(mlp_sm100):
    for device in ("cpu", "cuda"):
        rc, _, err = run_mxc("run", str(mlp_sm100[0]), "--device", device)
        assert rc == 2 and "a cuda-sm100 artifact cannot run here" in err and "--target cuda-sm90" in err


def test_options_that_do_not_apply(tmp_path):
    rc, _, err = run_mxc("compile", str(EXAMPLES / "mlp.py"), "--target", "cuda-sm100", "--contraction",
                         "scaled-generic", "-o", str(tmp_path / "a"))
    assert rc == 2 and "--contraction scaled-generic applies to --target cpu only" in err
    assert not (tmp_path / "a").exists()
    rc, _, err = run_mxc("inspect", str(tmp_path / "a"), "--target", "cuda-sm90")
    assert rc == 2 and "invalid choice: 'cuda-sm90'" in err


def test_a_bad_policy_rule_names_the_rule_and_the_file(tmp_path):
    policy = tmp_path / "p.toml"
    policy.write_text('[layers]\n"fc*" = "mxfp4{scale_rule=bogus}"\n')
    rc, _, err = run_mxc("compile", str(EXAMPLES / "mlp.py"), "--target", "cuda-sm100", "--policy", str(policy),
                         "-o", str(tmp_path / "a"))
    assert rc == 2 and f"{policy}: rule 'fc*': scale_rule must be one of" in err

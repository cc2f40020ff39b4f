"""--calibrate (mxc.calibration): GPTQ / MR-GPTQ through each format's own quantizer, the pass, the artifacts."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from mxc.calibration.gptq import CalibrationError, SingularHessian, block_order, gptq, rel_output_error
from mxc.calibration.method import CalibrateSpec, rotation_for
from mxc.errors import MxcWarning
from mxc.numerics import FORMATS, FormatSpec, quantize
from mxc.numerics.quantize import nv_tensor_scale

from conftest import EXAMPLES, run_mxc

ALL = sorted(FORMATS)


def _problem(seed: int, n: int = 48, k: int = 256, tokens: int = 512):
    """A small linear layer with correlated inputs (as a real layer's are) and outlier channels."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.eye(k) + torch.randn(k, k, generator=g) / k**0.5
    x = torch.randn(tokens, k, generator=g) @ mix
    x[:, :4] *= 8
    w = torch.randn(n, k, generator=g) * 0.02
    return w, (x.T @ x).double()


@pytest.mark.parametrize("fmt", ALL)
def test_gptq_beats_round_to_nearest_for_every_format(fmt):
    for seed in range(3):
        w, h = _problem(seed)
        for actorder in (False, True):
            r = gptq(w, h, FormatSpec.parse(fmt), actorder=actorder)
            assert r.err_gptq < 0.8 * r.err_rtn, (fmt, seed, actorder, r)


@pytest.mark.parametrize("fmt", ["mxfp4", "nvfp4", "nvfp4_4over6", "if4", "mxfp6_e3m2", "mxint8"])
def test_calibrated_codes_are_the_quantizers_codes_of_the_calibrated_weight(fmt):
    """The codes mxq-quantize-weights stores (numerics.quantize of W~ with the fixed NV tensor scale) are valid codes
    of the format, give the error gptq reports, and the NV tensor scale is the original weight's."""
    w, h = _problem(7)
    spec = FormatSpec.parse(fmt)
    r = gptq(w, h, spec)
    qt = quantize(r.weight, spec, s_enc=r.s_enc)
    assert int(qt.elements.max()) < 2 ** spec.format.element.bits
    assert torch.isfinite(qt.scale_values()).all()
    if spec.format.family == "mx":
        assert r.s_enc is None
    else:
        assert torch.equal(r.s_enc, nv_tensor_scale(w, spec.format))
    assert rel_output_error(w, qt.dequantize(), h) == pytest.approx(r.err_gptq, rel=1e-12)
    # the calibrated weight stays close to the weight: GPTQ moves codes, it does not rewrite the layer
    assert (r.weight - w).norm() / w.norm() < 0.5


def test_hadamard_rotation_mr_gptq():
    w, h = _problem(3)
    spec = FormatSpec.parse("mxfp4{hadamard=32}")
    r = gptq(w, h, spec)
    assert r.err_gptq < 0.8 * r.err_rtn
    assert rotation_for(576, 32) == 32 and rotation_for(1536, 16) == 128 and rotation_for(48, 16) == 16
    assert rotation_for(40, 32) is None


@pytest.mark.parametrize("fmt", ["mxfp4", "mxfp4{hadamard=32}", "mxfp6_e2m3", "mxfp8", "mxint8"])
def test_mse_scale_search_lowers_the_error_and_its_codes_are_the_rules_codes_of_the_calibrated_weight(fmt):
    """MR-GPTQ's scale search (scales=mse) never does worse than the rule on the GPTQ objective it minimizes
    per block, beats it over seeds, and W~ still quantizes, by the format's own rule, to the searched values
    (the error gptq reports is recomputed from quantize(W~), also through the rotation there and back)."""
    from mxc.calibration.gptq import NUDGE, _searched

    spec = FormatSpec.parse(fmt)
    wins = 0
    for seed in range(3):
        w, h = _problem(seed)
        rule, mse = gptq(w, h, spec), gptq(w, h, spec, scale_search=True)
        qt = quantize(mse.weight, spec, s_enc=mse.s_enc)
        assert rel_output_error(w, qt.dequantize(), h) == pytest.approx(mse.err_gptq, rel=1e-12)
        wins += mse.err_gptq < rule.err_gptq
    assert wins >= 2, fmt
    # one block column: the stored block quantizes back to the chosen values, some rows took another scale
    w, h = _problem(5)
    flat = spec.without_hadamard()
    block = w[:, : flat.block_size].double() * 40
    q, stored = _searched(block, torch.eye(flat.block_size, dtype=torch.float64), flat)
    assert torch.equal(quantize(stored.float(), flat).dequantize().double(), q)
    moved = ~torch.isclose(stored, block).all(-1)
    assert moved.any() and torch.equal(stored[moved], q[moved] * NUDGE)


def test_mse_scale_search_applies_to_mx_formats_only():
    w, h = _problem(1)
    for fmt in ("nvfp4", "if4"):
        spec = FormatSpec.parse(fmt)
        a, b = gptq(w, h, spec), gptq(w, h, spec, scale_search=True)
        assert torch.equal(a.weight, b.weight)


def test_act_order_keeps_blocks_whole():
    bs = 16
    diag = torch.rand(8 * bs, generator=torch.Generator().manual_seed(0))
    perm = block_order(diag, bs, actorder=True)
    assert sorted(perm.tolist()) == list(range(8 * bs))
    blocks = perm.reshape(-1, bs)
    assert torch.equal(blocks - blocks[:, :1], torch.arange(bs).expand(8, bs))  # each block contiguous, in order
    assert (blocks[:, 0] % bs == 0).all()
    mass = diag.reshape(-1, bs).sum(-1)[blocks[:, 0] // bs]
    assert (mass[:-1] >= mass[1:]).all()  # heaviest block first
    assert torch.equal(block_order(diag, bs, actorder=False), torch.arange(8 * bs))


def test_singular_hessian_is_reported_with_the_layer():
    w, _ = _problem(0, k=32)
    h = torch.ones(32, 32, dtype=torch.float64)  # rank one: not positive definite without dampening
    with pytest.raises(SingularHessian, match="layer 'blocks.3.fc'.*damp"):
        gptq(w, h, FormatSpec.parse("mxfp4"), damp=0.0, layer="blocks.3.fc")


def test_stochastic_rounding_is_refused():
    w, h = _problem(0, k=32)
    with pytest.raises(CalibrationError, match="layer 'fc'.*stochastic"):
        gptq(w, h, FormatSpec.parse("mxfp4{rounding=stochastic}"), layer="fc")


def test_calibrate_spec_text():
    assert str(CalibrateSpec.parse("gptq")) == "gptq"
    assert str(CalibrateSpec.parse("gptq{damp=0.05,actorder=0}")) == "gptq{damp=0.05,actorder=0}"
    assert CalibrateSpec.parse("mr-gptq").scales == "mse" and CalibrateSpec.parse("gptq").scales == "rule"
    assert str(CalibrateSpec.parse("mr-gptq{scales=mse}")) == "mr-gptq"
    assert str(CalibrateSpec.parse("mr-gptq{scales=rule}")) == "mr-gptq{scales=rule}"
    assert str(CalibrateSpec.parse("mr-gptq{rotate=auto}")) == "mr-gptq{rotate=auto}"
    with pytest.raises(ValueError, match="rotate applies to mr-gptq"):
        CalibrateSpec.parse("gptq{rotate=auto}")
    with pytest.raises(ValueError, match="bad value 'sometimes' for rotate"):
        CalibrateSpec.parse("mr-gptq{rotate=sometimes}")
    assert str(CalibrateSpec.parse("gptq{scales=mse}")) == "gptq{scales=mse}"
    assert not CalibrateSpec.parse("rtn").active and not CalibrateSpec.parse("").active
    for bad, msg in [("gtpq", "unknown calibration method 'gtpq'"), ("gptq{damp=x}", "bad value 'x' for damp"),
                     ("gptq{foo=1}", "unknown option 'foo'"), ("gptq{damp=-1}", "damp must be >= 0"),
                     ("gptq{scales=max}", "bad value 'max' for scales")]:
        with pytest.raises(ValueError, match=msg):
            CalibrateSpec.parse(bad)


def test_sequential_falls_back_to_rtn_for_a_singular_layer():
    """A layer whose Hessian is singular even after dampening keeps round-to-nearest, with a warning naming it."""
    from mxc.calibration.sequential import calibrate_model

    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 32))
    x = torch.randn(8, 64)  # 8 tokens < K = 64: X^T X is singular
    spec = FormatSpec.parse("mxfp4")
    formats = {"0": (None, spec), "2": (None, spec)}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        done, kept = calibrate_model(model, [(x,)], formats, {"0": "gptq{damp=0}", "2": "gptq"})
    assert set(done) == {"2"} and set(kept) == {"0"}
    assert any("layer '0' keeps round-to-nearest" in str(w.message) and issubclass(w.category, MxcWarning)
               for w in caught)


def _irpa(path: Path) -> dict:
    from iree import runtime as rt

    index = rt.ParameterIndex()
    index.load(str(path))
    return {k: np.frombuffer(v.file_view, dtype=np.uint8).copy() for k, v in index.items()}


@pytest.mark.parametrize("fmt", ["nvfp4", "mxfp4"])
def test_calibrated_artifact_is_bit_exact_and_passes_compare(tmp_path, fmt):
    """`mxc compile --calibrate gptq`: each calibrated layer's stored codes equal mxc.numerics' codes of the
    calibrated weight (recomputed here by the same deterministic calibration), and --compare passes."""
    from mxc.calibration.sequential import calibrate_model
    from mxc.compiler.frontend import load_model_file
    from mxc.runtime.reference import layer_formats

    out = tmp_path / "a"
    rc, stdout, err = run_mxc("compile", EXAMPLES / "llama.py", "-o", out, "--format", fmt, "--weights-only",
                              "--calibrate", "gptq")
    assert rc == 0, err
    assert "calibrated 29 layers (gptq" in stdout
    manifest = json.loads((out / "manifest.json").read_text())
    rows = [r for r in manifest["layers"] if "calibration" in r]
    assert len(rows) == 29 and manifest["options"]["calibrate"] == "gptq"
    assert all(r["calibration"]["output_error"] < r["calibration"]["output_error_rtn"] for r in rows)
    assert all("calibrated gptq" in r["decision"] for r in rows)
    spec = load_model_file(EXAMPLES / "llama.py")
    done, _ = calibrate_model(spec.model, [tuple(spec.example_inputs)], layer_formats(manifest),
                              {r["layer"]: "gptq" for r in rows})
    params = _irpa(out / "model.irpa")
    for r in rows:
        c = done[r["layer"]]
        qt = quantize(c.weight, FormatSpec.parse(r["weight_format"]), s_enc=c.s_enc)
        names = r["calibration"]["params"]
        assert np.array_equal(params[names[0]], qt.packed_elements().numpy().reshape(-1)), r["layer"]
        assert np.array_equal(params[names[1]], qt.scales.numpy().reshape(-1)), r["layer"]
        if qt.tensor_scale is not None:
            assert np.array_equal(params[names[2]], qt.tensor_scale.reshape(1).numpy().view(np.uint8))
    rc, stdout, err = run_mxc("run", out, "--compare")
    assert rc == 0, stdout + err
    assert ": pass" in stdout
    rc, stdout, _ = run_mxc("inspect", out)
    assert rc == 0 and "--calibrate: 29 layers on 64 calibration tokens" in stdout


def test_mr_gptq_rotates_and_a_policy_key_picks_layers(tmp_path):
    policy = tmp_path / "p.toml"
    policy.write_text('default = "nvfp4"\nweights_only = true\n[layers]\n'
                      '"*.mlp.*" = { format = "mxfp4", calibrate = "mr-gptq" }\n')
    out = tmp_path / "a"
    rc, _, err = run_mxc("compile", EXAMPLES / "llama.py", "-o", out, "--policy", policy, "-q")
    assert rc == 0, err
    rows = json.loads((out / "manifest.json").read_text())["layers"]
    cal = {r["layer"]: r for r in rows if "calibration" in r}
    assert cal and all(".mlp." in name for name in cal)
    for r in cal.values():
        k = r["weight_shape"][1]
        assert r["calibration"]["method"] == "mr-gptq"
        assert r["options"]["hadamard"] == rotation_for(k, 32), r["weight_format"]
    assert not any("calibration" in r for r in rows if ".self_attn." in r["layer"])
    rc, stdout, err = run_mxc("run", out, "--compare")
    assert rc == 0, stdout + err


def test_mr_gptq_rotate_auto_keeps_the_rotation_only_where_it_helps(tmp_path):
    """mr-gptq{rotate=auto}: per weight-only layer the smaller calibrated output error of rotated and not;
    the layers it left unrotated are compiled without the rotation, codes bit-exact, --compare passes."""
    from mxc.calibration.sequential import calibrate_model
    from mxc.compiler.frontend import load_model_file
    from mxc.runtime.reference import layer_formats

    out = tmp_path / "a"
    rc, _, err = run_mxc("compile", EXAMPLES / "llama.py", "-o", out, "--format", "mxfp4", "--weights-only",
                         "--calibrate", "mr-gptq{rotate=auto}", "-q")
    assert rc == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    rows = [r for r in manifest["layers"] if "calibration" in r]
    assert len(rows) == 29
    for r in rows:
        c = r["calibration"]
        assert c["method"] == "mr-gptq{rotate=auto}" and c["output_error"] <= c["output_error_other"]
        assert (r["options"].get("hadamard") is None) == (c["rotation"] == "none"), r["weight_format"]
        if c["rotation"] == "none":
            assert "kept it unrotated" in r["decision"] and "hadamard" not in r["weight_format"]
    assert {r["calibration"]["rotation"] for r in rows} == {"none", "kept"}  # this model has both
    spec = load_model_file(EXAMPLES / "llama.py")
    done, _ = calibrate_model(spec.model, [tuple(spec.example_inputs)], layer_formats(manifest),
                              {r["layer"]: "mr-gptq{rotate=auto}" for r in rows})
    params = _irpa(out / "model.irpa")
    for r in rows:
        qt = quantize(done[r["layer"]].weight, FormatSpec.parse(r["weight_format"]))
        assert np.array_equal(params[r["calibration"]["params"][0]], qt.packed_elements().numpy().reshape(-1))
    rc, stdout, err = run_mxc("run", out, "--compare")
    assert rc == 0 and ": pass" in stdout, stdout + err


def test_calibrate_errors(tmp_path):
    rc, _, err = run_mxc("compile", EXAMPLES / "mlp.py", "-o", tmp_path / "a", "--calibrate", "gtpq")
    assert rc != 0 and "unknown calibration method 'gtpq' (methods: rtn, gptq, mr-gptq)" in err
    rc, _, err = run_mxc("compile", EXAMPLES / "mlp.py", "-o", tmp_path / "b", "--calibrate", "gptq",
                         "--rounding", "stochastic")
    assert rc != 0 and "stochastic" in err and "layer '" in err
    assert not (tmp_path / "b").exists()


def test_auto_with_calibrate_writes_a_policy_that_reproduces_the_artifact(tmp_path):
    rc, stdout, err = run_mxc("compile", EXAMPLES / "llama.py", "-o", tmp_path / "a", "--auto", "bits=4.5",
                              "--weights-only", "--calibrate", "gptq")
    assert rc == 0, err
    assert 'calibrate = "gptq"' in (tmp_path / "a" / "policy.toml").read_text()
    rc, _, err = run_mxc("compile", EXAMPLES / "llama.py", "-o", tmp_path / "b", "--policy",
                         tmp_path / "a" / "policy.toml", "-q")
    assert rc == 0, err
    assert (tmp_path / "a" / "model.irpa").read_bytes() == (tmp_path / "b" / "model.irpa").read_bytes()


@pytest.mark.skipif(shutil.which("nvcc") is None and not Path("/usr/local/cuda/bin/nvcc").is_file(),
                    reason="nvcc not found: the cuda-sm90 target assembles its kernels with nvcc/ptxas")
def test_cuda_artifact_stores_the_calibrated_reference(tmp_path):
    """A cuda-sm90 artifact keeps its weights only in the kernels' layout: the reference.pt it carries (what
    --compare uses on a GPU host) is computed from the calibrated weights, and rebuilding it from the .irpa
    is refused with an ArtifactError that says why."""
    from mxc.calibration.sequential import calibrate_model
    from mxc.compiler.frontend import load_model_file
    from mxc.errors import ArtifactError
    from mxc.numerics import fake_quantize
    from mxc.runtime.reference import calibrated_weights, fake_quant_forward, layer_formats

    out = tmp_path / "g"
    rc, _, err = run_mxc("compile", EXAMPLES / "mlp.py", "-o", out, "--target", "cuda-sm90", "--format", "nvfp4",
                         "--weights-only", "--calibrate", "gptq", "-q")
    assert rc == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    spec = load_model_file(EXAMPLES / "mlp.py")
    rows = {r["layer"]: r for r in manifest["layers"] if "calibration" in r}
    done, _ = calibrate_model(spec.model, [tuple(spec.example_inputs)], layer_formats(manifest),
                              {name: "gptq" for name in rows})
    stored = {name: fake_quantize(c.weight, FormatSpec.parse(rows[name]["weight_format"]), s_enc=c.s_enc)
              for name, c in done.items()}
    ref = torch.load(out / "reference.pt")["fake_quant"]
    mine = fake_quant_forward(spec.model, spec.example_inputs, manifest, stored)
    assert all(torch.equal(a, b) for a, b in zip(ref, mine))
    with pytest.raises(ArtifactError, match="kernels' layout"):
        calibrated_weights(out, manifest)

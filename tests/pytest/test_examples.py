"""Every example x format x mode: compile, run --compare --json, check against the references."""

import json

import numpy as np
import pytest
from iree import runtime as rt

from conftest import EXAMPLES, run_mxc
from mxc.numerics import quantize

# Lower bounds on SQNR vs torch float32 ("sensible error"), measured with margin.
MIN_SQNR_DB = {"mxfp8": 15.0, "mxfp4": 5.0, "nvfp4": 5.0}  # worst seen: 19.8, 9.5, 9.9


@pytest.mark.parametrize("weights_only", [False, True], ids=["w+a", "w-only"])
@pytest.mark.parametrize("fmt", ["mxfp8", "mxfp4", "nvfp4"])
@pytest.mark.parametrize("example", ["mlp", "cnn", "llama"])
def test_example(example, fmt, weights_only, tmp_path):
    out = tmp_path / "out"
    args = ["compile", EXAMPLES / f"{example}.py", "-o", out, "--format", fmt, "-q"]
    rc, _, err = run_mxc(*args, *(["--weights-only"] if weights_only else []))
    assert rc == 0, err
    rc, stdout, err = run_mxc("run", out, "--compare", "--json")
    assert rc == 0, err
    res = json.loads(stdout)
    ref = res["vs_reference"]
    assert ref["within_tolerance"], ref
    if weights_only:  # nothing is re-rounded at run time: every output within float32-order tolerance
        assert ref["fraction_within_rtol"] == 1.0, ref
    assert res["vs_torch"]["sqnr_db"] > MIN_SQNR_DB[fmt], res["vs_torch"]
    manifest = json.loads((out / "manifest.json").read_text())
    quantized = [r for r in manifest["layers"] if r["status"] == "quantized"]
    assert quantized and all(r["weight_format"] == fmt for r in quantized)
    assert all(r["activation_format"] == ("none" if weights_only else fmt) for r in quantized)


def _irpa(path):
    index = rt.ParameterIndex()
    index.load(str(path))
    return {key: np.frombuffer(bytes(entry.file_view), dtype=np.uint8) for key, entry in index.items()}


def assert_mlp_weights_equal_numerics(artifact, spec: str) -> dict:
    """Every MLP weight in the artifact's .irpa equals mxc.numerics' packed codes for format spec `spec`."""
    import importlib.util

    params = _irpa(artifact / "model.irpa")
    mspec = importlib.util.spec_from_file_location("mlp", EXAMPLES / "mlp.py")
    mod = importlib.util.module_from_spec(mspec)
    mspec.loader.exec_module(mod)
    model = mod.get_model()
    for layer in ("fc1", "fc2", "head"):
        q = quantize(getattr(model, layer).weight, spec)
        assert np.array_equal(params[f"{layer}.{spec}.elements"], q.packed_elements().numpy().ravel())
        assert np.array_equal(params[f"{layer}.{spec}.scales"], q.scales.numpy().ravel())
        if q.tensor_scale is not None:
            assert params[f"{layer}.{spec}.tensor_scale"].view(np.float32).item() == q.tensor_scale.item()
    return params


@pytest.mark.parametrize("fmt", ["mxfp8", "mxfp4", "nvfp4"])
def test_compiled_weight_bits_equal_numerics(fmt, tmp_path):
    rc, _, err = run_mxc("compile", EXAMPLES / "mlp.py", "-o", tmp_path, "--format", fmt, "-q")
    assert rc == 0, err
    params = assert_mlp_weights_equal_numerics(tmp_path, fmt)
    assert "fc1.weight" not in params  # the float weight is not shipped once quantized

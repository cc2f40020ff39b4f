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
@pytest.mark.parametrize("example", ["mlp", "cnn", "llama", "mlp_dynamic"])
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


def _check_examples(*args) -> tuple[int, list[list[str]], str]:
    """python -m mxc.tools.check_examples ARGS: (exit code, the table's rows split in words, stdout)."""
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "mxc.tools.check_examples", *map(str, args)],
                       capture_output=True, text=True)
    lines = p.stdout.splitlines()
    return p.returncode, [line.split() for line in lines[2:lines.index("")]], p.stdout + p.stderr


def test_check_examples_tool(write_model, tmp_path):
    """The examples checker on a representative subset (the whole matrix is README's table): the MLP cast
    to bf16 by the tool's generated model.py, an MX and an NV format, both modes; a failing model."""
    rc, rows, out = _check_examples("--examples", "mlp", "--dtypes", "bf16", "--formats", "mxfp4", "nvfp4",
                                    "--work", tmp_path / "w", "--keep-passing")
    assert rc == 0 and "4 of 4 passed" in out, out
    assert [r[:5] for r in rows] == [["mlp", "bf16", f, m, "pass"] for f in ("mxfp4", "nvfp4")
                                     for m in ("weights-only", "weights+acts")]
    manifest = json.loads((tmp_path / "w" / "mlp-bf16-nvfp4-wa" / "manifest.json").read_text())
    assert manifest["inputs"] == [{"shape": [8, 256], "dtype": "bfloat16"}]
    assert all(r["status"] == "quantized" for r in manifest["layers"])
    from conftest import BRANCHY

    rc, rows, out = _check_examples("--examples", write_model(BRANCHY), "--dtypes", "f32",
                                    "--formats", "mxfp4", "--modes", "w")
    assert rc == 1 and rows[0][:6] == ["model", "f32", "mxfp4", "weights-only", "compile", "error"], out
    assert "0 of 1 passed; failed: model-f32-mxfp4-w" in out

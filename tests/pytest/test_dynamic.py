"""Dynamic token dimensions: model.py's get_dynamic_shapes(), one artifact for every size in the declared range."""

import json

import pytest
import torch

from conftest import EXAMPLES, run_mxc
from mxc.compiler.driver import compile_file
from mxc.errors import InputError
from mxc.options import Options
from mxc.runtime.artifact import load
from mxc.runtime.compare import compare


@pytest.fixture(scope="module")
def nvfp4_artifact(tmp_path_factory):
    out = tmp_path_factory.mktemp("dyn") / "nvfp4"
    compile_file(EXAMPLES / "mlp_dynamic.py", out, Options(format="nvfp4"))
    return out


def test_manifest_records_the_declared_ranges(nvfp4_artifact):
    m = json.loads((nvfp4_artifact / "manifest.json").read_text())
    assert m["inputs"] == [{"shape": [2, 16, 256], "dtype": "float32",
                            "dynamic": [{"dim": 0, "min": 1, "max": 8}, {"dim": 1, "min": 1, "max": 512}]}]
    rows = {r["layer"]: r for r in m["layers"]}
    assert rows["up"]["status"] == "quantized" and rows["up"]["input_shape"] == [None, None, 256]
    if m["options"]["contraction"] == "fma":  # (the default where AVX2 is and AMX is not): rows in blocks of 64
        assert "FMA" in rows["up"]["kernel"]
    elif m["options"]["contraction"] == "amx":  # built for one shape: IREE's contraction for dynamic rows
        assert "AMX" not in rows["up"].get("kernel", "")
    rc, out, _ = run_mxc("inspect", nvfp4_artifact)
    assert rc == 0 and "inputs [1..8, 1..512, 256] float32" in out


@pytest.mark.parametrize("shape", [(1, 1), (3, 100), (8, 512), (2, 16)])
def test_every_size_in_range_matches_the_reference(nvfp4_artifact, shape):
    """NVFP4 weights and activations (the per-tensor scale spans all the rows, whatever their count)."""
    art = load(nvfp4_artifact)
    x = torch.randn(*shape, 256, generator=torch.Generator().manual_seed(sum(shape)))
    (y,) = art(x)
    assert list(y.shape) == [*shape, 64]
    result = compare(art, [y], (x,))
    assert result["vs_reference"]["within_tolerance"], result["vs_reference"]


def test_out_of_range_and_wrong_shapes_are_refused(nvfp4_artifact, tmp_path):
    art = load(nvfp4_artifact)
    with pytest.raises(InputError, match=r"input 0 is \[9, 4, 256\] float32; the artifact takes \[1\.\.8, 1\.\.512, "
                                         r"256\] float32: .*wider range in model.py's get_dynamic_shapes"):
        art(torch.randn(9, 4, 256))
    with pytest.raises(InputError, match=r"takes \[1\.\.8, 1\.\.512, 256\]"):
        art(torch.randn(2, 4, 128))  # a static size differs
    with pytest.raises(InputError, match="takes 1 input"):
        art(torch.randn(2, 4, 256), torch.randn(2))
    torch.save((torch.randn(2, 600, 256),), tmp_path / "x.pt")
    rc, _, err = run_mxc("run", nvfp4_artifact, "--inputs", tmp_path / "x.pt")
    assert rc == 2 and "mxc: error: input 0 is [2, 600, 256] float32" in err
    (tmp_path / "bad.pt").write_text("not a tensor")
    rc, _, err = run_mxc("run", nvfp4_artifact, "--inputs", tmp_path / "bad.pt")
    assert rc == 2 and "cannot be read by torch.load" in err


def test_mxc_run_inputs_compares_at_another_size(nvfp4_artifact, tmp_path):
    torch.save((torch.randn(5, 33, 256),), tmp_path / "x.pt")
    rc, out, err = run_mxc("run", nvfp4_artifact, "--inputs", tmp_path / "x.pt", "--compare", "--json")
    assert rc == 0, err
    result = json.loads(out)
    assert result["outputs"][0]["shape"] == [5, 33, 64] and result["vs_reference"]["within_tolerance"]


def test_static_artifact_names_get_dynamic_shapes(tmp_path):
    out = tmp_path / "static"
    compile_file(EXAMPLES / "mlp.py", out, Options(format="mxfp8", contraction="decomposed"))
    with pytest.raises(InputError, match=r"input 0 is \[9, 256\] float32; the artifact takes \[8, 256\] float32: "
                                         r"the artifact was compiled for the example inputs' shapes; declare"):
        load(out)(torch.randn(9, 256))


def test_cuda_target_refuses_dynamic_tokens(tmp_path):
    rc, _, err = run_mxc("compile", EXAMPLES / "mlp_dynamic.py", "--target", "cuda-sm90", "--format", "nvfp4",
                         "--weights-only", "-o", tmp_path / "o", "-q")
    assert rc == 2
    assert "layer up: a dynamic token dimension (tensor<?x?x256xf32>) is not supported on cuda-sm90 yet" in err
    assert "compile for --target cpu, or drop get_dynamic_shapes()" in err


def test_bad_dynamic_shapes_name_the_function(write_model, tmp_path):
    head = open(EXAMPLES / "mlp_dynamic.py").read().split("def get_dynamic_shapes")[0]
    raising = write_model(head + "def get_dynamic_shapes():\n    raise RuntimeError('boom')\n", "raising.py")
    rc, _, err = run_mxc("compile", raising, "-o", tmp_path / "a", "-q")
    assert rc == 2 and "get_dynamic_shapes() raised RuntimeError: boom" in err
    # a range torch.export cannot keep (the LayerNorm needs 256 features): its error and the module are named
    wrong = write_model(head + "def get_dynamic_shapes():\n"
                               "    return ({2: torch.export.Dim('features', min=2, max=512)},)\n", "wrong.py")
    rc, _, err = run_mxc("compile", wrong, "-o", tmp_path / "b", "-q")
    assert rc == 2 and "torch.export failed for MLP" in err
    one = write_model("import torch\n"
                      "def get_model():\n    torch.manual_seed(0)\n    return torch.nn.Linear(64, 8)\n"
                      "def get_example_inputs():\n    return (torch.randn(1, 64),)\n"
                      "def get_dynamic_shapes():\n    return ({0: torch.export.Dim('tokens', min=1, max=64)},)\n",
                      "one.py")
    rc, _, err = run_mxc("compile", one, "-o", tmp_path / "c", "-q")
    assert rc == 2 and "torch.export specializes an example size of 1, so give that dimension an example size" in err

"""Dynamic token dimensions: model.py's get_dynamic_shapes(), one artifact for every size in the declared range."""

import json
import shutil
from pathlib import Path

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
    if m["options"]["contraction"] == "fma":  # (the default where AVX2 is, AMX and AVX512-BF16 not): rows in
        assert "FMA" in rows["up"]["kernel"]  # blocks of 64
    elif m["options"]["contraction"] == "dpbf16":  # NVFP4 x NVFP4: exact bf16 operands, the dot kernel
        assert "bf16 dot" in rows["up"]["kernel"]
    elif m["options"]["contraction"] == "amx":  # built for one shape: IREE's contraction for dynamic rows
        assert "AMX" not in rows["up"].get("kernel", "")
    rc, out, _ = run_mxc("inspect", nvfp4_artifact)
    assert rc == 0 and "inputs [1..8, 1..512, 256] float32" in out
    rc, out, err = run_mxc("inspect", nvfp4_artifact, "--target", "cuda-sm100")  # (the roofline needs one M)
    assert rc == 0, err
    assert "?x512x256" in out and "dynamic row count: not estimated" in out


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


_NVCC = shutil.which("nvcc") is not None or Path("/usr/local/cuda/bin/nvcc").is_file()


@pytest.mark.skipif(not _NVCC, reason="nvcc not found: the CUDA targets assemble their kernels with nvcc/ptxas")
@pytest.mark.parametrize("target, fmt, last, choices", [
    ("cuda-sm90", ["mxfp8"], "mxc_tileq_mxfp8_r256p + mxc_rdec_mxfp8_n256_s1_bias", 5),
    ("cuda-sm100", ["nvfp4", "--weights-only"], "mxc_bsq_bf16 + mxc_bsdec_nvfp4_bias", 4),
    ("cuda-sm100", ["mxfp8"], "mxc_bsq_mxfp8_u16 + mxc_bsmma_mxfp8_mxfp8_bias", 1)])
def test_cuda_targets_choose_kernels_by_row_count(tmp_path, target, fmt, last, choices):
    """A dynamic row count on a CUDA target: kernels by buckets of M up to torch.export's largest (8 x 512),
    one program branching on M at run time (what runs them is checked on the GPU: tests/gpu/test_dynamic_cuda.py);
    kernels that do not depend on M (sm100's block-scaled MMA): one launch for every M."""
    out, dump = tmp_path / "o", tmp_path / "ir"
    rc, _, err = run_mxc("compile", EXAMPLES / "mlp_dynamic.py", "--target", target, "--format", *fmt,
                         "-o", out, "-q", "--dump-compilation-phases-to", dump)
    assert rc == 0, err
    m = json.loads((out / "manifest.json").read_text())
    up = next(r for r in m["layers"] if r["layer"] == "up")
    assert up["input_shape"] == [None, None, 256] and up["kernel"] == last
    buckets = up.get("kernel_buckets", [{"m_max": None, "kernel": last, "kernels": up["kernels"]}])
    assert len(buckets) == choices and buckets[-1] == {"m_max": None, "kernel": last, "kernels": up["kernels"]}
    assert [b["m_max"] for b in buckets[:-1]] == sorted(b["m_max"] for b in buckets[:-1])
    lowered = next(dump.glob("*.lower-cuda.mlir")).read_text()
    assert lowered.count("scf.if") == 2 * (choices - 1)  # (both layers)
    assert "-> tensor<?x512xf32>" in lowered  # up's output, as many rows as its input
    for b in buckets:
        assert all(f"@mxc_kernels::@{k['name']}" in lowered for k in b["kernels"])
    if choices > 1:
        assert up["path"].startswith(f"dynamic M, {choices} kernel choices by M at run time; M 1-")


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

"""`mxc formats`: the table, per-target paths, --json, --error-table, --weight and its errors."""

import json

import pytest
import torch

from conftest import EXAMPLES, run_mxc
from mxc.numerics import FORMATS
from mxc.numerics.support import UnknownTargetError, native_path


def test_formats_lists_every_format_with_bits():
    rc, out, err = run_mxc("formats")
    assert rc == 0, err
    for name, fmt in FORMATS.items():
        line = next(li for li in out.splitlines() if li.startswith(name + " "))
        assert f"{fmt.bits_per_element:.3f}" in line
    rc, out, _ = run_mxc("formats", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert set(rows) == set(FORMATS) and rows["nvfp4"]["paths"]["cuda-sm100"].startswith("native")


@pytest.mark.parametrize("fmt, target, path", [
    ("if4", "cpu", "emulated"), ("mxfp8", "cuda-sm90", "QGMMA x MXFP8 acts"),
    ("mxfp4", "cuda-sm90", "twin: decoded to bf16"), ("mxfp6_e3m2", "cuda-sm100", "native: tcgen05.mma kind::mxf8f6f4"),
    ("nvfp4_4over6", "cuda-sm100", "kind::mxf4nvf4"), ("mxint8", "cuda-sm100", "decode path, weight-only"),
    ("if4", "cuda-sm90", "decode path, weight-only"),
])
def test_native_path(fmt, target, path):
    assert path in native_path(fmt, target)


def test_native_paths_agree_with_the_kernels():
    """support.py is data; the kernels' selection is what runs: they must say the same."""
    from mxc.kernels import layer_path, select
    from mxc.numerics.formats import FORMATS

    for name in FORMATS:
        act = "nvfp4" if name == "nvfp4_4over6" else name
        for target in ("cuda-sm90", "cuda-sm100"):
            ks = select(4096, name, act, False, target)
            path = native_path(name, target)
            if isinstance(ks, str):
                assert "weight-only" in path, (name, target)
            elif target == "cuda-sm100":
                assert path.startswith(layer_path(ks).removesuffix(".block_scale")), (name, path, layer_path(ks))
            else:
                assert ("QGMMA" in path) == (ks[-1].kind == "qgmma") and ("twin" in path) == (ks[-1].kind == "bsmma")


def test_native_path_errors():
    with pytest.raises(UnknownTargetError, match="valid targets are cpu, cuda-sm90, cuda-sm100"):
        native_path("mxfp4", "rocm")
    with pytest.raises(ValueError, match="unknown format"):
        native_path("fp5", "cpu")


def test_error_table_with_a_weight(tmp_path):
    torch.save({"w": torch.randn(16, 64)}, tmp_path / "w.pt")
    rc, out, err = run_mxc("formats", "--error-table", "--samples", "4", "--weight", f"{tmp_path / 'w.pt'}:w")
    assert rc == 0, err
    assert all(c in out for c in ("gaussian", "laplace", "student_t3", "weight"))
    for name in FORMATS:
        assert any(li.startswith(name + " ") for li in out.splitlines()), name
    assert "mxfp4{hadamard=32}" in out
    rc, out, err = run_mxc("formats", "--error-table", "--samples", "4", "--weight", f"{EXAMPLES / 'mlp.py'}:fc1.weight")
    assert rc == 0, err


@pytest.mark.parametrize("weight, message", [("nope.pt", "no file nope.pt"), ("{mlp}:no.such", "no tensor 'no.such'")])
def test_error_table_weight_errors(weight, message):
    rc, _, err = run_mxc("formats", "--error-table", "--samples", "4", "--weight",
                         weight.format(mlp=EXAMPLES / "mlp.py"))
    assert rc == 2 and message in err, err

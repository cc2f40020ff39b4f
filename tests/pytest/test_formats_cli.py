"""`mxc formats`: the table, per-target paths, --json, --error-table, --weight and its errors."""

import json

import pytest
import torch

from conftest import EXAMPLES, run_mxc
from mxc.numerics import FORMATS


def test_formats_lists_every_format_with_bits():
    rc, out, err = run_mxc("formats")
    assert rc == 0, err
    for name, fmt in FORMATS.items():
        line = next(li for li in out.splitlines() if li.startswith(name + " "))
        assert f"{fmt.bits_per_element:.3f}" in line
    rc, out, _ = run_mxc("formats", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert set(rows) == set(FORMATS) and rows["nvfp4"]["paths"]["cuda-sm100"].startswith("native")


def test_formats_table_is_not_truncated():
    from mxc.targets import support_table

    rc, out, _ = run_mxc("formats")
    for r in support_table():
        line = next(li for li in out.splitlines() if li.startswith(r["name"] + " "))
        assert all(r["paths"][t] in line for t in ("cuda-sm90", "cuda-sm100")), line


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

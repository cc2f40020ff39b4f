"""conv2d quantized as a GEMM over K = C_in * kh * kw: stride, padding, dilation, K not divisible, no bias."""

import json

import pytest

from conftest import run_mxc

CONV = """
import torch
class M(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)          # K = 27: padded to 32
        self.b = torch.nn.Conv2d(8, 16, (3, 2), padding=(2, 1), dilation=2, bias=False)
    def forward(self, x):
        return self.b(torch.relu(self.a(x)))
def get_model():
    torch.manual_seed(0)
    return M()
def get_example_inputs():
    torch.manual_seed(1)
    return (torch.randn(2, 3, 11, 9),)
"""


@pytest.mark.parametrize("args", [["--format", "mxfp4"], ["--format", "nvfp4", "--weights-only"],
                                  ["--format", "mxfp6_e2m3", "--act-format", "mxfp8"]])
def test_conv_as_gemm_matches_reference(write_model, tmp_path, args):
    rc, _, err = run_mxc("compile", write_model(CONV), "-o", tmp_path / "o", "-q", *args)
    assert rc == 0, err
    rows = json.loads((tmp_path / "o" / "manifest.json").read_text())["layers"]
    assert [(r["layer"], r["op"], r["status"]) for r in rows] == [("a", "conv2d", "quantized"),
                                                                  ("b", "conv2d", "quantized")]
    assert rows[0]["weight_shape"] == [8, 27] and rows[1]["weight_shape"] == [16, 48]
    rc, out, err = run_mxc("run", tmp_path / "o", "--compare", "--json")
    assert rc == 0, err
    ref = json.loads(out)["vs_reference"]
    assert ref["within_tolerance"], ref
    if "--weights-only" in args:
        assert ref["fraction_within_rtol"] == 1.0, ref

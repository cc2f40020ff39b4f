"""Issue 12's reliability items: shared weights stored once, errors that name the cause and the fix."""

import json

import torch

from conftest import run_mxc

LSTM = """
import torch
class M(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(32, 32, batch_first=True)
        self.head = torch.nn.Linear(32, 32)
    def forward(self, x):
        return self.head(self.lstm(x)[0])
def get_model():
    torch.manual_seed(0)
    return M()
def get_example_inputs():
    torch.manual_seed(1)
    return (torch.randn(2, 16, 32),)
"""

TIED = """
import torch
class M(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(128, 32)
        self.lm_head = torch.nn.Linear(32, 128, bias=False)
        self.lm_head.weight = self.emb.weight
    def forward(self, ids):
        return self.lm_head(self.emb(ids))
def get_model():
    torch.manual_seed(0)
    return M()
def get_example_inputs():
    return (torch.arange(32).reshape(2, 16),)
"""


def _f32_bytes(model_src: str, tmp_path) -> int:
    namespace: dict = {}
    exec(model_src, namespace)
    return sum(p.numel() * 4 for p in namespace["get_model"]().parameters())  # tied params counted once


def test_lstm_recurrent_weight_stored_once(write_model, tmp_path):
    path = write_model(LSTM)
    f32 = _f32_bytes(LSTM, tmp_path)
    rc, _, err = run_mxc("compile", path, "-o", tmp_path / "none", "--format", "none", "-q")
    assert rc == 0, err
    assert (tmp_path / "none" / "model.irpa").stat().st_size < 1.1 * f32 + 8192  # was 16 copies of weight_hh
    rc, _, err = run_mxc("compile", path, "-o", tmp_path / "q", "--format", "mxfp4", "-q")
    assert rc == 0, err
    m = json.loads((tmp_path / "q" / "manifest.json").read_text())
    assert m["weights_bytes"] < 0.5 * f32
    steps = [r for r in m["layers"] if r["layer"].startswith("lstm")]
    assert len(steps) == 17 and len({r["weight_param"] for r in steps}) == 2  # weight_ih once, weight_hh 16x
    assert sum("shares_weight_with" in r for r in steps) == 15
    rc, out, _ = run_mxc("inspect", tmp_path / "q")
    assert rc == 0 and out.count("weights shared with lstm#2") == 15
    rc, out, err = run_mxc("run", tmp_path / "q", "--compare")
    assert rc == 0, out + err


def test_tied_embedding_stored_once(write_model, tmp_path):
    path = write_model(TIED)
    rc, _, err = run_mxc("compile", path, "-o", tmp_path / "none", "--format", "none", "-q")
    assert rc == 0, err
    m = json.loads((tmp_path / "none" / "manifest.json").read_text())
    assert m["weights_bytes"] == 128 * 32 * 4 and m["parameters"]["count"] == 1

"""Issue 12's reliability items: shared weights stored once, errors that name the cause and the fix."""

import json

import torch

from conftest import BRANCHY, run_mxc

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


CACHE_OUTPUT = """
import torch
class DynamicCache:  # stands in for transformers.cache_utils.DynamicCache (not a pytree)
    def __init__(self, t):
        self.t = t
class M(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(32, 32)
    def forward(self, x):
        y = self.proj(x)
        return y, DynamicCache(y)
def get_model(): return M()
def get_example_inputs(): return (torch.randn(2, 32),)
"""

WRONG_SHAPE = """
import torch
def get_model(): return torch.nn.Sequential(torch.nn.Linear(64, 32))
def get_example_inputs(): return (torch.randn(4, 48),)
"""



def test_export_hint_matches_cause(write_model, tmp_path):
    cases = {CACHE_OUTPUT: "use_cache = False", WRONG_SHAPE: "shape mismatch", BRANCHY: "torch.cond"}
    for i, (src, hint) in enumerate(cases.items()):
        rc, _, err = run_mxc("compile", write_model(src, f"m{i}.py"), "-o", tmp_path / "o")
        assert rc == 2 and "torch.export failed" in err, err
        hints = [line for line in err.splitlines() if line.startswith("mxc: hint:")]
        assert len(hints) == 1 and hint in hints[0], err
        assert "def forward" not in err and "Traceback" not in err  # torch's partial graph, its logged traceback
        assert src != WRONG_SHAPE or "in module '0' (Linear)" in err


def test_one_line_errors(tmp_path):
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "mxc.tools.mxc_opt", str(tmp_path / "nope.mlir")],
                       capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.strip() == f"mxc-opt: error: {tmp_path / 'nope.mlir'}: no such file or directory"
    for n in ("-5", "0"):
        rc, out, err = run_mxc("formats", "--error-table", "--samples", n)
        assert rc == 2 and "--samples: must be at least 1" in err and "Traceback" not in err and "nan" not in out


def test_formats_into_closed_pipe_exits_quietly():
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-m", "mxc.tools.mxc", "formats", "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()  # the reader (`| head`) is gone before mxc writes
    err = p.stderr.read().decode()
    assert p.wait() == 0 and "BrokenPipe" not in err and "Traceback" not in err, err


EMBEDDING_BAG = """
import torch
class M(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.bag = torch.nn.EmbeddingBag(100, 32, mode="mean")
        self.fc = torch.nn.Linear(32, 16)
    def forward(self, ids):
        return self.fc(self.bag(ids))
def get_model():
    torch.manual_seed(0)
    return M()
def get_example_inputs():
    return (torch.randint(0, 100, (4, 8)),)
"""


def test_op_iree_cannot_lower_is_named(write_model, tmp_path):
    rc, _, err = run_mxc("compile", write_model(EMBEDDING_BAG), "-o", tmp_path / "o", "-q")
    assert rc == 2, err
    first = err.splitlines()[0]
    assert "IREE cannot compile 'torch.aten.embedding_bag" in first and "in module 'bag'" in first, err
    assert "keep that module out of the graph" in err and "Diagnostics:" not in err
    repro = err.split("reproduce with: ")[1].split()[-1]
    assert "failed to legalize operation" in open(repro).read()  # IREE's whole text kept with the reproducer


def test_readme_links_resolve_in_a_clone():
    import re

    from conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    assert "../shared" not in readme and "DESIGN.md" not in readme
    for target in re.findall(r"\]\(([^)#:]+)\)", readme):
        assert (ROOT / target).exists(), target
    assert (ROOT / "docs" / "FORMATS.md").read_text().startswith("# Block-scaled formats")


def test_policy_checked_first_and_unused_rule_warned(write_model, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[layers]\n"proj" = "bogus"\n')
    rc, _, err = run_mxc("compile", tmp_path / "not_yet_written.py", "-o", tmp_path / "o", "--policy", bad)
    assert rc == 2 and "unknown format 'bogus'" in err and "no such file" not in err  # before the model is read
    policy = tmp_path / "p.toml"
    policy.write_text('[layers]\n"0" = "nvfp4"\n"decoder.*" = "mxfp8"\n')
    model = write_model("import torch\ndef get_model(): return torch.nn.Sequential(torch.nn.Linear(64, 32))\n"
                        "def get_example_inputs(): return (torch.randn(4, 64),)\n")
    rc, _, err = run_mxc("compile", model, "-o", tmp_path / "o", "--policy", policy, "--compile-to", "formats", "-q")
    assert rc == 0 and "policy rule 'decoder.*' is not used: it matches no layer" in err, err

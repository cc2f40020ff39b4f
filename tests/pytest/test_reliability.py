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


def test_tied_lm_head_quantized_copy_is_said(write_model, tmp_path):
    # The table stays f32 for the lookup; the quantized lm_head's codes are other data, stored beside it.
    rc, out, err = run_mxc("compile", write_model(TIED), "-o", tmp_path / "q", "--format", "mxfp4")
    assert rc == 0, err
    m = json.loads((tmp_path / "q" / "manifest.json").read_text())
    emb, head = m["layers"]
    assert emb["op"] == "embedding" and emb["weight_param"] == "emb.weight"  # the tied tensor's first name
    assert head["source_param"] == "emb.weight" and head["weight_param"] == "lm_head.mxfp4.elements"
    assert emb["shares_source_with"] == ["lm_head"] and head["shares_source_with"] == ["emb"]
    f32_table, fp4_codes_and_scales = 128 * 32 * 4, 128 * 32 // 2 + 128
    assert m["weights_bytes"] == emb["weight_bytes"] + head["weight_bytes"] == f32_table + fp4_codes_and_scales
    rc, out, _ = run_mxc("inspect", tmp_path / "q")
    head_line = next(line for line in out.splitlines() if line.startswith("lm_head"))
    assert "quantized from emb.weight, which emb also reads: this layer stores its own quantized copy" \
        in head_line
    assert "also feeds lm_head, which stores a quantized copy" in next(
        line for line in out.splitlines() if line.startswith("emb "))


ATTENTION = """
import torch
class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = torch.nn.MultiheadAttention(32, 4, batch_first=True)
        self.fc = torch.nn.Linear(32, 32)
    def forward(self, x):
        return self.fc(self.attn(x, x, x, need_weights=False)[0])
class M(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = torch.nn.Embedding(64, 32)
        self.wpe = torch.nn.Embedding(8, 32)
        self.blocks = torch.nn.ModuleList([Block()])
    def forward(self, ids):
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1]))
        for b in self.blocks:
            x = b(x)
        return x
def get_model():
    torch.manual_seed(0)
    return M()
def get_example_inputs():
    return (torch.arange(16).reshape(2, 8) % 64,)
"""


def _compile_attention(tmp_path, *dtype_lines):
    model = tmp_path / "attn.py"
    model.write_text(ATTENTION + "".join(dtype_lines))
    rc, out, err = run_mxc("compile", model, "-o", tmp_path / "o", "--format", "mxfp8")
    assert rc == 0, err
    return json.loads((tmp_path / "o" / "manifest.json").read_text()), out


def test_embedding_tables_listed_with_bytes(tmp_path):
    m, summary = _compile_attention(tmp_path)
    tables = [r for r in m["layers"] if r["op"] == "embedding"]
    assert [(r["layer"], r["weight_shape"], r["weight_bytes"], r["status"]) for r in tables] == [
        ("wte", [64, 32], 64 * 32 * 4, "high precision"), ("wpe", [8, 32], 8 * 32 * 4, "high precision")]
    assert "3 of 4 layers quantized" in summary  # tables are not layers
    assert "embedding tables in high precision: wte (8.0 KiB), wpe (1.0 KiB)" in summary
    rc, out, _ = run_mxc("inspect", tmp_path / "o")
    lines = out.splitlines()
    assert rc == 0 and any(line.split()[:2] == ["wte", "embedding"] and "8.0 KiB" in line for line in lines)
    quantized = sum(r["weight_bytes"] for r in m["layers"] if r["status"] == "quantized")
    other = m["weights_bytes"] - quantized - 9 * 1024  # the biases (in_proj 96, out_proj 32, fc 32) in f32
    assert other == (96 + 32 + 32) * 4
    assert (f"model.irpa {m['weights_bytes'] / 1024:.1f} KiB = quantized weights {quantized / 1024:.1f} KiB "
            f"(3) + high-precision weights 0 B (0) + embedding tables 9.0 KiB (2) + other parameters {other} B"
            ) in out


def test_attention_named_apart_from_its_projection(tmp_path):
    m, summary = _compile_attention(tmp_path)
    names = [(r["layer"], r["op"]) for r in m["layers"] if r["op"] != "embedding"]
    assert names == [("blocks.0.attn", "linear"), ("blocks.0.attn.sdpa", "scaled_dot_product_attention"),
                     ("blocks.0.attn#2", "linear"), ("blocks.0.fc", "linear")]
    assert "kept in high precision: blocks.0.attn.sdpa (attention is not quantized yet)" in summary
    rc, out, _ = run_mxc("inspect", tmp_path / "o")
    assert rc == 0 and sum(line.startswith("blocks.0.attn.sdpa ") for line in out.splitlines()) == 1
    rc, out, err = run_mxc("run", tmp_path / "o", "--compare")  # the reference still finds the projections
    assert rc == 0, out + err


def test_bf16_embedding_table_bytes(tmp_path):
    m, _ = _compile_attention(tmp_path, "_f32 = get_model\n",
                              "def get_model(): return _f32().to(torch.bfloat16)\n")
    tables = {r["layer"]: r for r in m["layers"] if r["op"] == "embedding"}
    assert tables["wte"]["weight_bytes"] == 64 * 32 * 2 and tables["wte"]["bits_per_weight"] == 16.0


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

"""Attention on the CPU target: `decompose-attention` turns sdpa into torch's math form (IREE's fused
attention op is slow on CPUs); the compiled model must equal torch's sdpa to float32 summation order."""

import json

import pytest

from conftest import run_mxc

ATTENTION = """
import torch
F = torch.nn.functional

class Attn(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv = torch.nn.Linear(64, 192)
        self.o = torch.nn.Linear(64, 64)
    def forward(self, x):
        b, t, _ = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, 4, 16).permute(2, 0, 3, 1, 4)
        keep = torch.ones(t, t, dtype=torch.bool).tril()
        if {variant!r} == "causal":
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        elif {variant!r} == "bool_mask":
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, scale=0.2)
        elif {variant!r} == "padded":  # the first 3 queries see no key at all (left padding): torch gives 0
            keep = keep & (torch.arange(t) >= 3)[:, None]
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
        else:  # an additive float mask
            bias = torch.zeros(t, t, dtype=x.dtype).masked_fill(~keep, -1e4)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.o(y.transpose(1, 2).reshape(b, t, 64))

def get_model():
    torch.manual_seed(0)
    return Attn().to(torch.{dtype})

def get_example_inputs():
    torch.manual_seed(1)
    return (torch.randn(2, 32, 64).to(torch.{dtype}),)
"""


@pytest.mark.parametrize("variant, dtype", [("causal", "float32"), ("bool_mask", "float32"), ("padded", "float32"),
                                            ("float_mask", "float32"), ("causal", "bfloat16")])
def test_decomposed_attention_matches_torch(variant, dtype, write_model, tmp_path):
    model = write_model(ATTENTION.format(variant=variant, dtype=dtype))
    dump = tmp_path / "ir"
    rc, _, err = run_mxc("compile", model, "-o", tmp_path / "out", "--format", "nvfp4", "--weights-only", "-q",
                         "--dump-compilation-phases-to", dump)
    assert rc == 0, err
    lowered = (dump / "model.7.decompose-attention.mlir").read_text()
    assert "scaled_dot_product_attention" in (dump / "model.6.lower-cpu.mlir").read_text()
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    # --contraction fma or dpbf16 (the default on x86 CPUs without AMX): is_causal runs mxc's own softmax
    # kernel; the constant lower-triangular bool mask becomes is_causal when exported (frontend.causal_masks)
    fused = manifest["options"]["contraction"] in ("fma", "dpbf16") and variant in ("causal", "bool_mask")
    softmax = "mxc_fma_attn_" if fused else "torch.aten.softmax.int"  # (the fused kernel: its softmax inside)
    assert "scaled_dot_product_attention" not in lowered and softmax in lowered
    assert [r["layer"] for r in manifest["layers"] if r["op"] == "scaled_dot_product_attention"] == ["sdpa"]
    rc, out, err = run_mxc("run", tmp_path / "out", "--compare", "--json")
    assert rc == 0, err
    ref = json.loads(out)["vs_reference"]
    assert ref["within_tolerance"] and ref["rule"].startswith("max_abs"), ref  # the weight-only (strict) rule


@pytest.mark.parametrize("variant, rewritten", [("bool_mask", True), ("padded", False), ("float_mask", False),
                                                ("causal", False)])
def test_constant_causal_masks_become_is_causal(variant, rewritten, write_model):
    """A boolean mask computed from constants that equals is_causal's (key j <= query i) is evaluated at
    export and the sdpa takes is_causal=True instead (as transformers' eager path does); a mask that is
    not exactly that (left padding), a float mask and an sdpa already causal are left as they are; the
    program computes the same outputs."""
    import torch

    from mxc.compiler import frontend

    spec = frontend.load_model_file(write_model(ATTENTION.format(variant=variant, dtype="float32")))
    prog = frontend.export(spec.model, spec.example_inputs)
    before = prog.module()(*spec.example_inputs)
    assert frontend.causal_masks(prog) == int(rewritten)
    sdpa = [n for n in prog.graph_module.graph.nodes if n.target is frontend._SDPA]
    assert len(sdpa) == 1
    causal = sdpa[0].args[5:6] == (True,) or sdpa[0].kwargs.get("is_causal", False)
    assert causal == (rewritten or variant == "causal") and (sdpa[0].args[3] is None) == causal
    assert torch.allclose(prog.module()(*spec.example_inputs), before, atol=1e-6, rtol=1e-5)

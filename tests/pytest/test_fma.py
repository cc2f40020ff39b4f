"""`--contraction fma`: the CPU target's contractions on mxc's float32 FMA kernel (passes/_fma.py).

The operands are what `decomposed` contracts (float32 decodes of the codes, the float32 activations); the
kernel only replaces IREE's matmul code, so the output equals the float32 contraction up to the order of the
float32 sums (and a*b+c rounded once). Checked against `decomposed` and the torch fake-quant reference.
"""

import numpy as np
import pytest
import torch

from mxc.passes import _fma
from mxc.runtime import amx

needs_fma = pytest.mark.skipif(not amx.host_has_fma(), reason="this CPU has no AVX2 + FMA")

LINEAR = """
import torch
def get_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(70, 40), torch.nn.ReLU(), torch.nn.Linear(40, 10, bias=False))
def get_example_inputs():
    torch.manual_seed(1)
    x = torch.randn(5, 70)
    x[1, :] *= 1e4
    return (x,)
"""


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(70, 40), torch.nn.ReLU(), torch.nn.Linear(40, 10, bias=False))


def _out(y) -> torch.Tensor:
    return torch.as_tensor(np.asarray(y[0] if isinstance(y, (list, tuple)) else y))


def _run(tmp_path, write_model, fmt: str, weights_only: bool, contraction: str, policy=None):
    import mxc
    from mxc.numerics.options import FormatSpec
    from mxc.options import Options

    out = tmp_path / f"{fmt}-{weights_only}-{contraction}"
    mxc.compile(write_model(LINEAR, "linear.py"), out,
                Options(format=FormatSpec.parse(fmt), weights_only=weights_only, contraction=contraction,
                        policy=policy))
    art = mxc.load(out)
    x = art.example_inputs()[0]
    return art, x, _out(art(x))


def test_fma_gemm_shapes_and_blocks():
    """M is a multiple of 4 and N of 24 (the lowering pads); the K block divides K (at most 256, at least
    32, else all of K); the workgroup grid covers C."""
    with pytest.raises(ValueError, match="multiple of 4"):
        _fma.FmaGemm(6, 24, 64)
    with pytest.raises(ValueError, match="n of 24"):
        _fma.FmaGemm(4, 32, 64)
    g = _fma.FmaGemm(512, 1536, 576)
    assert g.name == "mxc_fma_512x1536x576" and g.kc == 192 and g.row_block == 64 and g.col_panels == 4
    assert g.grid == (8, 16, 1)
    assert _fma.FmaGemm(4, 24, 1536).kc == 256 and _fma.FmaGemm(4, 24, 70).kc == 70
    assert _fma.FmaGemm(4, 24, 514).kc == 514  # 514 = 2 x 257: no divisor in [32, 256]
    b = _fma.FmaGemm(40, 48, 8, batch=18)
    assert b.name == "mxc_fma_18x40x48x8" and b.grid == (5, 1, 18) and b.col_panels == 2


@needs_fma
@pytest.mark.parametrize("fmt,weights_only", [("nvfp4", True), ("mxfp4", False), ("mxfp6_e2m3", True),
                                              ("if4", True), ("mxfp8", False)])
def test_fma_equals_decomposed_and_the_reference(tmp_path, write_model, fmt, weights_only):
    """Compiled with --contraction fma (M = 5 -> 8, N = 40 / 10 -> 48 / 24, K = 70 and 40 in one K block),
    the output equals the decomposed form's to float32 rounding and the torch fake-quant reference to
    float32 summation order; every layer's row names the FMA kernel."""
    from mxc.runtime.reference import fake_quant_forward

    art, x, y = _run(tmp_path, write_model, fmt, weights_only, "fma")
    _, _, y_dec = _run(tmp_path, write_model, fmt, weights_only, "decomposed")
    assert art.manifest["options"]["contraction"] == "fma"
    assert "mxc_fma" in (tmp_path / f"{fmt}-{weights_only}-fma" / "model.vmfb").read_bytes().decode("latin-1")
    ref = fake_quant_forward(_model(), (x,), art.manifest)[0]
    assert (y - y_dec).abs().max().item() <= 1e-6 * y_dec.abs().max().item()
    assert (y - ref).abs().max().item() <= 1e-5 * ref.abs().max().item()
    assert all(r["kernel"] == "cpu: FMA micro-kernel (mxc_fma)" for r in art.manifest["layers"]), \
        [r["kernel"] for r in art.manifest["layers"]]


@needs_fma
def test_fma_several_k_blocks_and_a_high_precision_layer(tmp_path, write_model):
    """K = 576 (three K blocks of 192: the accumulators continue from C) and a layer kept in float32 (a
    policy's "none": the 2-D matmul on the same kernel) match torch's float32 linear to float32 accuracy."""
    import mxc
    from mxc.numerics.options import FormatSpec
    from mxc.options import Options

    model = """
import torch
def get_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(576, 96), torch.nn.Linear(96, 30))
def get_example_inputs():
    torch.manual_seed(1)
    return (torch.randn(12, 576),)
"""
    policy = tmp_path / "policy.toml"
    policy.write_text('[layers]\n"1" = "none"\n')
    out = tmp_path / "k"
    mxc.compile(write_model(model, "deep.py"), out,
                Options(format=FormatSpec.parse("mxfp8"), weights_only=True, contraction="fma", policy=str(policy)))
    art = mxc.load(out)
    rows = {r["layer"]: r for r in art.manifest["layers"]}
    assert rows["1"]["status"] == "high precision" and rows["1"]["kernel"] == "cpu: FMA micro-kernel (mxc_fma)"
    from mxc.runtime.reference import fake_quant_forward

    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(576, 96), torch.nn.Linear(96, 30))
    x = art.example_inputs()[0]
    ref = fake_quant_forward(m, (x,), art.manifest)[0]
    hidden = fake_quant_forward(m[:1], (x,), {**art.manifest, "layers": art.manifest["layers"][:1]})[0]
    bound = (hidden.abs() @ m[1].weight.data.abs().T).max().item() + m[1].bias.abs().max().item()
    assert (_out(art(x)) - ref).abs().max().item() <= 1e-6 * bound


@needs_fma
def test_fma_propagates_nan_and_inf(tmp_path, write_model):
    """A NaN or an infinite activation reaches the rows it reaches in the float32 contraction."""
    from mxc.runtime.reference import fake_quant_forward

    art, x, _ = _run(tmp_path, write_model, "nvfp4", True, "fma")
    x = x.clone()
    x[2, 0], x[3, 5] = float("nan"), float("inf")
    y = _out(art(x))
    ref = fake_quant_forward(_model(), (x,), art.manifest)[0]
    assert torch.equal(torch.isnan(y), torch.isnan(ref)) and torch.equal(torch.isinf(y), torch.isinf(ref))
    fin = torch.isfinite(ref)
    assert (y[fin] - ref[fin]).abs().max().item() <= 1e-5 * ref[fin].abs().max().item()


def test_fma_needs_avx2_and_fma(tmp_path, write_model, monkeypatch):
    """Compiling --contraction fma on a CPU without AVX2 + FMA stops with the flag to use instead; `auto`
    then falls back to decomposed (amx first where the CPU has AMX)."""
    import mxc
    from mxc.options import Options, OptionsError

    monkeypatch.setattr(amx, "host_has_fma", lambda: False)
    with pytest.raises(OptionsError, match="--contraction fma needs a CPU with AVX2 and FMA.*use --contraction "
                                           "decomposed"):
        mxc.compile(write_model(LINEAR, "linear.py"), tmp_path / "a", Options(contraction="fma"))
    monkeypatch.setattr(amx, "host_has_amx", lambda: False)
    assert Options().contraction == "decomposed"
    monkeypatch.setattr(amx, "host_has_fma", lambda: True)
    assert Options().contraction == "fma" and Options(target="cuda-sm90").contraction == "decomposed"
    monkeypatch.setattr(amx, "host_has_amx", lambda: True)
    assert Options().contraction == "amx"

"""`--contraction amx`: the CPU target's fused matmuls on AMX bf16 tiles (passes/_amx.py).

The claim that makes it exact: every operand value is a bf16 value (formats whose element and scale
significands fit 8 bits; float32 activations split in three bf16 parts), so each product is exact and
only the order of the float32 sums differs from the float32 contraction. Checked here against the
format definitions (every element x scale value) and end to end against the torch fake-quant reference.
"""

import numpy as np
import pytest
import torch

from mxc.numerics.elements import decode_table
from mxc.numerics.formats import FORMATS
from mxc.passes import _amx
from mxc.runtime import amx

needs_amx = pytest.mark.skipif(not amx.host_has_amx(), reason="this CPU has no AMX bf16 tiles")

LINEAR = """
import torch
def get_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(70, 40), torch.nn.ReLU(), torch.nn.Linear(40, 10, bias=False))
def get_example_inputs():
    torch.manual_seed(1)
    x = torch.randn(5, 70)
    x[0, 3] = 1e-30  # far below bf16's 8 bits of x[0]: only the split's third part holds it
    x[1, :] *= 1e4
    return (x,)
"""


def _products(fmt) -> torch.Tensor:
    """Every element value x every block-scale value of `fmt` (float64), NV tensor scale apart."""
    elems = decode_table(fmt.element).double()
    if fmt.choice == "if4":  # INT blocks: code q means q * 6/7
        q = torch.arange(-8, 8, dtype=torch.float64)
        elems = torch.cat([elems, q * 6 / 7])
    if fmt.scale.name == "e8m0":
        scales = torch.tensor([2.0 ** (c - 127) for c in range(255)], dtype=torch.float64)
    else:
        scales = decode_table(fmt.scale.element).double()
    p = (elems[:, None] * scales[None, :]).flatten()
    return p[torch.isfinite(p) & (p.abs() >= 2.0**-126) & (p.abs() <= torch.finfo(torch.bfloat16).max)]


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_bf16_exact_is_what_the_format_definitions_give(name):
    """bf16_exact(fmt) holds exactly when every element x scale product (in bf16's normal range) is a bf16
    value: checked over all codes of both, from the definitions (numerics' decode tables)."""
    fmt = FORMATS[name]
    p = _products(fmt)
    exact = bool((p.to(torch.bfloat16).double() == p).all())
    assert exact == _amx.bf16_exact(fmt), (name, _amx.significand_bits(fmt))
    assert exact == (name != "if4")


def test_amx_gemm_shapes_are_checked():
    with pytest.raises(ValueError, match="multiples of 32"):
        _amx.AmxGemm(16, 32, 32)
    g = _amx.AmxGemm(64, 96, 64, 3)
    assert g.name == "mxc_amx_64x96x64_p3" and g.col_blocks == 1 and _amx.AmxGemm(32, 128, 32).col_blocks == 4
    assert "llvm.x86.tdpbf16ps" in _amx.executable([g])


def _run(tmp_path, write_model, fmt: str, weights_only: bool, contraction: str = "amx"):
    import mxc
    from mxc.options import Options
    from mxc.numerics.options import FormatSpec

    out = tmp_path / f"{fmt}-{weights_only}-{contraction}"
    mxc.compile(write_model(LINEAR, "linear.py"), out,
                Options(format=FormatSpec.parse(fmt), weights_only=weights_only, contraction=contraction))
    art = mxc.load(out)
    x = art.example_inputs()[0]
    return art, x, _out(art(x))


def _out(y) -> torch.Tensor:
    return torch.as_tensor(np.asarray(y[0] if isinstance(y, (list, tuple)) else y))


@needs_amx
@pytest.mark.parametrize("fmt,weights_only", [("nvfp4", True), ("mxfp4", False), ("mxfp8", False),
                                              ("fp4_ue5m3", True), ("nvfp4", False), ("if4", True)])
def test_amx_equals_the_fake_quant_reference(tmp_path, write_model, fmt, weights_only):
    """Compiled with --contraction amx (K = 70 and 40, M = 5, N = 40 and 10: all padded to 32), the output
    equals the torch fake-quant reference up to float32 summation order; the manifest records the option
    and the layers that ran on AMX tiles."""
    from mxc.runtime.reference import fake_quant_forward

    art, x, y = _run(tmp_path, write_model, fmt, weights_only)
    assert art.manifest["options"]["contraction"] == "amx"
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(70, 40), torch.nn.ReLU(), torch.nn.Linear(40, 10, bias=False))
    ref = fake_quant_forward(model, (x,), art.manifest)[0]
    assert (y - ref).abs().max().item() <= 1e-5 * ref.abs().max().item()
    paths = {r["path"] for r in art.manifest["layers"]}
    if fmt == "if4":
        assert paths == {"emulated: decode to f32 + f32 contraction (IREE llvm-cpu)"}
    else:
        assert all("AMX" in p for p in paths), paths


@needs_amx
def test_amx_split_keeps_float32_activations(tmp_path, write_model):
    """Weight-only: the activations are not rounded to bf16 (the split's three parts hold all 24 bits), so a
    row with an input 1e-30 next to O(1) ones and a row scaled by 1e4 match the float32 contraction; the
    same model with --act-dtype bf16 differs from it (one part, rounded)."""
    art, x, y = _run(tmp_path, write_model, "mxfp8", True)
    _, _, y_dec = _run(tmp_path, write_model, "mxfp8", True, "decomposed")
    assert (y - y_dec).abs().max().item() <= 1e-6 * y_dec.abs().max().item()


@needs_amx
def test_amx_propagates_nan_and_inf_like_float32(tmp_path, write_model):
    """A NaN or an infinite activation goes whole into the split's first part: the rows it reaches are
    NaN / infinite as in the float32 contraction, the other rows unchanged."""
    art, x, _ = _run(tmp_path, write_model, "nvfp4", True)
    x = x.clone()
    x[2, 0], x[3, 5] = float("nan"), float("inf")
    y = _out(art(x))
    from mxc.runtime.reference import fake_quant_forward

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(70, 40), torch.nn.ReLU(), torch.nn.Linear(40, 10, bias=False))
    ref = fake_quant_forward(model, (x,), art.manifest)[0]
    assert torch.equal(torch.isnan(y), torch.isnan(ref)) and torch.equal(torch.isinf(y), torch.isinf(ref))
    assert torch.isnan(y[2]).all() and not torch.isfinite(y[3]).any()
    fin = torch.isfinite(ref)
    assert (y[fin] - ref[fin]).abs().max().item() <= 1e-5 * ref[fin].abs().max().item()


def test_amx_needs_a_cpu_with_amx(tmp_path, write_model, monkeypatch):
    """Compiling --contraction amx on a CPU without AMX stops with the flag to use instead; loading an
    AMX artifact where Linux refuses the tile state is an ArtifactError that says to recompile."""
    import mxc
    from mxc.options import Options, OptionsError
    from mxc.runtime.artifact import ArtifactError

    monkeypatch.setattr(amx, "host_has_amx", lambda: False)
    with pytest.raises(OptionsError, match="--contraction amx needs a CPU with AMX.*use --contraction decomposed"):
        mxc.compile(write_model(LINEAR, "linear.py"), tmp_path / "a", Options(contraction="amx"))
    monkeypatch.undo()
    if not amx.host_has_amx():
        return
    out = tmp_path / "b"
    mxc.compile(write_model(LINEAR, "linear.py"), out, Options(contraction="amx"))

    def refuse():
        raise RuntimeError("Linux refused the AMX tile state")

    monkeypatch.setattr(amx, "enable_amx", refuse)
    with pytest.raises(ArtifactError, match="compiled with --contraction amx, which this machine cannot run.*"
                                            "recompile it here without --contraction amx"):
        mxc.load(out)


@needs_amx
def test_amx_float32_matmul_of_a_high_precision_layer(tmp_path, write_model):
    """A layer kept in high precision (a policy's "none") is a float32 matmul: both operands split in three
    bf16 parts, the six products that matter (kernel p3x3); the result stays float32-accurate (within 1e-6
    of torch's float32 linear, relative to sum |x||w|) and the manifest names the AMX path."""
    import mxc
    from mxc.numerics.options import FormatSpec
    from mxc.options import Options

    policy = tmp_path / "policy.toml"
    policy.write_text('[layers]\n"2" = "none"\n')
    out = tmp_path / "hp"
    mxc.compile(write_model(LINEAR, "linear.py"), out,
                Options(format=FormatSpec.parse("mxfp8"), contraction="amx", policy=str(policy)))
    art = mxc.load(out)
    row = next(r for r in art.manifest["layers"] if r["layer"] == "2")
    assert row["status"] == "high precision" and "6 products" in row["path"]
    from mxc.runtime.reference import fake_quant_forward

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(70, 40), torch.nn.ReLU(), torch.nn.Linear(40, 10, bias=False))
    x = art.example_inputs()[0]
    hidden = fake_quant_forward(model[:2], (x,), {**art.manifest, "layers": art.manifest["layers"][:1]})[0]
    ref = hidden @ model[2].weight.data.T
    bound = (hidden.abs() @ model[2].weight.data.abs().T).max().item()
    assert (_out(art(x)) - ref).abs().max().item() <= 1e-6 * bound
    assert "mxc_amx" in (out / "model.vmfb").read_bytes().decode("latin-1")

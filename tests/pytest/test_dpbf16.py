"""`--contraction dpbf16`: the FMA kernel's bf16 dot form (passes/_fma.py `FmaGemm(bf16=True)`, vdpbf16ps).

A contraction whose two operands are exact in bf16 (both formats `_amx.bf16_exact`, or weight-only with
`--act-dtype bf16`) multiplies the bf16 values, two exact products per float32 lane and instruction, and
adds them in float32: the float32 contraction up to the order of the sums. Every other contraction keeps the
float32 FMA kernel. Checked against numpy, the `decomposed` form and the torch fake-quant reference.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from mxc.passes import _fma
from mxc.runtime import amx
from mxc.tools.bench_cpu_kernels import host_module
from test_amx import LINEAR, _out, _run  # the same two-layer model (K = 70 and 40, a row x 1e4, a 1e-30)
from test_fma import nan_inf_run

needs_dpbf16 = pytest.mark.skipif(not amx.host_has_dpbf16(), reason="this CPU has no AVX512-BF16")
BF16_KERNEL = "cpu: bf16 dot micro-kernel (mxc_fma, vdpbf16ps)"
FMA_KERNEL = "cpu: FMA micro-kernel (mxc_fma)"


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(70, 40), torch.nn.ReLU(), torch.nn.Linear(40, 10, bias=False))


def test_bf16_gemm_shape_rules():
    """K in pairs (an even K; the K block counts pairs), never causal; the name says `_bf16`."""
    with pytest.raises(ValueError, match="even k"):
        _fma.FmaGemm(4, 24, 71, bf16=True)
    with pytest.raises(ValueError, match="not causal"):
        _fma.FmaGemm(4, 24, 64, causal="out", bf16=True)
    g = _fma.FmaGemm(512, 1536, 576, bf16=True)
    assert g.name == "mxc_fma_512x1536x576_bf16" and g.ks == 288 and g.kc == 144 and g.grid == (8, 16, 1)
    assert _fma.FmaGemm(8, 16, 1536, nv=2, bf16=True).name == "mxc_fma_8x16x1536_p16_bf16"
    # more than 4 rows: micro-tiles of 8 rows (24 accumulators) for the dot kernel, 4 for float32
    assert _fma.micro_rows(5, True) == 8 and _fma.micro_rows(4, True) == 4 and _fma.micro_rows(512, False) == 4


def _bf16_exact_values(rng, shape) -> np.ndarray:
    """FP4 (E2M1) values times powers of two: exact in bf16 (as an MXFP4 decode is)."""
    e2m1 = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6], np.float32)
    v = rng.choice(e2m1, shape) * rng.choice([-1, 1], shape) * np.exp2(rng.integers(-8, 8, shape))
    return v.astype(np.float32)


def _to_bf16_bits(x: np.ndarray) -> np.ndarray:
    bits = x.astype(np.float32).view(np.uint32)
    assert np.all(bits & 0xFFFF == 0), "not exact in bf16"
    return (bits >> 16).astype(np.uint16)


@needs_dpbf16
@pytest.mark.parametrize("nv,mr", [(1, 4), (2, 4), (3, 4), (3, 8), (1, 8)])
def test_bf16_gemm_kernel_matches_numpy(nv, mr):
    """FmaGemm(bf16=True) alone (compiled with IREE) at each panel width and micro-tile height, two K blocks
    (K = 640: 320 pairs, blocks of 160), batch 2, on values exact in bf16: equal to the exact (float64)
    product within float32 summation order."""
    from mxc.passes import _amx

    bt, m, k, nr = 2, 24 if mr == 8 else 12, 640, 8 * nv
    n = 5 * nr
    g = _fma.FmaGemm(m, n, k, bt, "", nv, bf16=True, mr=mr)
    assert g.kc == 160
    rng = np.random.default_rng(nv)
    a, b = _bf16_exact_values(rng, (bt, m, k)), _bf16_exact_values(rng, (bt, n, k))
    # B's panels [bt, n/nr, k/2, nr, 2]: out[p, kk, j, t] = b[nr p + j, 2 kk + t]
    panels = b.reshape(bt, n // nr, nr, k // 2, 2).transpose(0, 1, 3, 2, 4)
    sa, sb, sc = bt * m * k, bt * n * k, bt * m * n
    src = _amx.executable([g], "mxc_fma") + (
        f"func.func @mm(%a: tensor<{sa}xbf16>, %b: tensor<{sb}xbf16>) -> tensor<{sc}xf32> {{\n"
        f"  %r = flow.dispatch @mxc_fma::@{g.name}(%a, %b) : (tensor<{sa}xbf16>, tensor<{sb}xbf16>) -> "
        f"tensor<{sc}xf32>\n  return %r : tensor<{sc}xf32>\n}}\n")
    assert "llvm.x86.avx512bf16.dpbf16ps.256" in src
    ctx = host_module(src)
    import ml_dtypes

    def bf16(x):
        return _to_bf16_bits(x).reshape(-1).view(ml_dtypes.bfloat16)

    c = np.asarray(ctx.modules.module.mm(bf16(a), bf16(np.ascontiguousarray(panels)))).reshape(bt, m, n)
    ref = a.astype(np.float64) @ b.astype(np.float64).transpose(0, 2, 1)
    bound = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64).transpose(0, 2, 1)
    assert np.all(np.abs(c - ref) <= 1e-6 * bound + 1e-30)


@needs_dpbf16
@pytest.mark.parametrize("fmt,weights_only,kernel", [
    ("mxfp4", False, BF16_KERNEL), ("nvfp4", False, BF16_KERNEL), ("mxfp8", False, BF16_KERNEL),
    ("mxfp6_e2m3", False, BF16_KERNEL), ("mxint8", False, BF16_KERNEL),
    ("nvfp4", True, FMA_KERNEL), ("if4", False, FMA_KERNEL)])
def test_dpbf16_equals_decomposed_and_the_reference(tmp_path, write_model, fmt, weights_only, kernel):
    """Compiled with --contraction dpbf16 (M = 5 -> 8, N = 40 / 10 -> 48 / 16, K = 70 and 40): formats exact in
    bf16 on both sides run the bf16 dot kernel (NVFP4's tensor scales on the output), float32 activations of
    weight-only layers and IF4 (not exact in bf16) the float32 FMA kernel; the output equals the decomposed
    form's and the torch fake-quant reference to float32 summation order; every layer's row names its
    kernel."""
    from mxc.runtime.reference import fake_quant_forward

    art, x, y = _run(tmp_path, write_model, fmt, weights_only, "dpbf16")
    _, _, y_dec = _run(tmp_path, write_model, fmt, weights_only, "decomposed")
    assert art.manifest["options"]["contraction"] == "dpbf16"
    program = (tmp_path / f"{fmt}-{weights_only}-dpbf16" / "model.vmfb").read_bytes().decode("latin-1")
    assert ("_bf16" in program) == (kernel == BF16_KERNEL)
    ref = fake_quant_forward(_model(), (x,), art.manifest)[0]
    # the activation quantize sees the decomposed form's float32 hidden layer to within its order of sums;
    # where that flips an activation's rounding, the bound is the format's own step (as --compare allows)
    tol = 1e-5 if fmt in ("mxfp8", "mxint8") or weights_only else 2e-2
    assert (y - y_dec).abs().max().item() <= tol * y_dec.abs().max().item()
    assert (y - ref).abs().max().item() <= tol * ref.abs().max().item()
    assert all(r["kernel"] == kernel for r in art.manifest["layers"]), [r["kernel"] for r in art.manifest["layers"]]


@needs_dpbf16
def test_dpbf16_weight_only_with_bf16_activations(tmp_path, write_model):
    """--act-dtype bf16 makes a weight-only layer's operands exact in bf16: the dot kernel runs it, and the
    output equals the FMA kernel's on the same bf16-rounded activations to float32 summation order."""
    import mxc
    from mxc.numerics.options import FormatSpec
    from mxc.options import Options

    outs = {}
    for c in ("dpbf16", "fma"):
        out = tmp_path / c
        mxc.compile(write_model(LINEAR, "linear.py"), out, Options(format=FormatSpec.parse("nvfp4"), weights_only=True,
                                                                   contraction=c, act_dtype="bf16"))
        art = mxc.load(out)
        outs[c] = _out(art(art.example_inputs()[0]))
        want = BF16_KERNEL if c == "dpbf16" else FMA_KERNEL
        assert all(r["kernel"] == want for r in art.manifest["layers"])
    assert (outs["dpbf16"] - outs["fma"]).abs().max().item() <= 1e-6 * outs["fma"].abs().max().item()


@needs_dpbf16
def test_dpbf16_propagates_nan_and_inf(tmp_path, write_model):
    """A NaN or an infinite activation makes its block's scale NaN (MXFP8: the spec's NaN block), and the
    rows it reaches are NaN in the reference; the dot kernel gives the same NaN/Inf pattern."""
    ref = nan_inf_run(tmp_path, write_model, "mxfp8", False, "dpbf16")
    assert torch.isnan(ref).any()


@needs_dpbf16
def test_dpbf16_dynamic_rows(tmp_path, write_model):
    """A dynamic token dimension (examples/mlp_dynamic.py): the dot kernel runs the rows in blocks of 64,
    the last one zero-padded; outputs at 1, 5 and 70 tokens within the compare tolerance of the reference."""
    import shutil

    import mxc
    from mxc.numerics.options import FormatSpec
    from mxc.options import Options
    from mxc.runtime.reference import fake_quant_forward

    root = Path(__file__).resolve().parents[2]
    model_py = tmp_path / "mlp_dynamic.py"
    shutil.copy(root / "examples" / "mlp_dynamic.py", model_py)
    out = tmp_path / "dyn"
    mxc.compile(model_py, out, Options(format=FormatSpec.parse("mxfp8"), contraction="dpbf16"))
    art = mxc.load(out)
    assert "mxc_fma_64x" in (out / "model.vmfb").read_bytes().decode("latin-1")
    ns: dict = {}
    exec(model_py.read_text(), ns)
    for t in (1, 5, 70):
        x = torch.randn(2, t, 256, generator=torch.Generator().manual_seed(t))
        y = _out(art(x))
        ref = fake_quant_forward(ns["get_model"](), (x,), art.manifest)[0]
        assert y.shape == ref.shape
        assert (y - ref).abs().max().item() <= 1e-2 * ref.abs().max().item()


def test_dpbf16_needs_avx512_bf16(tmp_path, write_model, monkeypatch):
    """Compiling --contraction dpbf16 on a CPU without AVX512-BF16 stops with the flag to use instead; `auto`
    takes amx, then dpbf16, then fma; an artifact compiled with dpbf16 refuses to load on such a CPU."""
    import json

    import mxc
    from mxc.options import Options, OptionsError
    from mxc.runtime.artifact import ArtifactError

    monkeypatch.setattr(amx, "host_has_amx", lambda: False)
    monkeypatch.setattr(amx, "host_has_fma", lambda: True)
    monkeypatch.setattr(amx, "host_has_dpbf16", lambda: True)
    assert Options().contraction == "dpbf16" and Options(target="cuda-sm90").contraction == "decomposed"
    monkeypatch.setattr(amx, "host_has_amx", lambda: True)
    assert Options().contraction == "amx"
    monkeypatch.setattr(amx, "host_has_amx", lambda: False)
    monkeypatch.setattr(amx, "host_has_dpbf16", lambda: False)
    assert Options().contraction == "fma"
    with pytest.raises(OptionsError, match="--contraction dpbf16 needs a CPU with AVX512-BF16.*use --contraction fma"):
        mxc.compile(write_model(LINEAR, "linear.py"), tmp_path / "a", Options(contraction="dpbf16"))
    # an artifact whose manifest says dpbf16 (written here with fma: the check reads the manifest only)
    out = tmp_path / "b"
    mxc.compile(write_model(LINEAR, "linear.py"), out, Options(contraction="fma"))
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["options"]["contraction"] = "dpbf16"
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="compiled with --contraction dpbf16.*recompile it here"):
        mxc.load(out)

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
from mxc.tools.bench_cpu_kernels import host_module
from test_amx import LINEAR, _out, _run  # the same two-layer model (K = 70 and 40, a row x 1e4, a 1e-30)

needs_fma = pytest.mark.skipif(not amx.host_has_fma(), reason="this CPU has no AVX2 + FMA")


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(70, 40), torch.nn.ReLU(), torch.nn.Linear(40, 10, bias=False))


def test_fma_gemm_shapes_and_blocks():
    """M is a multiple of 4 and N of the panel width, 24 (or 16, 8 for narrow layers: the lowering pads);
    the K block divides K (at most 256, at least 32, else all of K); the workgroup grid covers C."""
    with pytest.raises(ValueError, match="m a multiple of mr = 4"):
        _fma.FmaGemm(6, 24, 64)
    with pytest.raises(ValueError, match="n of 24"):
        _fma.FmaGemm(4, 32, 64)
    with pytest.raises(ValueError, match="n of 16"):
        _fma.FmaGemm(4, 24, 64, nv=2)
    n16 = _fma.FmaGemm(8, 32, 144, nv=2)
    assert n16.name == "mxc_fma_8x32x144_p16" and n16.grid == (1, 1, 1) and n16.col_panels == 2
    g = _fma.FmaGemm(512, 1536, 576)
    assert g.name == "mxc_fma_512x1536x576" and g.kc == 192 and g.row_block == 64 and g.col_panels == 4
    assert g.grid == (8, 16, 1)
    assert _fma.FmaGemm(4, 24, 1536).kc == 256 and _fma.FmaGemm(4, 24, 70).kc == 70
    assert _fma.FmaGemm(4, 24, 514).kc == 514  # 514 = 2 x 257: no divisor in [32, 256]
    b = _fma.FmaGemm(40, 48, 8, batch=18)
    assert b.name == "mxc_fma_18x40x48x8" and b.grid == (5, 1, 18) and b.col_panels == 2
    with pytest.raises(ValueError, match="m a multiple of mr = 8"):
        _fma.FmaGemm(12, 24, 64, mr=8)
    r8 = _fma.FmaGemm(24, 24, 64, mr=8)  # micro-tiles of 8 rows: row blocks a multiple of 8
    assert r8.name == "mxc_fma_24x24x64_r8" and r8.row_block == 8 and r8.grid == (3, 1, 1)


def test_panel_width_follows_the_padding_it_saves():
    """24 columns unless padding N to 24 costs over 10 % more kernel steps than 16 or 8 (the CNN's N = 16 and
    32 convolutions; a 10-class head); N = 64 and 128 keep 24 (72 and 144: within the 24-column tile's
    lower cost per FMA)."""
    got = {n: _fma.panel_vectors(n) for n in (8, 10, 16, 32, 48, 64, 128, 576, 1536)}
    assert got == {8: 1, 10: 2, 16: 2, 32: 2, 48: 3, 64: 3, 128: 3, 576: 3, 1536: 3}


@needs_fma
@pytest.mark.parametrize("nv,causal", [(1, ""), (2, ""), (3, ""), (2, "out"), (1, "lhs")])
def test_fma_gemm_kernel_matches_numpy(nv, causal):
    """FmaGemm alone (compiled with IREE) at each panel width, two K blocks (K = 320 = 2 x 160), batch 2:
    equal to numpy's float32 product within float32 summation order; causal "out" writes -inf past the
    diagonal, "lhs" reads A only up to each row tile's last row."""
    from mxc.passes import _amx

    bt, m, k, nr = 2, 12, 320, 8 * nv
    n = 5 * nr if causal != "lhs" else 2 * nr
    if causal == "lhs":
        k = m + 4  # probabilities [m, k] (K = keys), zero past the diagonal as the softmax leaves them
    g = _fma.FmaGemm(m, n, k, bt, causal, nv)
    assert g.kc == (160 if k == 320 else k)
    rng = np.random.default_rng(nv)
    a = rng.standard_normal((bt, m, k)).astype(np.float32)
    a_used = a
    if causal == "lhs":  # the softmax's 0 past the diagonal up to the row tile's last row, never read beyond
        cols, rows = np.arange(k)[None, :], np.arange(m)[:, None]
        a[:, cols > rows] = 0
        a_used = a.copy()
        a[:, cols > (rows | 3)] = np.nan  # a read of these would make the row NaN
    b = rng.standard_normal((bt, n, k)).astype(np.float32)
    panels = b.reshape(bt, n // nr, nr, k).transpose(0, 1, 3, 2).copy()  # [bt, n/nr, k, nr]
    sa, sb, sc = bt * m * k, bt * n * k, bt * m * n
    src = _amx.executable([g], "mxc_fma") + (
        f"func.func @mm(%a: tensor<{sa}xf32>, %b: tensor<{sb}xf32>) -> tensor<{sc}xf32> {{\n"
        f"  %r = flow.dispatch @mxc_fma::@{g.name}(%a, %b) : (tensor<{sa}xf32>, tensor<{sb}xf32>) -> tensor<{sc}xf32>\n"
        f"  return %r : tensor<{sc}xf32>\n}}\n")
    ctx = host_module(src)
    c = np.asarray(ctx.modules.module.mm(a.reshape(-1), panels.reshape(-1))).reshape(bt, m, n)
    ref = a_used.astype(np.float64) @ b.astype(np.float64).transpose(0, 2, 1)
    bound = np.abs(a_used).astype(np.float64) @ np.abs(b).astype(np.float64).transpose(0, 2, 1)
    if causal == "out":
        above = np.arange(n)[None, :] > np.arange(m)[:, None]
        assert np.all(c[:, above] == -np.inf)
        c, ref, bound = c[:, ~above], ref[:, ~above], bound[:, ~above]
    assert np.all(np.abs(c - ref) <= 1e-6 * bound + 1e-30)


@needs_fma
@pytest.mark.parametrize("fmt,weights_only", [("nvfp4", True), ("mxfp4", False), ("mxfp6_e2m3", True),
                                              ("if4", True), ("mxfp8", False)])
def test_fma_equals_decomposed_and_the_reference(tmp_path, write_model, fmt, weights_only):
    """Compiled with --contraction fma (M = 5 -> 8, N = 40 / 10 -> 48 / 16: panels of 24 and of 16 columns, K
    = 70 and 40 in one K block),
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
    nan_inf_run(tmp_path, write_model, "nvfp4", True, "fma")


def nan_inf_run(tmp_path, write_model, fmt: str, weights_only: bool, contraction: str) -> torch.Tensor:
    """The two-layer model compiled with `contraction`, run with a NaN and an infinite activation: the NaN and
    Inf pattern of the reference, finite outputs within 1e-5 of it; returns the reference's output."""
    from mxc.runtime.reference import fake_quant_forward

    art, x, _ = _run(tmp_path, write_model, fmt, weights_only, contraction)
    x = x.clone()
    x[2, 0], x[3, 5] = float("nan"), float("inf")
    y = _out(art(x))
    ref = fake_quant_forward(_model(), (x,), art.manifest)[0]
    assert torch.equal(torch.isnan(y), torch.isnan(ref)) and torch.equal(torch.isinf(y), torch.isinf(ref))
    fin = torch.isfinite(ref)
    assert (y[fin] - ref[fin]).abs().max().item() <= 1e-5 * ref[fin].abs().max().item()
    return ref


def test_fma_needs_avx2_and_fma(tmp_path, write_model, monkeypatch):
    """Compiling --contraction fma on a CPU without AVX2 + FMA stops with the flag to use instead; `auto`
    then falls back to decomposed (amx first where the CPU has AMX, then dpbf16: test_dpbf16.py)."""
    import mxc
    from mxc.options import Options, OptionsError

    monkeypatch.setattr(amx, "host_has_fma", lambda: False)
    monkeypatch.setattr(amx, "host_has_dpbf16", lambda: False)  # (AVX512-BF16 implies AVX2 + FMA)
    with pytest.raises(OptionsError, match="--contraction fma needs a CPU with AVX2 and FMA.*use --contraction "
                                           "decomposed"):
        mxc.compile(write_model(LINEAR, "linear.py"), tmp_path / "a", Options(contraction="fma"))
    monkeypatch.setattr(amx, "host_has_amx", lambda: False)
    assert Options().contraction == "decomposed"
    monkeypatch.setattr(amx, "host_has_fma", lambda: True)
    assert Options().contraction == "fma" and Options(target="cuda-sm90").contraction == "decomposed"
    monkeypatch.setattr(amx, "host_has_amx", lambda: True)
    assert Options().contraction == "amx"


@needs_fma
@pytest.mark.parametrize("variant", ["causal", "padded"])
def test_fma_attention_matches_torch(tmp_path, write_model, variant):
    """is_causal attention as mxc's fused FMA-executable kernel (per block of query rows: the scores with the
    mask, softmax, times the values, each skipping the work above the diagonal); an explicit mask keeps
    torch's softmax between the plain matmul kernels; both equal torch's sdpa within the compare tolerance (a row that sees no key
    gives 0, as torch)."""
    import json

    from conftest import run_mxc
    from test_attention import ATTENTION

    model = write_model(ATTENTION.format(variant=variant, dtype="float32"))
    out = tmp_path / "out"
    rc, _, err = run_mxc("compile", model, "-o", out, "--format", "nvfp4", "--weights-only", "-q",
                         "--contraction", "fma")
    assert rc == 0, err
    program = (out / "model.vmfb").read_bytes().decode("latin-1")
    # 8 = batch x heads, T = 32 queries and keys, head dim 16: panels of 16 columns (no padding of 32 or 16);
    # is_causal: the one fused dispatch (scores, softmax and values per block of 8 rows)
    assert ("mxc_fma_attn_8x32x32x16x16_tril_k16_v16" in program) == (variant == "causal")
    assert "mxc_fma_softmax" not in program
    assert variant == "causal" or ("mxc_fma_8x32x32x16_p16" in program and "mxc_fma_8x32x16x32_p16" in program)
    rc, text, err = run_mxc("run", out, "--compare", "--json")
    assert rc == 0, err
    assert json.loads(text)["vs_reference"]["within_tolerance"]


@needs_fma
def test_fma_softmax_kernel_matches_numpy():
    """FmaSoftmax alone (compiled with IREE, run on causal scores with -inf past the diagonal): within 1e-6
    relative of numpy's softmax where it writes (row i up to column i + 3, rounded up to 8), exactly 0 past
    the diagonal there, and a row of only -inf gives 0 (not NaN)."""
    from mxc.passes import _amx

    bt, m, n = 3, 64, 72
    g = _fma.FmaSoftmax(m, n, bt)
    size = bt * m * n
    src = _amx.executable([g], "mxc_fma") + (
        f"func.func @sm(%a: tensor<{size}xf32>) -> tensor<{size}xf32> {{\n"
        f"  %r = flow.dispatch @mxc_fma::@{g.name}(%a) : (tensor<{size}xf32>) -> tensor<{size}xf32>\n"
        f"  return %r : tensor<{size}xf32>\n}}\n")
    ctx = host_module(src)
    s = (np.random.default_rng(0).standard_normal((bt, m, n)) * 5).astype(np.float32)
    rows, cols = np.meshgrid(np.arange(m), np.arange(n), indexing="ij")
    s[:, cols > rows] = -np.inf
    s[0, 5, :3] = 88.0
    s[1, 7, 0] = -200.0  # exp underflows: 0
    s[2, 10, :] = -np.inf
    p = np.asarray(ctx.modules.module.sm(s.reshape(-1))).reshape(bt, m, n)
    with np.errstate(invalid="ignore"):
        ref = np.exp(s - s.max(-1, keepdims=True))
        ref /= ref.sum(-1, keepdims=True)
    ref[2, 10] = 0.0
    written = cols < np.minimum((rows + 4 + 7) // 8 * 8, n)
    w = np.broadcast_to(written, p.shape)
    assert np.all(np.isfinite(p[w]))
    assert np.all(np.abs(p[w] - ref[w]) <= 1e-6 * np.maximum(ref[w], 1e-30) + 1e-12)
    assert np.all(p[w & (cols > rows)[None]] == 0) and np.all(p[2, 10][written[10]] == 0)


@needs_fma
@pytest.mark.parametrize("l_,s_,e,ev", [(20, 40, 24, 20), (32, 32, 64, 64), (5, 70, 16, 8)])
def test_fused_causal_attention_equals_the_three_kernels(l_, s_, e, ev):
    """FmaCausalAttention (one dispatch, each block of rows' scores on the stack) gives the bits of the three
    kernels it fuses (FmaGemm causal="out", FmaSoftmax, FmaGemm causal="lhs"), compiled with IREE and run
    on the same random q, k, v (batch 3; L <= S, top-left aligned; rows, keys and value columns padded);
    a block that does not fit IREE's stack limit is refused."""
    from mxc.passes import _amx

    bt = 3
    rng = np.random.default_rng(l_)
    q, k, v = (rng.standard_normal(sh).astype(np.float32) for sh in ((bt, l_, e), (bt, s_, e), (bt, s_, ev)))
    nvk, nvv = _fma.panel_vectors(s_), _fma.panel_vectors(ev)
    nrk, nrv = 8 * nvk, 8 * nvv
    s2, ev2 = _fma.pad_to(s_, nrk), _fma.pad_to(ev, nrv)
    kp = np.zeros((bt, s2, e), np.float32)
    kp[:, :s_] = k
    kp = kp.reshape(bt, s2 // nrk, nrk, e).transpose(0, 1, 3, 2).copy()  # [bt, s2/nrk, e, nrk]
    vp = np.zeros((bt, s2, ev2), np.float32)
    vp[:, :s_, :ev] = v
    vp = vp.reshape(bt, s2, ev2 // nrv, nrv).transpose(0, 2, 1, 3).copy()  # [bt, ev2/nrv, s2, nrv]
    mu, mf = _fma.pad_to(l_, 4), _fma.pad_to(l_, 8)
    scores = _fma.FmaGemm(mu, s2, e, bt, "out", nvk)
    soft = _fma.FmaSoftmax(mu, s2, bt)
    pv = _fma.FmaGemm(mu, ev2, s2, bt, "lhs", nvv)
    fused = _fma.FmaCausalAttention(mf, s2, e, ev2, bt, nvk, nvv)

    def t(n):
        return f"tensor<{n}xf32>"

    qn_u, qn_f, kn, vn = bt * mu * e, bt * mf * e, kp.size, vp.size
    sn, on_u, on_f = bt * mu * s2, bt * mu * ev2, bt * mf * ev2
    src = _amx.executable([scores, soft, pv, fused], "mxc_fma") + (
        f"func.func @three(%q: {t(qn_u)}, %k: {t(kn)}, %v: {t(vn)}) -> {t(on_u)} {{\n"
        f"  %s = flow.dispatch @mxc_fma::@{scores.name}(%q, %k) : ({t(qn_u)}, {t(kn)}) -> {t(sn)}\n"
        f"  %p = flow.dispatch @mxc_fma::@{soft.name}(%s) : ({t(sn)}) -> {t(sn)}\n"
        f"  %o = flow.dispatch @mxc_fma::@{pv.name}(%p, %v) : ({t(sn)}, {t(vn)}) -> {t(on_u)}\n"
        f"  return %o : {t(on_u)}\n}}\n"
        f"func.func @one(%q: {t(qn_f)}, %k: {t(kn)}, %v: {t(vn)}) -> {t(on_f)} {{\n"
        f"  %o = flow.dispatch @mxc_fma::@{fused.name}(%q, %k, %v) : ({t(qn_f)}, {t(kn)}, {t(vn)}) -> {t(on_f)}\n"
        f"  return %o : {t(on_f)}\n}}\n")
    ctx = host_module(src)

    def padded(rows):
        x = np.zeros((bt, rows, e), np.float32)
        x[:, :l_] = q
        return x.reshape(-1)

    three = np.asarray(ctx.modules.module.three(padded(mu), kp.reshape(-1), vp.reshape(-1))).reshape(bt, mu, ev2)
    one = np.asarray(ctx.modules.module.one(padded(mf), kp.reshape(-1), vp.reshape(-1))).reshape(bt, mf, ev2)
    assert np.array_equal(one[:, :l_, :ev].view(np.uint32), three[:, :l_, :ev].view(np.uint32))
    s = np.einsum("ble,bse->bls", q.astype(np.float64), k.astype(np.float64))
    s[:, np.arange(s_)[None, :] > np.arange(l_)[:, None]] = -np.inf
    p = np.exp(s - s.max(-1, keepdims=True))
    ref = (p / p.sum(-1, keepdims=True)) @ v.astype(np.float64)
    assert np.allclose(one[:, :l_, :ev], ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="within 32768 bytes"):
        _fma.FmaCausalAttention(8, 1032, 64, 64)

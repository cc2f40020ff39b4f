"""mxc's sm_90a kernels without a GPU: generated source, and every variant assembled by ptxas with its
SASS checked (HGMMA in the wgmma kernels, with A from registers in rdec; no emulated HMMA, no spills). The sm_100a
kernels: test_sm100_kernels.py; kernel selection: test_targets.py.

Running them needs an H100 / H200: `pytest tests/gpu` (README, "CUDA target").
"""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from mxc.kernels import Kernel, build, every_kernel
from mxc.kernels.codegen import format_struct
from mxc.kernels.kinds import Dec1B, DecSplit, dec1b_kernel, dec1b_variants
from mxc.kernels.operands import BS_ACT_FORMATS, WEIGHT_FORMATS, fast_fp6, fast_fp8, fast_int8, fast_tab4
from mxc.kernels.sass import PREDICATED_HMUL2, disassemble, nvdisasm_path
from mxc.numerics.formats import FORMATS

from test_targets import sel


needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None and not Path("/usr/local/cuda/bin/nvcc").is_file(),
                                reason="nvcc not found: the CUDA kernels are assembled with CUDA 13 nvcc/ptxas")


def test_format_structs_come_from_the_format_table():
    s = format_struct("nvfp4")
    assert "BITS = 4, BS = 16" in s and "TS = true" in s and "mxc::minifloat<4, 3, 7, true, false, 127>" in s
    s = format_struct("if4")
    assert "(sc & 0x80) ? mxc::intcode<4, 0>(c) * __int_as_float(0x3f5b6db7)" in s  # float32(6/7)
    assert "mxc::e8m0(c)" in format_struct("mxfp6_e3m2")
    assert "mxc::minifloat<5, 2, 15, true, true, -1>" in format_struct("mxfp8_e5m2")
    assert "mxc::minifloat<5, 3, 15, false, false, 255>" in format_struct("fp4_ue5m3")


CHUNKS = 4


def assembled(kernels: list[Kernel]) -> tuple[str, dict[str, str]]:
    """Build `kernels` (one architecture): (PTX text, SASS per kernel); skips when nvdisasm is missing."""
    built = build(kernels)
    if nvdisasm_path() is None:
        pytest.skip("nvdisasm not found (pip install nvidia-cuda-nvdisasm): assembled, SASS not checked")
    funcs = disassemble(built.cubin_path)
    assert set(funcs) == {k.name for k in kernels}
    return built.ptx.decode(), funcs


def _check_if4_table_decode(name: str, code: str) -> None:
    """IF4 and NVINT4 in dec / decs / rdec: the table decode (mxc_sm90.cuh frag_steps), whose bf16 pairs are
    interleaved by prmt 0x5140 / 0x7362 (16 per fragment tile decoded), with no int-to-float or float-to-float
    conversion (the float decode converts the INT codes)."""
    interleaves = len(re.findall(r"PRMT R\d+, R\d+(?:\.reuse)?, 0x(?:5140|7362), R\d+", code))
    assert interleaves >= 16, f"{name}: IF4 not decoded by table lookups"
    assert "I2F" not in code and "F2F." not in code, f"{name}: a float conversion in IF4's table decode"


def _check_fp6_integer_decode(name: str, code: str, kind: str) -> None:
    """FP6 in dec / decs / rdec: the integer decode (mxc_sm90.cuh frag_steps, fp6_reg), scaled by bf16
    multiplies (16 per fragment tile decoded, 32 in the `two` fallback's copy of the steps), with no
    int-to-float or float-to-float conversion and, in dec / decs, no float multiply per code (the float
    decode's F::elem x F::scale: over 300 FMUL in dec1)."""
    assert len(re.findall(r"HMUL2\.BF16_V2", code)) >= 16, f"{name}: FP6 not decoded by integer ops"
    assert "I2F" not in code and "F2F." not in code, f"{name}: a float conversion in FP6's integer decode"
    if kind in ("dec", "decs", "dec1b"):
        assert len(re.findall(r"\bFMUL\b", code)) < 32, f"{name}: float multiplies per code in FP6's decode"


def _check_int8_integer_decode(name: str, code: str) -> None:
    """MXINT8 in dec / decs / rdec: the integer decode (mxc_sm90.cuh frag_steps' I8 branch), one bf16 FMA with
    the scale byte's two factors per register (HFMA2.BF16 with two register operands: 16 per fragment tile
    decoded). The float decode of tiles with a scale byte outside 7..253 (a warp-uniform branch) keeps I2F
    and FMUL in the kernel, so those are not counted."""
    fma = len(re.findall(r"HFMA2\.BF16_V2 R\d+, R\d+, R\d+(?:\.reuse)?, R\d+", code))
    assert fma >= 16, f"{name}: MXINT8 not decoded by integer ops and a bf16 FMA ({fma} HFMA2.BF16)"


@needs_nvcc
@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_every_kernel_assembles_for_sm90a(chunk):
    """A quarter of every variant `select` can pick, assembled (nvcc -> PTX -> ptxas sm_90a) and SASS-checked."""
    kernels = every_kernel()[chunk::CHUNKS]
    ptx, funcs = assembled(kernels)
    assert ".target sm_90a" in ptx
    log = build(kernels).ptxas_log
    for k in kernels:
        code = funcs[k.name]
        if k.kind in ("bsmma", "bsdec"):
            assert "HGMMA.64x128x16.F32.BF16" in code, k.name
        if k.kind == "rdec":  # wgmma with A from registers (no shared-memory descriptor for A), bulk copies
            assert re.search(rf"HGMMA\.64x{k.na}x16\.F32\.BF16 R\d+, R\d+, gdesc", code), k.name
            assert "UBLKCP.S.G" in code, k.name
            _check_weight_decode(k, code)
        if k.kind == "rdec":  # the activation called (one copy: silu's exp), not inlined into the
            # unrolled epilogue (inlined into rdec's 128 stores it made the kernel ~12k instructions, stalled on
            # instruction fetch)
            assert code.count("MUFU.EX2") <= 2, f"{k.name}: the epilogue's activations inlined"
        if k.kind in ("bsmma", "bsdec"):  # bulk copies (the TMA engine) into a ring of slots
            assert "UBLKCP.S.G" in code, k.name
        # a call inside the pipeline (printf: C7510) or registers of a wgmma written while one runs (C7513)
        # make ptxas serialize the kernel's wgmmas
        assert not re.search(rf"C751\d.*'{k.name}'", log), f"{k.name}: wgmma serialized, ptxas says:\n{log}"
        if k.kind in ("dec", "decs", "dec1b"):  # mma.sync on registers; E2M1 decoded by integer ops, scaled by bf16
            # multiplies, IF4 and NVINT4 by table lookups; dec1b's weights by bulk copies
            assert "HMMA.16816.F32.BF16" in code, k.name
            assert k.kind != "dec1b" or "UBLKCP.S.G" in code, k.name
            _check_weight_decode(k, code)
        else:
            assert "HMMA" not in code, f"{k.name}: an mma.sync path (HMMA) where wgmma was meant"
        assert not re.search(r"\b(LDL|STL)\b", code), f"{k.name}: registers spilled to local memory"


def _check_bulk_mma(kernels, decode: bool = True) -> None:
    """dec1b in SASS: mma.sync (HMMA) on weights that bulk copies brought (UBLKCP), the format's
    integer or table decode (`decode`), no spills."""
    _, funcs = assembled(kernels)
    for k in kernels:
        code = funcs[k.name]
        assert "HMMA.16816.F32.BF16" in code and "UBLKCP.S.G" in code, k.name
        if decode:
            _check_weight_decode(k, code)
        assert not re.search(r"\b(LDL|STL)\b", code), f"{k.name}: registers spilled to local memory"


@needs_nvcc
def test_dec1b_assembles_for_sm90a():
    """dec1b (kinds.Dec1B, the variant cuda-sm90 selects) for every weight format, with and without bias:
    mma.sync with the weights' integer or table decode, bulk copies, no spills."""
    kernels = [dec1b_kernel(f, b) for f in WEIGHT_FORMATS for b in (False, True)]
    _check_bulk_mma(kernels)


@needs_nvcc
def test_dec1b_variants_assemble_for_sm90a():
    """The dec1b variants `bench_cuda dec1b` compares (kinds.DEC1B_VARIANTS, in the GPU library; NVFP4 and
    MXFP8, whose stages are cut to fit): bulk copies, mma.sync, no spills. Its measurement variants that
    `bench_cuda ring` times: diag 2 keeps the bulk copies and the MMAs but no decode (no bf16 multiply),
    diag 3 the bulk copies and the ring's barriers only (no MMA)."""
    kernels = dec1b_variants("nvfp4") + dec1b_variants("mxfp8")
    assert {k.stages for k in kernels} >= {4, 8}
    _check_bulk_mma(kernels, decode=False)
    diag = [replace(dec1b_kernel("nvfp4"), diag=d) for d in (2, 3)]
    _, sass = assembled(diag)
    d2, d3 = (sass[k.name] for k in diag)
    assert "UBLKCP.S.G" in d2 and "HMMA.16816.F32.BF16" in d2 and "HMUL2" not in d2
    assert "UBLKCP.S.G" in d3 and "HMMA" not in d3 and "SYNCS.ARRIVE" in d3


@needs_nvcc
def test_decs_measurement_variants_assemble_for_sm90a():
    """decs's measurement variants that `bench_cuda ring` times (kinds.ring_variants): diag 2 loads the weights
    and runs the MMAs without decode (no bf16 multiply), diag 3 keeps every 128-bit load of the kernel (the
    weights' and x's) and neither reads x from shared memory nor multiplies; the kernel itself does all of it.
    diag 4 skips x's staging at run time only: its code keeps every load and store of the kernel's."""
    plain = DecSplit(w_format="nvfp4", mt=16, s=6, kt=24)
    ks = [plain] + [replace(plain, diag=d) for d in (2, 3, 4)]
    _, sass = assembled(ks)
    d0, d2, d3, d4 = (sass[k.name] for k in ks)
    for op in ("LDG.E.128", "STS.128", "LDS.128", "HMMA", "HMUL2"):
        assert d4.count(op) == d0.count(op), op
    assert "HMUL2" in d0 and "HMMA.16816.F32.BF16" in d0
    assert "HMUL2" not in d2 and "HMMA.16816.F32.BF16" in d2
    assert "HMMA" not in d3 and "LDS.128" not in d3
    assert len(re.findall(r"\bLDG\.E\.128", d3)) >= len(re.findall(r"\bLDG\.E\.128", d0)), "weights' loads dropped"
    with pytest.raises(ValueError, match="decs: diag 0 \\(the kernel\\), 2, 3 or 4"):
        DecSplit(w_format="nvfp4", diag=1)


def test_dec1b_shape_is_checked():
    """A dec1b shape the kernel cannot launch is refused when it is named, not at launch: at most 31 consumer
    warps (1024 threads with the producer warp), at least 8 (their first 256 threads fill the decode's table)."""
    for bad in ({"warps": 32}, {"warps": 4}, {"tpw": 0}, {"stages": 1}, {"cpsm": 0}):
        with pytest.raises(ValueError, match="8 to 31 consumer warps"):
            Dec1B(w_format="nvfp4", **bad)
    with pytest.raises(ValueError, match="diag 0 \\(the kernel\\), 2 or 3"):
        Dec1B(w_format="nvfp4", diag=1)
    assert Dec1B(w_format="nvfp4", warps=31).threads == 1024


def _check_weight_decode(k, code: str) -> None:
    """The dec / decs / rdec kernel's weight decode in its SASS: E2M1 by bf16 multiplies (no I2F), IF4 and
    NVINT4 by table lookups, FP6 and MXINT8 by integer ops. No predicated bf16 multiply: the E8M0 formats'
    second multiply (scale_factors' `two`) lives in its own copy of the steps (mxc_sm90.cuh `with_two`), not
    in 16 predicated HMUL2 per fragment tile that issue on the common path too; but in dec1's FP8 (dec at
    M = 1), where the second copy costs a spilled register."""
    if not (k.kind == "dec" and k.mt == 1 and fast_fp8(k.w_format)):
        assert not PREDICATED_HMUL2.search(code), f"{k.name}: predicated bf16 multiplies in the decode"
    if FORMATS[k.w_format].element.name == "e2m1" and FORMATS[k.w_format].choice != "if4":
        assert "HMUL2.BF16_V2" in code and "I2F" not in code, k.name
    if fast_tab4(k.w_format):
        _check_if4_table_decode(k.name, code)
    if fast_fp6(k.w_format):
        _check_fp6_integer_decode(k.name, code, k.kind)
    if fast_int8(k.w_format):
        _check_int8_integer_decode(k.name, code)


def test_every_kernel_covers_what_select_picks():
    names = {k.name for k in every_kernel()}
    for f in WEIGHT_FORMATS:
        for m in (1, 8, 9, 16, 128):
            for bias in (False, True):
                assert all(k.name in names for k in sel(m, f, None, bias))
    for a in BS_ACT_FORMATS:
        for w in WEIGHT_FORMATS:
            ks = sel(512, w, a, True)
            assert isinstance(ks, str) or all(k.name in names for k in ks), (a, w)


_SASS = """
//--------------------- .text.{a} --------------------------
	.section	.text.{a},"ax",@progbits
        .global         {a}
{a}:
.text.{a}:
        /*0000*/                   MOV R1, c[0x0][0x28] ;
        /*0010*/                   BRA `(.L_x_{n}) ;
.L_x_{n}:
        /*0020*/                   CALL.REL.NOINC `($__internal_{n}_$__cuda_sm3x_div_rn_noftz_f32_slowpath) ;
        /*0030*/                   {op} ;
//--------------------- .text.{b} --------------------------
	.section	.text.{b},"ax",@progbits
        .global         {b}
{b}:
.text.{b}:
        /*0000*/                   EXIT ;
"""


def test_sass_compare_sees_code_not_label_numbers_or_neighbours():
    """`python -m mxc.kernels.sass OLD NEW`: a kernel whose code is the same compares equal though its labels
    and internal names are numbered differently and another kernel follows it; a changed instruction differs."""
    from mxc.kernels.sass import compare, functions

    old = functions(_SASS.format(a="mxc_k", b="mxc_gone", n=7, op="EXIT"))
    same = functions(_SASS.format(a="mxc_k", b="mxc_other", n=3, op="EXIT"))
    changed = functions(_SASS.format(a="mxc_k", b="mxc_other", n=3, op="NOP"))
    assert set(old) == {"mxc_k", "mxc_gone"}
    assert compare(old, same) == ([], ["mxc_gone"], ["mxc_other"])
    assert compare(old, changed)[0] == ["mxc_k"]


def test_tile_path_steps_over_the_vote_branch():
    """`python -m mxc.kernels.sass tile`: a fragment tile's common path from its scale codes' load to its fourth
    HMMA, the block a VOTE's branch skips (the `two` case) and labels not counted."""
    from mxc.kernels.sass import tile_path

    body = ["IMAD R1, R2, 0x10, R3", "LDS.U16 R4, [R1]", "VOTE.ANY P0, P0", "@!P0 BRA `(.L_x_9)",
            "HMUL2.BF16_V2 R5, R5, R6", "FMUL R1, R1, R1", ".L_x_9:", "BSSY B0, `(.L_x_10)",
            *["HMMA.16816.F32.BF16 R8, R4, R6, R8"] * 4, "EXIT"]
    code = "".join(f"        /*{16 * i:04x}*/ {t} ;\n" if not t.startswith(".L") else f"{t}\n"
                   for i, t in enumerate(body))
    assert tile_path(code) == ["LDS.U16 R4, [R1]", "VOTE.ANY P0, P0", "@!P0 BRA `(.L_x_9)"] + [body[8]] * 4
    with pytest.raises(ValueError, match="LDS.U16"):
        tile_path(code.replace("LDS.U16", "LDS.128"))


# dec1b's instructions per fragment tile on the common path (`python -m mxc.kernels.sass tile`), with ptxas 13.0:
# NVFP4 68, MXFP4 75, MXFP6 E2M3 97, MXFP8 104 (before the 9-operation E2M1 layout and the E8M0 decodes' own copy
# of the steps without the `two` multiplies: 76, 101, 115, 122). The bounds leave ~5 % for other ptxas versions.
_TILE_BOUND = {"nvfp4": 72, "mxfp4": 79, "mxfp6_e2m3": 102, "mxfp8": 109}


@needs_nvcc
def test_dec1b_tile_instructions():
    """dec1b's consumers issue at most _TILE_BOUND instructions per fragment tile on the common path, none of
    them a predicated HMUL2: the decode the H200 binds on at M = 1 (docs/cuda-sm90-log.md)."""
    from mxc.kernels.sass import tile_path

    kernels = [dec1b_kernel(f) for f in _TILE_BOUND]
    _, funcs = assembled(kernels)
    for k in kernels:
        path = tile_path(funcs[k.name])
        assert len(path) <= _TILE_BOUND[k.w_format], (k.name, len(path))
        assert sum(t.startswith("HMUL2") for t in path) == 16, k.name

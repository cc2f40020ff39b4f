"""The cuda-sm100 (Blackwell) kernels without Blackwell hardware: every sm_100a variant
assembled by ptxas and its SASS read (UTCQMMA / UTCOMMA / UTCOMMA.4X with their tensor-memory scale
operand, UTCCP scale copies, UTCHMMA on the decode path, bulk copies, LDTM epilogue, no spills).

What runs on the H100 / H200 is the same skeleton with the sm_90a atom (test_cuda_kernels.py and
`pytest tests/gpu`); the tcgen05 atom itself cannot run here. Selection: test_targets.py.
"""

from __future__ import annotations

import re

import pytest

from mxc.kernels import Kernel, every_kernel, source
from mxc.kernels import tcgen05 as tc
from mxc.kernels.kinds import GEMV_MT, BsMma, BsQ
from mxc.kernels.operands import BS_ACT_FORMATS, NV_WEIGHT, WEIGHT_FORMATS, pair_desc, pair_kind

from test_cuda_kernels import assembled, needs_nvcc
from test_targets import sel

SM100 = "sm_100a"


def test_pair_kinds():
    mx = ("mxfp8", "mxfp8_e5m2", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp4")
    for a in mx:
        for w in mx:
            want = tc.KIND_MXF4 if a == w == "mxfp4" else tc.KIND_MXF8F6F4
            assert pair_kind(a, w) == want
    assert all(pair_kind(a, w) == tc.KIND_MXF4NVF4 for a in ("nvfp4", "nvfp4_4over6") for w in NV_WEIGHT)
    for other in ("mxint8", "if4", "nvint4", "fp4_ue5m3"):
        assert pair_kind(other, other) is None and pair_kind("nvfp4", other) is None
    assert pair_kind("mxfp4", "nvfp4") is None  # block sizes differ


def test_source_carries_the_descriptor_from_idesc():
    k = BsMma(w_format="mxfp4", a_format="mxfp8", arch=SM100)
    src = source([BsQ(a_format="mxfp8", unit=16, arch=SM100), k])
    word = tc.idesc(tc.KIND_MXF8F6F4, "e4m3", "e2m1")
    assert f"IDESC = 0x{word:08x}u;  // kind::mxf8f6f4" in src
    assert pair_desc("mxfp8", "mxfp4").word == word == 0x08A01400  # CUTLASS's value for this pair
    assert "#define MXC_SM90" not in src and "wgmma_bf16" not in src


def test_every_sm100_kernel_covers_what_select_picks():
    names = {k.name for k in every_kernel(SM100)}
    for w in WEIGHT_FORMATS:
        for m in (*GEMV_MT, 4096):
            for a in (None, *BS_ACT_FORMATS):
                for bias in (False, True):
                    ks = sel(m, w, a, bias, "cuda-sm100")
                    assert isinstance(ks, str) or all(k.name in names for k in ks), (m, w, a)


CHUNKS = 4
SCALED = r"idesc\[[^]]*\], tmem\[[^]]*\]"  # the trailing tensor-memory scale operand


def _check_sm100(k: Kernel, code: str) -> None:
    if k.kind == "bsmma":
        kind = pair_kind(k.a_format, k.w_format)
        if kind == tc.KIND_MXF8F6F4:
            assert re.search(r"UTCQMMA [^;]*" + SCALED, code), k.name
            assert "UTCOMMA" not in code, k.name
        elif kind == tc.KIND_MXF4:
            assert re.search(r"UTCOMMA [^;]*" + SCALED, code), k.name
            assert "UTCOMMA.4X" not in code, k.name
        else:
            assert re.search(r"UTCOMMA\.4X [^;]*" + SCALED, code), k.name
        # scale copies: one 128x4 chunk per operand per K tile (two for block-16 NVFP4)
        n_cp = len(re.findall(r"UTCCP\.T\.S\.4x32dp128bit tmem\[", code))
        assert n_cp >= (4 if kind == tc.KIND_MXF4NVF4 else 2), (k.name, n_cp)
        assert "UTCHMMA" not in code, k.name
    if k.kind == "bsdec":
        assert re.search(r"UTCHMMA [^;]*idesc\[", code), k.name
        assert not re.search(r"UTC[QO]MMA|UTCCP", code), k.name
    if k.kind in ("bsmma", "bsdec"):
        for sass in ("UBLKCP.S.G", "UTCBAR", "LDTM.x16", "SYNCS.PHASECHK"):
            assert sass in code, (k.name, sass)
        # the accumulator's tensor-memory address is read back from shared memory after tcgen05.alloc
        alloc, mma = code.find("UTCATOMSWS.FIND_AND_SET"), re.search(r"UTC[QOH]MMA", code)
        assert 0 <= alloc < mma.start() and re.search(r"\bLDS\b", code[alloc:mma.start()]), k.name
    assert not re.search(r"\b[HQ]GMMA|\bHMMA", code), f"{k.name}: a Hopper / mma.sync instruction on sm_100a"
    assert not re.search(r"\b(LDL|STL)\b", code), f"{k.name}: registers spilled to local memory"


@needs_nvcc
@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_every_kernel_assembles_for_sm100a(chunk):
    """A quarter of every sm_100a variant (nvcc -> PTX .target sm_100a -> ptxas -arch=sm_100a), SASS-checked."""
    kernels = every_kernel(SM100)[chunk::CHUNKS]
    ptx, funcs = assembled(kernels)
    assert ".target sm_100a" in ptx
    version = tuple(int(v) for v in re.search(r"\.version (\d+)\.(\d+)", ptx).groups())
    assert version >= (8, 8), version  # block_scale's .block16 / .block32 spellings
    for k in kernels:
        _check_sm100(k, funcs[k.name])


def test_sass_checks_can_fail():
    """The checks above reject a kernel whose MMA is not the block-scaled one."""
    k = BsMma(w_format="nvfp4", a_format="nvfp4", arch=SM100)
    unscaled = ("UTCATOMSWS.FIND_AND_SET.ALIGN UP0, UR4, UR4 ;\nLDS R2, [UR5+0x18c40] ;\n"
                "UTCOMMA.4X gdesc[UR12], gdesc[UR10], tmem[UR8], tmem[UR4], idesc[UR5], !UPT ;\n"
                "UTCCP.T.S.4x32dp128bit tmem[UR6+0x80], gdesc[UR4] ;\n" * 4 + "UBLKCP.S.G UTCBAR LDTM.x16 SYNCS.PHASECHK")
    with pytest.raises(AssertionError):
        _check_sm100(k, unscaled)
    with pytest.raises(AssertionError):
        _check_sm100(k, unscaled.replace("!UPT", "tmem[UR6], UPT") + " STL [R1], R2 ;")
    with pytest.raises(AssertionError):  # no read of the allocated address before the MMA
        _check_sm100(k, unscaled.replace("!UPT", "tmem[UR6], UPT").replace("LDS R2", "MOV R2"))
    _check_sm100(k, unscaled.replace("!UPT", "tmem[UR6], UPT"))

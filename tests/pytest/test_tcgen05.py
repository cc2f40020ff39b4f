"""The tcgen05.mma instruction descriptor against the PTX ISA's tables (and CUTLASS's words)."""

from __future__ import annotations

import pytest

from mxc.kernels import tcgen05 as tc


def test_words_equal_cutlass():
    # UMMA::make_instr_desc_block_scaled / make_instr_desc for M = N = 128, K-major, dense
    assert tc.idesc(tc.KIND_MXF8F6F4, "e4m3", "e2m1") == 0x08A01400
    assert tc.idesc(tc.KIND_MXF4, "e2m1", "e2m1") == 0x08A00480
    assert tc.idesc(tc.KIND_MXF4NVF4, "e2m1", "e2m1", ue8m0=False) == 0x08200480
    assert tc.idesc(tc.KIND_F16, "bf16", "bf16") == 0x08200490


@pytest.mark.parametrize("a,code_a", sorted(tc.MXF8F6F4_TYPES.items()))
@pytest.mark.parametrize("b,code_b", sorted(tc.MXF8F6F4_TYPES.items()))
def test_mxf8f6f4_type_fields(a, code_a, b, code_b):
    # PTX table "Instruction descriptor for .kind::mxf8f6f4": atype bits 7-9, btype 10-12,
    # E4M3 0, E5M2 1, E2M3 3, E3M2 4, E2M1 5; scale type bit 23 = 1 (UE8M0)
    f = tc.fields(tc.idesc(tc.KIND_MXF8F6F4, a, b))
    assert (f["atype"], f["btype"]) == (code_a, code_b)
    assert f["ue8m0"] == 1 and f["m"] == 128 and f["n"] == 128
    assert f["negate_a"] == f["negate_b"] == f["a_major"] == f["b_major"] == f["k96"] == 0


def test_table_codes():
    assert tc.MXF8F6F4_TYPES == {"e4m3": 0, "e5m2": 1, "e2m3": 3, "e3m2": 4, "e2m1": 5}
    assert tc.MXF4_TYPES == {"e2m1": 1}


@pytest.mark.parametrize("n", [16, 64, 128, 256])
def test_shape_fields(n):
    word = tc.idesc(tc.KIND_MXF4, "e2m1", "e2m1", n=n, m=256)
    assert (word >> 17) & 0x3F == n >> 3  # N >> 3 at bits 17-22
    assert (word >> 27) & 0x3 == 2  # M >> 7 at bits 27-28
    assert tc.fields(word)["n"] == n and tc.fields(word)["m"] == 256


def test_scale_selectors():
    # SFA_ID bits 29-30, SFB_ID bits 4-5: 1X any byte, 2X 0 or 2, 4X (block16) 0 only
    w = tc.idesc(tc.KIND_MXF8F6F4, "e4m3", "e4m3", sfa_id=3, sfb_id=2)
    assert tc.fields(w)["sfa_id"] == 3 and tc.fields(w)["sfb_id"] == 2
    assert tc.idesc(tc.KIND_MXF4, "e2m1", "e2m1", sfa_id=2) >> 29 == 2
    with pytest.raises(ValueError, match="scale-factor ids"):
        tc.idesc(tc.KIND_MXF4, "e2m1", "e2m1", sfa_id=1)
    with pytest.raises(ValueError, match="scale-factor ids"):
        tc.idesc(tc.KIND_MXF4NVF4, "e2m1", "e2m1", ue8m0=False, sfb_id=2)
    # the kernels OR the per-MMA ids into the word at these shifts
    assert (tc.SFA_ID_SHIFT, tc.SFB_ID_SHIFT) == (29, 4)


def test_bad_descriptors_are_refused():
    with pytest.raises(ValueError, match="takes"):
        tc.idesc(tc.KIND_MXF4, "e4m3", "e2m1")  # kind::mxf4 is E2M1 only
    with pytest.raises(ValueError, match="UE4M3"):
        tc.idesc(tc.KIND_MXF8F6F4, "e4m3", "e4m3", ue8m0=False)
    with pytest.raises(ValueError, match="M=64"):
        tc.idesc(tc.KIND_MXF4, "e2m1", "e2m1", m=64)
    with pytest.raises(ValueError, match="N=200"):
        tc.idesc(tc.KIND_MXF4, "e2m1", "e2m1", n=200)

"""The 128x4 block-scale layout of Blackwell's tcgen05.mma (kernels/layouts.py): round trip and offsets."""

import pytest
import torch

from mxc.kernels.layouts import offset_128x4, padded_shape, swizzle_128x4, unswizzle_128x4


@pytest.mark.parametrize("m, c", [(128, 4), (256, 8), (300, 70), (1, 1), (129, 5)])
def test_round_trip(m, c):
    s = torch.randint(0, 256, (m, c), dtype=torch.uint8, generator=torch.Generator().manual_seed(m * c))
    z = swizzle_128x4(s)
    mp, cp = padded_shape(m, c)
    assert z.shape == (mp // 128, cp // 4, 512)
    assert torch.equal(unswizzle_128x4(z, m, c), s)


def test_offsets_match_the_tensor_layout():
    m, c = 300, 70
    s = torch.arange(m * c, dtype=torch.int64).remainder(251).to(torch.uint8).reshape(m, c)
    flat = swizzle_128x4(s, pad=255).flatten()
    for row in (0, 1, 31, 32, 33, 127, 128, 200, 299):
        for col in (0, 1, 3, 4, 5, 69):
            assert flat[offset_128x4(row, col, c)] == s[row, col]


def test_chunk_byte_order():
    """Within a 512-byte chunk: row 32*a + b at byte 16*b + 4*a, then the column."""
    s = torch.zeros(128, 4, dtype=torch.uint8)
    s[32 * 2 + 5, 3] = 7
    assert swizzle_128x4(s).flatten().nonzero().flatten().tolist() == [16 * 5 + 4 * 2 + 3]


def test_padding_and_errors():
    z = swizzle_128x4(torch.ones(1, 1, dtype=torch.uint8), pad=127)
    assert int(z.flatten()[0]) == 1 and int((z == 127).sum()) == 511
    with pytest.raises(ValueError, match="2-D uint8"):
        swizzle_128x4(torch.ones(4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="expected swizzled scales of shape"):
        unswizzle_128x4(torch.zeros(1, 1, 512, dtype=torch.uint8), 300, 4)


# ---------------------------------------------------------------- operand tiles (bsmma / bsdec)
from mxc.kernels.operands import tile_weights  # noqa: E402
from mxc.kernels.layouts import tile_bytes, tile_codes, tile_offset, tile_scales, untile_codes  # noqa: E402
from mxc.numerics import quantize  # noqa: E402


@pytest.mark.parametrize("bits, ue", [(8, 16), (6, 16), (4, 16), (4, 32)])
@pytest.mark.parametrize("r, k", [(128, 128), (200, 300), (1, 1), (129, 257)])
def test_tile_round_trip(bits, ue, r, k):
    g = torch.Generator().manual_seed(r * k + bits)
    c = torch.randint(0, 1 << bits, (r, k), dtype=torch.int32, generator=g).to(torch.uint8)
    t = tile_codes(c, bits, ue)
    assert t.numel() == -(-r // 128) * -(-k // 128) * tile_bytes(ue)
    assert torch.equal(untile_codes(t, r, k, bits, ue), c)


def test_tile_unit_layout():
    """Unit u of row r at ((r // 8) * units + u) * 128 + (r % 8) * 16: core matrices of 8 rows x 16 bytes,
    the K-adjacent ones 128 bytes apart (the MMA descriptors' LBO = 128, SBO = units * 128)."""
    k = 300
    c = torch.zeros(200, k, dtype=torch.uint8)
    c[137, 250] = 0xAB
    t = tile_codes(c, 8, 16)
    off, i = tile_offset(137, 250, k, 16)
    assert t[off + i] == 0xAB and int((t != 0).sum()) == 1
    # row 137: row tile 1, row 9 (group 1, row 1 of it); k 250: K tile 1 of 3, element 122 (unit 7, index 10)
    assert (off, i) == ((1 * 3 + 1) * tile_bytes(16) + (1 * 8 + 7) * 128 + 1 * 16, 10)
    # packed FP4: 32 per unit, low nibble first; padded FP4 (kind::mxf8f6f4): 16 per unit, 8 bytes + 8 zero
    c4 = torch.arange(32, dtype=torch.uint8).remainder(16).reshape(1, 32)
    assert tile_codes(c4, 4, 32)[:16].tolist() == [0x10, 0x32, 0x54, 0x76, 0x98, 0xBA, 0xDC, 0xFE] * 2
    assert tile_codes(c4, 4, 16)[:16].tolist() == [0x10, 0x32, 0x54, 0x76, 0x98, 0xBA, 0xDC, 0xFE] + [0] * 8


def test_tiled_weights_decode_to_the_reference():
    """tile_weights of a quantized matrix holds the same codes and scales (padding: zero codes, scale 1)."""
    w = torch.randn(130, 200, generator=torch.Generator().manual_seed(0))
    for fmt, ue in (("mxfp4", 32), ("mxfp6_e3m2", 16), ("nvfp4", 32)):
        q = quantize(w, fmt)
        tw, ts = tile_weights(q.elements, q.scales, fmt, ue, 200)
        assert torch.equal(untile_codes(tw, 130, q.elements.shape[1], q.fmt.element.bits, ue), q.elements)
        cols = 256 // q.fmt.block_size
        full = unswizzle_128x4(ts.reshape(-1, cols // 4, 512), 256, cols)
        assert torch.equal(full[:130, :q.scales.shape[1]], q.scales)
        one = 127 if fmt.startswith("mx") else 0x38  # E8M0 / UE4M3 code of 1.0
        assert (full[130:] == one).all() and (full[:, q.scales.shape[1]:] == one).all()
    assert tile_scales(torch.zeros(1, 1, dtype=torch.uint8), 1, 32, 127).numel() == 512


# ---------------------------------------------------------------- fragment tiles (dec)
from mxc.kernels.layouts import FRAG_K, frag_codes, frag_scales, unfrag_codes, unfrag_scales  # noqa: E402
from mxc.kernels.operands import Fragments  # noqa: E402


@pytest.mark.parametrize("bits", [4, 6, 8])
@pytest.mark.parametrize("r, k", [(16, 64), (40, 96), (1, 1), (33, 200)])
def test_fragment_round_trip(bits, r, k):
    g = torch.Generator().manual_seed(r * k + bits)
    c = torch.randint(0, 1 << bits, (r, k), dtype=torch.int32, generator=g).to(torch.uint8)
    f = frag_codes(c, bits)
    assert f.numel() == -(-r // 16) * -(-k // 64) * 32 * 32 * bits // 8
    assert torch.equal(unfrag_codes(f, r, k, bits), c)
    for bs in (16, 32):
        s = torch.randint(0, 255, (r, -(-k // bs)), dtype=torch.int32, generator=g).to(torch.uint8)
        assert torch.equal(unfrag_scales(frag_scales(s, k, bs, 7), r, k, bs), s)


def _dec_model(frag: torch.Tensor, scales: torch.Tensor, x: torch.Tensor, n: int, k: int, bs: int) -> torch.Tensor:
    """What `dec` computes, index for index (mxc_sm90.cuh): per tile and lane, step s's A registers
    j = 0..3 (halves h) from codes 8s + j + 4h, rows g + 8 * (j % 2); the B registers from the lane's
    16 consecutive activations 16t + 4s + {0, 1} and {2, 3}; the m16n8k16 product. Codes are taken as
    their integer values and scales as theirs, so the result is sum_k x[m, k] * code[n, k] * scale."""
    rt, kt = -(-n // 16), -(-k // 64)
    nb = 64 // bs
    codes = frag.reshape(rt, kt, 32, 32).double()  # 8-bit codes: one per byte
    sc = scales.reshape(rt, kt, 8, nb, 2).double()
    xp = torch.zeros(x.shape[0], kt * 64, dtype=torch.float64)
    xp[:, :k] = x
    y = torch.zeros(x.shape[0], rt * 16, dtype=torch.float64)
    for a in range(rt):
        for b in range(kt):
            for lane in range(32):
                g, t = lane // 4, lane % 4
                for s in range(4):
                    A = {}  # (A row, A column) of the m16n8k16 operand -> value
                    for j in range(4):
                        for h in range(2):
                            row, col = g + 8 * (j % 2), 2 * t + h + 8 * (j // 2)
                            A[row, col] = codes[a, b, lane, 8 * s + j + 4 * h] * sc[a, b, g, 16 * t // bs, j % 2]
                    for (row, col), v in A.items():
                        # B's column `col` (k slot) of lane t' = col % 8 // 2 holds activation 16t' + 4s + ...
                        t2 = (col % 8) // 2
                        kk = b * 64 + 16 * t2 + 4 * s + (col % 2) + 2 * (col // 8)
                        y[:, a * 16 + row] += xp[:, kk] * v
    return y[:, :n]


@pytest.mark.parametrize("bs", [16, 32])
def test_dec_kernel_model_multiplies_the_right_codes(bs):
    """The fragment layout and the K permutation of `dec`, modelled: every lane's A and B registers
    pair weight (n, k) with activation k (a wrong index in the layout or the kernel changes y)."""
    n, k = 20, 100
    g = torch.Generator().manual_seed(bs)
    c = torch.randint(0, 256, (n, k), dtype=torch.int32, generator=g).to(torch.uint8)
    s = torch.randint(1, 9, (n, -(-k // bs)), dtype=torch.int32, generator=g).to(torch.uint8)
    x = torch.randn(3, k, generator=g, dtype=torch.float64)
    w = c.double() * s.double().repeat_interleave(bs, 1)[:, :k]
    y = _dec_model(frag_codes(c, 8), frag_scales(s, k, bs, 1), x, n, k, bs)
    assert torch.allclose(y, x @ w.T, rtol=1e-12, atol=1e-9)


def test_e2m1_to_bf16_bit_trick():
    """dec's integer decode: code 0bSEEM -> bf16 bits S << 15 | EEM << 6, times 2^126 (bf16 0x7E80), is
    the E2M1 value exactly, subnormal code included."""
    from mxc.numerics.elements import decode_table
    from mxc.numerics.formats import E2M1

    codes = torch.arange(16, dtype=torch.int32)
    bits = ((codes & 7) << 6) | ((codes & 8) << 12)
    v = bits.to(torch.int16).view(torch.bfloat16) * torch.tensor(2.0**126, dtype=torch.bfloat16)
    assert torch.equal(v.float(), decode_table(E2M1).float())


@pytest.mark.parametrize("bits, scatter", [(4, True), (4, False), (6, False), (8, False)])
def test_grouped_fragments(bits, scatter):
    """rdec's weights: the fragment tiles with 8 row tiles side by side per K tile (rows padded to 128):
    tile (i, j) at ((i // 8) * kt + j) * 8 + i % 8, codes and scales alike; round trip."""
    r, k = 140, 200
    g = torch.Generator().manual_seed(bits)
    c = torch.randint(0, 1 << bits, (r, k), dtype=torch.int32, generator=g).to(torch.uint8)
    flat = frag_codes(c, bits, scatter=scatter).reshape(9, 4, -1)  # [row tiles, K tiles, tile bytes]
    f = frag_codes(c, bits, scatter=scatter, group=8)
    rt, kt, tb = 16, 4, 32 * 32 * bits // 8  # 140 rows -> 9 row tiles, padded to 16
    assert f.numel() == rt * kt * tb
    tiles = f.reshape(rt // 8, kt, 8, tb)
    for i in range(9):
        for j in range(kt):
            assert torch.equal(tiles[i // 8, j, i % 8], flat[i, j]), (i, j)
    assert torch.equal(tiles[1, :, 1:], torch.zeros_like(tiles[1, :, 1:]))  # the padding tiles
    assert torch.equal(unfrag_codes(f, r, k, bits, scatter=scatter, group=8), c)
    for bs in (16, 32):
        s = torch.randint(0, 255, (r, -(-k // bs)), dtype=torch.int32, generator=g).to(torch.uint8)
        fs = frag_scales(s, k, bs, 7, group=8)
        assert torch.equal(fs.reshape(rt // 8, kt, 8, -1)[0, 2, 3], frag_scales(s, k, bs, 7).reshape(-1, kt, 16 * 64 // bs)[3, 2])
        assert torch.equal(unfrag_scales(fs, r, k, bs, group=8), s)


def test_tilea_permutation_is_the_fragment_k_order():
    """rdec's operands meet: tilea's permuted K (mxc_sm90_prefill.cuh: the tile's K position 8c + i holds
    x's K 16 (i / 2) + 2c + i % 2) puts at the wgmma's K slot `col` of step s the activation that the
    fragment tiles pair with A column `col` of step s (16 t + 4 s + col % 2 + 2 (col / 8), t = col % 8 / 2,
    as `_dec_model`)."""
    for s in range(4):
        for col in range(16):
            pos = 16 * s + col  # K position inside the 64-K tile, as wgmma reads B
            c, i = pos // 8, pos % 8
            tilea = 16 * (i // 2) + 2 * c + i % 2
            frag = 16 * ((col % 8) // 2) + 4 * s + col % 2 + 2 * (col // 8)
            assert tilea == frag, (s, col)


def test_fragment_layout_sizes():
    assert Fragments(e2m1=True).sizes("nvfp4", 40, 96) == (3 * 2 * 512, 3 * 2 * 64)
    assert Fragments(e2m1=True).suffix == "f16x64e" and Fragments().suffix == "f16x64"
    assert Fragments().sizes("mxfp6_e2m3", 16, FRAG_K) == (768, 32)
    assert Fragments(e2m1=True, group=8).sizes("nvfp4", 40, 96) == (8 * 2 * 512, 8 * 2 * 64)
    assert Fragments(e2m1=True, group=8).suffix == "f16x64eg8"
    from mxc.kernels.operands import layout_of, layout_recipe

    assert layout_recipe(Fragments(e2m1=True)) == {"fragments": True}  # recipes of earlier artifacts unchanged
    for lay in (Fragments(), Fragments(e2m1=True, group=8)):
        assert layout_of(layout_recipe(lay)) == lay


def test_e2m1_scattered_words_decode_by_the_kernels_shifts():
    """The bit-scattered E2M1 fragments: `e2m1_bits` (mxc_sm90.cuh) of each step's word gives register
    j's two codes at the bf16 positions (magnitude 6..8 / 22..24, sign 15 / 31), in fragment order."""
    c = torch.randint(0, 16, (40, 96), dtype=torch.int32, generator=torch.Generator().manual_seed(3)).to(torch.uint8)
    f = frag_codes(c, 4, scatter=True)
    assert torch.equal(unfrag_codes(f, 40, 96, 4, scatter=True), c)
    b = f.reshape(-1, 4).to(torch.int64)
    w = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16) | (b[:, 3] << 24)
    m = 0x81C081C0
    regs = [w & m, (w << 3) & m, (w << 6) & m,
            ((w >> 4) & 0x00C000C0) | ((w >> 5) & 0x01000100) | ((w << 1) & 0x80008000)]
    plain = frag_codes(c, 8).reshape(-1, 8).to(torch.int64)  # code 8s + p of each step, one per byte
    for j, r in enumerate(regs):
        assert (r & ~m & 0xFFFFFFFF).eq(0).all()
        for h in range(2):
            half = (r >> (16 * h)) & 0xFFFF
            assert torch.equal(((half >> 6) & 7) | (((half >> 15) & 1) << 3), plain[:, j + 4 * h]), (j, h)
    with pytest.raises(ValueError, match="4-bit"):
        frag_codes(c, 8, scatter=True)


def test_e2m1x8_byte_tables():
    """wdec's and the skeleton's integer decode of E2M1 (mxc_bs.cuh `e2m1x8`): the magnitude's bf16 bits from two
    byte tables picked by prmt, the sign bit moved in, give every code's value exactly."""
    import re
    from pathlib import Path

    from mxc.numerics.elements import decode_table
    from mxc.numerics.formats import E2M1

    src = (Path(__file__).resolve().parents[2] / "kernels" / "mxc_bs.cuh").read_text()
    t = {n: int(v, 16) for n, v in re.findall(r"(LO0|LO1|HI0|HI1) = 0x([0-9A-F]+)u", src)}
    lo = (t["LO1"] << 32 | t["LO0"]).to_bytes(8, "little")  # prmt's 8 bytes: {b, a}, a the low word
    hi = (t["HI1"] << 32 | t["HI0"]).to_bytes(8, "little")
    bits = torch.tensor([hi[c & 7] << 8 | lo[c & 7] | (0x8000 if c & 8 else 0) for c in range(16)], dtype=torch.int32)
    v = bits.to(torch.int16).view(torch.bfloat16).float()
    assert torch.equal(v, decode_table(E2M1).float()) and torch.equal(v.signbit(), decode_table(E2M1).signbit())

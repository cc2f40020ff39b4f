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
    assert layout_recipe(Fragments(e2m1=2)) == {"fragments": 2}
    assert Fragments(if4=True).suffix == "f16x64i" and Fragments(if4=True, group=8).suffix == "f16x64ig8"
    assert layout_recipe(Fragments(if4=True, group=8)) == {"fragments": False, "group": 8, "if4": True}
    for lay in (Fragments(), Fragments(e2m1=True, group=8), Fragments(e2m1=2, group=8), Fragments(if4=True),
                Fragments(if4=True, group=8)):
        assert layout_of(layout_recipe(lay)) == lay


def _rotl(w, n):
    return ((w << n) | (w >> (32 - n))) & 0xFFFFFFFF


# The kernels' E2M1 decode of a step's word w (`e2m1_bits`, mxc_sm90.cuh), and the first layout's (artifacts
# compiled before the current layout embed kernels that decode it), as integer ops on int64 words.
E2M1_DECODES = {
    "e2m1": lambda w, m: [(w & 0x80C080C0) | ((w << 8) & 0x01000100), (w << 4) & m, _rotl(w, 10) & m,
                          _rotl(w, 14) & m],
    "e2m1v1": lambda w, m: [w & m, (w << 3) & m, (w << 6) & m,
                            ((w >> 4) & 0x00C000C0) | ((w >> 5) & 0x01000100) | ((w << 1) & 0x80008000)],
}


@pytest.mark.parametrize("kind", ["e2m1", "e2m1v1"])
def test_e2m1_scattered_words_decode_by_the_kernels_ops(kind):
    """The bit-scattered E2M1 fragments: the decode of each step's word (E2M1_DECODES: the kernels' `e2m1_bits`)
    gives register j's two codes at the bf16 positions (magnitude 6..8 / 22..24, sign 15 / 31), in fragment
    order, and nothing elsewhere."""
    c = torch.randint(0, 16, (40, 96), dtype=torch.int32, generator=torch.Generator().manual_seed(3)).to(torch.uint8)
    f = frag_codes(c, 4, scatter=kind)
    assert torch.equal(unfrag_codes(f, 40, 96, 4, scatter=kind), c)
    b = f.reshape(-1, 4).to(torch.int64)
    w = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16) | (b[:, 3] << 24)
    m = 0x81C081C0
    plain = frag_codes(c, 8).reshape(-1, 8).to(torch.int64)  # code 8s + p of each step, one per byte
    for j, r in enumerate(E2M1_DECODES[kind](w, m)):
        assert (r & ~m & 0xFFFFFFFF).eq(0).all()
        for h in range(2):
            half = (r >> (16 * h)) & 0xFFFF
            assert torch.equal(((half >> 6) & 7) | (((half >> 15) & 1) << 3), plain[:, j + 4 * h]), (j, h)
    with pytest.raises(ValueError, match="4-bit"):
        frag_codes(c, 8, scatter=kind)


def test_e2m1_layout_versions():
    """Fragments.of packs E2M1 formats in the current layout (recipe `"fragments": 2`); an earlier artifact's
    recipe (`"fragments": true`) still packs the first layout, which its kernels read; an unknown one is refused."""
    from mxc.errors import MxcError
    from mxc.kernels.operands import E2M1_LAYOUT, layout_of, layout_recipe

    assert E2M1_LAYOUT == 2 and Fragments.of("nvfp4").e2m1 == 2 and Fragments.of("mxfp6_e2m3").e2m1 == 0
    assert layout_recipe(Fragments.of("nvfp4", group=8)) == {"fragments": 2, "group": 8}
    old = layout_of({"fragments": True})
    assert old.e2m1 == 1 and old.suffix == "f16x64e" and Fragments.of("mxfp4").suffix == "f16x64e2"
    codes = torch.randint(0, 16, (32, 128), dtype=torch.int32, generator=torch.Generator().manual_seed(5))
    codes = codes.to(torch.uint8)
    scales = torch.full((32, 4), 127, dtype=torch.uint8)
    new_bytes, _ = Fragments.of("mxfp4").pack(codes, scales, "mxfp4", 128)
    old_bytes, _ = old.pack(codes, scales, "mxfp4", 128)
    assert torch.equal(new_bytes, frag_codes(codes, 4, scatter="e2m1"))
    assert torch.equal(old_bytes, frag_codes(codes, 4, scatter="e2m1v1")) and not torch.equal(old_bytes, new_bytes)
    with pytest.raises(MxcError, match="E2M1 fragment layout 3.*compile the model again"):
        layout_of({"fragments": 3})


def test_e2m1x8_byte_tables():
    """The skeleton's integer decode of E2M1 (mxc_bs.cuh `e2m1x8`): the magnitude's bf16 bits from two
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


# ---------------------------------------------------------------- IF4's fragments (dec's table decode)
from mxc.kernels.layouts import IF4_BITS, if4_from_sign_magnitude, if4_sign_magnitude  # noqa: E402


def _prmt(a: torch.Tensor, b: torch.Tensor, sel) -> torch.Tensor:
    """PTX prmt.b32, default mode (mxc_sm90.cuh `prmt`): byte n = byte (sel >> 4n) & 7 of {b, a}, or its sign
    bit replicated when bit 4n + 3 of sel is set; sel's bits 16..31 unread. int64 tensors of 32-bit words."""
    sel = torch.as_tensor(sel, dtype=torch.int64)
    a, b, sel = torch.broadcast_tensors(a, b, sel)
    src = [(a >> (8 * i)) & 0xFF for i in range(4)] + [(b >> (8 * i)) & 0xFF for i in range(4)]
    out = torch.zeros_like(a)
    for n in range(4):
        nib = (sel >> (4 * n)) & 0xF
        byte = torch.zeros_like(a)
        for i in range(8):
            byte = torch.where((nib & 7) == i, src[i], byte)
        byte = torch.where((nib & 8) != 0, torch.where((byte & 0x80) != 0, 0xFF, 0), byte)
        out |= byte << (8 * n)
    return out


def _bf16_bits(v: torch.Tensor) -> torch.Tensor:
    """float32 -> bf16 (RNE, as the kernels' cvt.rn.bf16x2.f32) bits as int64."""
    return v.bfloat16().view(torch.int16).to(torch.int64) & 0xFFFF


def _if4_table(scale_bytes: torch.Tensor, fmt: str = "if4") -> torch.Tensor:
    """mxc_sm90.cuh `if4_table`, emulated: per scale byte c the four words {low bytes of magnitudes 0..3, of
    4..7, high bytes of 0..3, of 4..7} of bf16(F::elem(m, c) x F::scale(c)): the f32 operations of the
    format struct (codegen.format_struct), e2m1(m) in an FP block, float(m) x float32(6/7) in an INT one;
    NVINT4 (fmt): float(m) x the UE4M3 scale (bit 7 its sign, as the kernel's minifloat reads it)."""
    from mxc.numerics.elements import decode, decode_table
    from mxc.numerics.formats import E2M1, E4M3
    from mxc.numerics.quantize import IF4_INT_STEP

    c = scale_bytes.to(torch.int64).unsqueeze(-1)
    m = torch.arange(8)
    if fmt == "nvint4":
        s = decode(c.to(torch.uint8), E4M3)
        elem = m.float()
    else:
        s = decode((c & 0x7F).to(torch.uint8), E4M3)
        elem = torch.where((c & 0x80) != 0, m.float() * torch.tensor(IF4_INT_STEP, dtype=torch.float32),
                           decode_table(E2M1)[m])
    bits = _bf16_bits(elem * s)  # [..., 8]
    words = []
    for shift in (0, 8):
        for half in (0, 4):
            words.append(sum(((bits[..., half + i] >> shift) & 0xFF) << (8 * i) for i in range(4)))
    return torch.stack(words, -1)  # [..., 4]: x, y, z, w


def _dec_if4_emulated(frag: torch.Tensor, fs: torch.Tensor, r: int, k: int, fmt: str = "if4") -> torch.Tensor:
    """What frag_steps' IF4 branch puts in the A registers, as bf16 bits [r, k] (padding dropped): per tile,
    lane and step the word w of the fragment tile and the lane's scale bytes (rows g, g + 8) as dec reads
    them, the table rows of those bytes, and the kernel's shifts, masks and prmt."""
    rt, kt = -(-r // 16), -(-k // 64)
    words = frag.reshape(rt, kt, 32, 4, 4).to(torch.int64)  # [tile row, tile K, lane, step, byte]
    words = sum(words[..., i] << (8 * i) for i in range(4))  # [rt, kt, lane, step]
    sc = fs.reshape(rt, kt, 8, 4, 2).to(torch.int64)  # [g][block][row g / g + 8]
    lane = torch.arange(32)
    g, t = lane // 4, lane % 4
    scg, sch = sc[:, :, g, t, 0], sc[:, :, g, t, 1]  # [rt, kt, lane]: 16-blocks, block t
    tg, th = _if4_table(scg, fmt).unsqueeze(-2), _if4_table(sch, fmt).unsqueeze(-2)  # [rt, kt, lane, 1, 4]
    w = words
    z = w & 0x77777777
    zh = z >> 16
    lg = _prmt(tg[..., 0], tg[..., 1], z)
    hg = _prmt(tg[..., 2], tg[..., 3], z) ^ (w & 0x80808080)
    lh = _prmt(th[..., 0], th[..., 1], zh)
    hh = _prmt(th[..., 2], th[..., 3], zh) ^ ((w << 4) & 0x80808080)
    a = [_prmt(lg, hg, 0x5140), _prmt(lh, hh, 0x5140), _prmt(lg, hg, 0x7362), _prmt(lh, hh, 0x7362)]
    out = torch.zeros(rt * 16, kt * 64, dtype=torch.int64)
    s_idx = torch.arange(4)
    for j in range(4):
        for h in range(2):
            p = j + 4 * h  # code 8s + p: row g + 8 (p % 2), K 16t + 4s + 2 ((p % 4) // 2) + p // 4
            rows = (g + 8 * (p % 2)).view(32, 1)
            cols = (16 * t).view(32, 1) + 4 * s_idx.view(1, 4) + 2 * ((p % 4) // 2) + p // 4
            half = (a[j] >> (16 * h)) & 0xFFFF  # [rt, kt, lane, step]
            for i in range(rt):
                for q in range(kt):
                    out[16 * i + rows, 64 * q + cols] = half[i, q]
    return out[:r, :k]


def _if4_float_decode(codes: torch.Tensor, scales: torch.Tensor, k: int) -> torch.Tensor:
    """bf16 bits of what the float decode (frag_steps' generic branch, before this layout) gives: pack_bf16 of
    F::elem(code, scale byte) x F::scale(scale byte), from numerics' element values (QTensor.element_values:
    float(q) x float32(6/7) in INT blocks) and the UE4M3 scale value."""
    from mxc.numerics import get_format
    from mxc.numerics.elements import decode
    from mxc.numerics.formats import E4M3
    from mxc.numerics.quantize import QTensor

    fmt = get_format("if4")
    q = QTensor(fmt, codes, scales, torch.tensor(1.0), tuple(codes.shape), 1)
    s = decode(scales & 0x7F, E4M3)
    vals = q.element_values().unflatten(-1, (-1, 16)) * s.unsqueeze(-1)
    return _bf16_bits(vals.flatten(-2)[:, :k])


def _every_if4_code(rows: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """IF4 codes and scale bytes with every scale byte 0..255 (FP and INT flags, NaN 0x7F / 0xFF, zero 0x00 /
    0x80) and every code in each block: a block's 16 codes a permutation of 0..15 (INT blocks: -8 replaced by 0,
    numerics never writes -8)."""
    g = torch.Generator().manual_seed(seed)
    nb = 256 // rows
    scales = torch.randperm(256, generator=g).to(torch.uint8).reshape(rows, nb)
    codes = torch.stack([torch.randperm(16, generator=g) for _ in range(256)]).reshape(rows, nb, 16)
    is_int = (scales.to(torch.int64) & 0x80).unsqueeze(-1) != 0
    nan = (scales.to(torch.int64) & 0x7F).unsqueeze(-1) == 0x7F
    codes = torch.where(is_int & ~nan & (codes == 8), 0, codes)
    return codes.reshape(rows, nb * 16).to(torch.uint8), scales


@pytest.mark.parametrize("r, k", [(32, 128), (23, 100)])
def test_if4_table_decode_is_the_float_decode(r, k):
    """dec's IF4 decode (mxc_sm90.cuh frag_steps, IF4 branch), emulated on the packed fragments and the
    per-scale-byte table, gives bit for bit the bf16 values of the float decode, for every scale byte (both
    flags, zero and NaN scales included) and every code; odd shapes (rows and K padded) included."""
    codes, scales = _every_if4_code()
    codes, scales = codes[:r, :k], scales[:r, : -(-k // 16)].clone()
    scales[0, -1], scales[1, -1] = 0x7F, 0xFF  # NaN blocks (any codes), one of them partial when k % 16
    frag, fs = Fragments(if4=True).pack(codes, scales, "if4", k)
    got = _dec_if4_emulated(frag, fs, r, k)
    ref = _if4_float_decode(torch.nn.functional.pad(codes, (0, -(-k // 16) * 16 - k)), scales, k)
    nan_blocks = ((scales.to(torch.int64) & 0x7F) == 0x7F).repeat_interleave(16, 1)[:, :k]
    assert nan_blocks.any() and (scales >= 0x80).any() and (scales < 0x80).any()
    assert torch.equal(got, ref), f"{(got != ref).sum()} codes differ, e.g. at {(got != ref).nonzero()[:4].tolist()}"
    # the NaN blocks: the same NaN for every code (if4_sign_magnitude keeps their nibbles' low three bits)
    assert torch.equal(got[nan_blocks].unique(), ref[nan_blocks].unique()) and ref[nan_blocks].unique().numel() == 1


def test_if4_table_decode_of_quantized_weights():
    """The same emulation on numerics' own IF4 codes (mixed FP and INT blocks, a zero block, a NaN block,
    small values, K not a multiple of 16 or 64): bf16 bits equal, and the codes come back."""
    from mxc.numerics import quantize

    g = torch.Generator().manual_seed(5)
    w = torch.randn(37, 150, generator=g) * torch.exp(torch.randn(37, 1, generator=g))
    w[0, :40] = 0.0
    w[1, :16] *= 1e-6
    w[3, 20] = float("nan")
    q = quantize(w, "if4")
    assert (q.int_blocks()).any() and (~q.int_blocks()).any()
    assert ((q.scales & 0x7F) == 0x7F).sum() == 1
    frag, fs = Fragments(if4=True).pack(q.elements, q.scales, "if4", 150)
    assert torch.equal(_dec_if4_emulated(frag, fs, 37, 150), _if4_float_decode(q.elements, q.scales, 150))
    sm = unfrag_codes(frag, 37, q.elements.shape[1], 4, scatter="if4")
    assert torch.equal(if4_from_sign_magnitude(sm, unfrag_scales(fs, 37, 150, 16), 16), q.elements)


@pytest.mark.parametrize("group", [1, 8])
@pytest.mark.parametrize("r, k", [(16, 64), (40, 96), (1, 1), (33, 200), (140, 200)])
def test_if4_fragment_round_trip(r, k, group):
    """IF4 fragments (sign-magnitude codes, IF4_BITS), mixed INT / FP blocks, odd shapes, grouped (rdec) or not:
    frag then unfrag gives numerics' codes back (INT blocks two's complement again); NaN blocks come back
    with their nibbles' top bit cleared (every code of them is the same NaN)."""
    g = torch.Generator().manual_seed(r * k + group)
    kb = -(-k // 16)
    scales = torch.randint(0, 256, (r, kb), dtype=torch.int32, generator=g).to(torch.uint8)
    codes = torch.randint(0, 16, (r, kb * 16), dtype=torch.int32, generator=g).to(torch.uint8)
    per = scales.to(torch.int64).repeat_interleave(16, 1)
    is_int, nan = (per & 0x80) != 0, (per & 0x7F) == 0x7F
    codes = torch.where(is_int & ~nan & (codes == 8), 7, codes.to(torch.int64)).to(torch.uint8)
    lay = Fragments(if4=True, group=group)
    frag, fs = lay.pack(codes, scales, "if4", k)
    assert (frag.numel(), fs.numel()) == lay.sizes("if4", r, k)
    sm = unfrag_codes(frag, r, kb * 16, 4, scatter="if4", group=group)
    assert torch.equal(sm, if4_sign_magnitude(codes, scales, 16))
    back = if4_from_sign_magnitude(sm, unfrag_scales(fs, r, k, 16, group=group), 16)
    want = torch.where(nan, codes.to(torch.int64) & 7, codes.to(torch.int64)).to(torch.uint8)
    assert torch.equal(back, want)


def test_if4_sign_magnitude_codes():
    """INT blocks: q -> sign | |q| (two's complement 0xF = -1 -> 0x9, 0x9 = -7 -> 0xF), FP blocks as they are;
    -8 in an INT block has no sign-magnitude code (ValueError; numerics clamps q to [-7, 7])."""
    codes = torch.tensor([[0, 1, 7, 9, 15, 8] + [0] * 10] * 2, dtype=torch.uint8)
    scales = torch.tensor([[0x38], [0xB8]], dtype=torch.uint8)  # FP, INT (scale 1.0)
    codes[1, 5] = 0
    sm = if4_sign_magnitude(codes, scales, 16)
    assert sm[0, :6].tolist() == [0, 1, 7, 9, 15, 8]
    assert sm[1, :6].tolist() == [0, 1, 7, 15, 9, 0]
    assert torch.equal(if4_from_sign_magnitude(sm, scales, 16), codes)
    codes[1, 5] = 8
    with pytest.raises(ValueError, match="-8"):
        if4_sign_magnitude(codes, scales, 16)


# ---------------------------------------------------------------- NVINT4 (IF4's table decode, every block INT)
def _nvint4_float_decode(codes: torch.Tensor, scales: torch.Tensor, k: int) -> torch.Tensor:
    """bf16 bits of the float decode of NVINT4 (frag_steps' generic branch): pack_bf16 of F::elem x F::scale,
    float(q) (q the two's complement nibble) times the UE4M3 scale byte's value (bit 7 its sign, 0x7F / 0xFF
    NaN, as the kernel's minifloat and numerics' decode read it)."""
    from mxc.numerics.elements import decode
    from mxc.numerics.formats import E4M3

    q = codes.to(torch.int64)
    q = torch.where(q >= 8, q - 16, q).float()
    s = decode(scales, E4M3).repeat_interleave(16, 1)[:, : q.shape[1]]
    return _bf16_bits(q * s)[:, :k]


def _every_nvint4_code(rows: int = 32, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """NVINT4 codes and scale bytes with every scale byte 0..255 (negative 0x80.., zero 0x00 / 0x80, the
    smallest 0x01 = 2^-9 (its products stay bf16 normals), NaN 0x7F / 0xFF) and every code -7..7 in each
    block (a block's 16 codes a permutation of 0..15 with -8 replaced by 0)."""
    g = torch.Generator().manual_seed(seed)
    nb = 256 // rows
    scales = torch.randperm(256, generator=g).to(torch.uint8).reshape(rows, nb)
    codes = torch.stack([torch.randperm(16, generator=g) for _ in range(256)])
    codes = torch.where(codes == 8, 0, codes)
    return codes.reshape(rows, nb * 16).to(torch.uint8), scales


@pytest.mark.parametrize("r, k", [(32, 128), (23, 100)])
def test_nvint4_table_decode_is_the_float_decode(r, k):
    """dec's NVINT4 decode (frag_steps' TAB4 branch, IF4's table machinery with the table float(m) x scale),
    emulated on the packed fragments: the float decode's bf16 bits for every scale byte (negative, zero,
    tiny, NaN) and every code, odd shapes included; NaN blocks one NaN for every code."""
    codes, scales = _every_nvint4_code()
    codes, scales = codes[:r, :k], scales[:r, : -(-k // 16)].clone()
    scales[0, -1], scales[1, -1] = 0x7F, 0xFF
    frag, fs = Fragments(if4=True).pack(codes, scales, "nvint4", k)
    got = _dec_if4_emulated(frag, fs, r, k, "nvint4")
    ref = _nvint4_float_decode(torch.nn.functional.pad(codes, (0, -(-k // 16) * 16 - k)), scales, k)
    nan_blocks = ((scales.to(torch.int64) & 0x7F) == 0x7F).repeat_interleave(16, 1)[:, :k]
    assert nan_blocks.any() and (scales >= 0x80).any() and (scales == 1).any() | (r < 32)
    ok = ~nan_blocks
    assert torch.equal(got[ok], ref[ok]), f"{(got != ref)[ok].sum()} codes differ"
    assert got[nan_blocks].unique().numel() == 1 and ref[nan_blocks].unique().numel() == 1
    assert ((got[nan_blocks] & 0x7FFF) > 0x7F80).all()  # NaN (the GPU's NaN bits: the GPU test)


def test_nvint4_table_decode_of_quantized_weights():
    """On numerics' own NVINT4 codes (a zero block, tiny values, a NaN block, K not a multiple of 16 or 64):
    bf16 bits equal to the float decode's, and the two's complement codes come back."""
    from mxc.numerics import quantize

    g = torch.Generator().manual_seed(6)
    w = torch.randn(37, 150, generator=g) * torch.exp(torch.randn(37, 1, generator=g))
    w[0, :40] = 0.0
    w[1, :16] *= 1e-6
    w[3, 20] = float("nan")
    q = quantize(w, "nvint4")
    assert ((q.scales & 0x7F) == 0x7F).sum() == 1 and (q.elements == 8).sum() == 0
    frag, fs = Fragments(if4=True).pack(q.elements, q.scales, "nvint4", 150)
    got = _dec_if4_emulated(frag, fs, 37, 150, "nvint4")
    ref = _nvint4_float_decode(q.elements, q.scales, 150)
    nan_blocks = ((q.scales.to(torch.int64) & 0x7F) == 0x7F).repeat_interleave(16, 1)[:, :150]
    assert torch.equal(got[~nan_blocks], ref[~nan_blocks]) and got[nan_blocks].unique().numel() == 1
    kp = q.elements.shape[1]
    sm = unfrag_codes(frag, 37, kp, 4, scatter="if4")
    back = if4_from_sign_magnitude(sm, unfrag_scales(fs, 37, 150, 16), 16, all_int=True)
    nan_kp = ((q.scales.to(torch.int64) & 0x7F) == 0x7F).repeat_interleave(16, 1)[:, :kp]
    assert torch.equal(back, torch.where(nan_kp, q.elements & 7, q.elements))


@pytest.mark.parametrize("group", [1, 8])
@pytest.mark.parametrize("r, k", [(16, 64), (1, 1), (33, 200), (140, 200)])
def test_nvint4_fragment_round_trip(r, k, group):
    """NVINT4 fragments (sign-magnitude, IF4_BITS) round trip on odd shapes, grouped or not; the code -8 (never
    written by numerics) is refused, naming the weight."""
    g = torch.Generator().manual_seed(r * k + group + 7)
    kb = -(-k // 16)
    scales = torch.randint(0, 256, (r, kb), dtype=torch.int32, generator=g).to(torch.uint8)
    codes = torch.randint(0, 16, (r, kb * 16), dtype=torch.int32, generator=g).to(torch.uint8)
    codes = torch.where(codes == 8, 9, codes)
    nan = ((scales.to(torch.int64) & 0x7F) == 0x7F).repeat_interleave(16, 1)
    lay = Fragments(if4=True, group=group)
    frag, fs = lay.pack(codes, scales, "nvint4", k)
    assert (frag.numel(), fs.numel()) == lay.sizes("nvint4", r, k)
    sm = unfrag_codes(frag, r, kb * 16, 4, scatter="if4", group=group)
    back = if4_from_sign_magnitude(sm, unfrag_scales(fs, r, k, 16, group=group), 16, all_int=True)
    assert torch.equal(back, torch.where(nan, codes & 7, codes))
    bad = codes.clone()
    bad[0, 0], scales[0, 0] = 8, 0x38
    with pytest.raises(ValueError, match=r"NVINT4 code -8 \(weight \[0, 0\]\)"):
        lay.pack(bad, scales, "nvint4", k)


def test_if4_bits_are_a_permutation_the_decode_reads():
    """IF4_BITS puts the 32 bits of a step's eight codes on 32 distinct positions: row g's magnitudes (registers
    0, 2) in nibbles 0..3 and row g + 8's (1, 3) in nibbles 4..7 (bits 0..2), the signs on the nibbles' top
    bits so that `w & 0x80808080` and `(w << 4) & 0x80808080` put them on the high bytes' bit 7 (byte n: the
    code whose magnitude is nibble n of the row's selector); register j's halves are bytes (0, 1) or (2, 3)."""
    pos = [b for j in range(4) for h in range(2) for b in IF4_BITS[j][h]]
    assert sorted(pos) == list(range(32))
    for j in range(4):
        for h in range(2):
            mag, sign = IF4_BITS[j][h][:3], IF4_BITS[j][h][3]
            nib = 2 * (j // 2) + h + 4 * (j % 2)  # nibble of the word: row g 0..3, row g + 8 4..7
            assert mag == (4 * nib, 4 * nib + 1, 4 * nib + 2), (j, h)
            byte = nib % 4  # byte of the row's selected lows / highs (prmt 0x5140: bytes 0, 1; 0x7362: 2, 3)
            assert byte == 2 * (j // 2) + h
            assert sign + (4 if j % 2 else 0) == 8 * byte + 7, (j, h)


# ---------------------------------------------------------------- FP6 (E2M3, E3M2): the integer decode
from mxc.kernels.layouts import fp6_bits, fp6_layout  # noqa: E402

FP6_FORMATS = ("mxfp6_e2m3", "mxfp6_e3m2")


def _bf16_mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """bf16x2 multiply (HMUL2.BF16, RNE, subnormals kept) of int64 bit pairs: the product of two bf16 values
    is exact in float32 (<= 16 significant bits; here never below float32's subnormal range), so float32's
    multiply then RNE to bf16 is the kernel's rounding."""
    out = torch.zeros_like(a)
    for h in (0, 16):
        x = ((((a >> h) & 0xFFFF) << 16).to(torch.int32)).view(torch.float32)
        y = ((((b >> h) & 0xFFFF) << 16).to(torch.int32)).view(torch.float32)
        out |= _bf16_bits(x * y) << h
    return out


def _fp6_reg(w: list, e: int, k: int) -> torch.Tensor:
    """mxc_sm90.cuh `fp6_reg<E, K>`, line for line (its own arithmetic, not fp6_layout's table)."""
    mag, sgn = (0x1F << e) * 0x10001, 0x80008000
    if k == 15:
        return w[5] & (mag | sgn)
    word, f = divmod(k, 3)
    ms = e - 5 * f
    idx = 2 * (k // 3) + (f == 2)
    q = 15 if f == 1 else (idx if idx < e else idx + 5)
    sw = word if f == 1 else 5
    x = ((w[word] << ms) if ms >= 0 else (w[word] >> -ms)) & 0xFFFFFFFF
    y = (w[sw] << (15 - q)) & 0xFFFFFFFF
    return (x & mag) | (y & sgn)


def _dec_fp6_emulated(frag: torch.Tensor, fs: torch.Tensor, r: int, k: int, fmt: str) -> torch.Tensor:
    """What frag_steps' FP6 branch puts in the A registers, as bf16 bits [r, k] (padding dropped): per tile and
    lane its 6 words and scale bytes (rows g, g + 8 of block t / 2) as dec reads them, fp6_reg, the lut's factor
    2^(c - bias) (dec_factor) and, where bf16 cannot hold it (the warp's `two`), 2^(127 - bias) then the scale."""
    from mxc.numerics.formats import get_format

    el = get_format(fmt).element
    e, bias = 7 - el.mbits, el.bias
    rt, kt = -(-r // 16), -(-k // 64)
    b = frag.reshape(rt, kt, 32, 6, 4).to(torch.int64)
    w = [sum(b[..., i, j] << (8 * j) for j in range(4)) for i in range(6)]  # [rt, kt, lane] each
    sc = fs.reshape(rt, kt, 8, 2, 2).to(torch.int64)  # [g][block][row g / g + 8]
    lane = torch.arange(32)
    g, t = lane // 4, lane % 4
    scr = [sc[:, :, g, t // 2, 0], sc[:, :, g, t // 2, 1]]  # [rt, kt, lane]
    fb, f2 = [], []
    for c in scr:
        fits = c <= bias + 127
        fb.append(torch.where(fits, ((c - bias + 127) << 7) * 0x10001, ((254 - bias) << 7) * 0x10001))
        s = torch.where(c == 0xFF, torch.tensor(float("nan")),
                        torch.where(c == 0, torch.tensor(2.0 ** -127), torch.exp2((c - 127).double()))).float()
        sb = _bf16_bits(s)
        f2.append(torch.where(fits, 0x3F80, sb) * 0x10001)
    out = torch.zeros(rt * 16, kt * 64, dtype=torch.int64)
    for st in range(4):
        for j in range(4):
            a = _fp6_reg(w, e, 4 * st + j)
            a = _bf16_mul(_bf16_mul(a, fb[j & 1]), f2[j & 1])  # x 1.0 where the factor fits: the same bits
            for h in range(2):
                p = j + 4 * h
                rows = (g + 8 * (p % 2)).view(32)
                cols = (16 * t + 4 * st + 2 * ((p % 4) // 2) + p // 4).view(32)
                half = (a >> (16 * h)) & 0xFFFF
                for i in range(rt):
                    for q in range(kt):
                        out[16 * i + rows, 64 * q + cols] = half[i, q]
    return out[:r, :k]


def _fp6_float_decode(codes: torch.Tensor, scales: torch.Tensor, k: int, fmt: str) -> torch.Tensor:
    """bf16 bits of the float decode (frag_steps' generic branch before this layout): pack_bf16 (RNE) of
    F::elem(code) x F::scale(c) in float32, E8M0 scale 2^(c - 127), 0x00 2^-127 (a float32 subnormal), 0xFF NaN."""
    from mxc.numerics.elements import decode_table
    from mxc.numerics.formats import get_format

    el = decode_table(get_format(fmt).element)[codes.to(torch.int64)]
    c = scales.to(torch.int64).repeat_interleave(32, 1)[:, :k]
    s = torch.where(c == 0xFF, torch.tensor(float("nan")),
                    torch.where(c == 0, torch.tensor(2.0 ** -127), torch.exp2((c - 127).double()))).float()
    return _bf16_bits(el[:, :k] * s)


def _every_fp6_code(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes [256, 64] and scales [256, 2]: row c holds scale byte c in both blocks and the 64 codes (a
    permutation), so every (scale byte, code) pair is decoded once."""
    g = torch.Generator().manual_seed(seed)
    codes = torch.stack([torch.randperm(64, generator=g) for _ in range(256)]).to(torch.uint8)
    scales = torch.arange(256).unsqueeze(1).repeat(1, 2).to(torch.uint8)
    return codes, scales


def _same_bits(got: torch.Tensor, want: torch.Tensor) -> None:
    nan_g = ((got & 0x7F80) == 0x7F80) & ((got & 0x7F) != 0)
    nan_w = ((want & 0x7F80) == 0x7F80) & ((want & 0x7F) != 0)
    assert torch.equal(nan_g, nan_w)
    differ = (got != want) & ~nan_w
    assert not differ.any(), (f"{differ.sum().item()} codes differ, e.g. {got[differ][:4].tolist()} vs "
                              f"{want[differ][:4].tolist()}")


@pytest.mark.parametrize("fmt", FP6_FORMATS)
def test_fp6_integer_decode_is_the_float_decode(fmt):
    """The FP6 integer decode (fp6_reg, dec_factor's 2^(c - bias), the `two` fallback), emulated on the FP6
    fragments, equals the float decode's bf16 bits at every scale byte (0x00: 2^-127, products down to bf16
    subnormals; past bf16's range: inf; 0xFF: NaN) and every code (-0, subnormal codes, the maximum)."""
    codes, scales = _every_fp6_code()
    lay = Fragments(fp6=True)
    frag, fs = lay.pack(codes, scales, fmt, 64)
    got = _dec_fp6_emulated(frag, fs, 256, 64, fmt)
    want = _fp6_float_decode(codes, scales, 64, fmt)
    assert (want == 0x8000).any() and ((want & 0x7F80) == 0).any() and (want == 0x7F80).any()  # -0, subnormal, inf
    _same_bits(got, want)


@pytest.mark.parametrize("fmt", FP6_FORMATS)
def test_fp6_integer_decode_of_quantized_weights(fmt):
    """numerics' own FP6 codes and scales (odd shape: a partial fragment tile and block), decoded as the kernel
    does, are the float decode's bits."""
    from mxc.numerics.quantize import quantize

    g = torch.Generator().manual_seed(3)
    w = torch.randn(37, 150, generator=g) * torch.logspace(-30, 30, 37).unsqueeze(1)
    q = quantize(w, fmt)
    frag, fs = Fragments(fp6=True).pack(q.elements, q.scales, fmt, 150)
    got = _dec_fp6_emulated(frag, fs, 37, 150, fmt)
    _same_bits(got, _fp6_float_decode(q.elements, q.scales, 150, fmt))


@pytest.mark.parametrize("fmt", FP6_FORMATS)
@pytest.mark.parametrize("group", [1, 8])
@pytest.mark.parametrize("r, k", [(16, 64), (40, 96), (1, 1), (33, 200), (140, 200)])
def test_fp6_fragment_round_trip(fmt, r, k, group):
    """FP6 fragments (fp6_bits), odd shapes, grouped (rdec) or not: frag then unfrag gives the codes back,
    24 bytes per lane and tile as the plain 6-bit fragments."""
    from mxc.numerics.formats import get_format

    g = torch.Generator().manual_seed(r * k + group)
    codes = torch.randint(0, 64, (r, k), dtype=torch.int32, generator=g).to(torch.uint8)
    scales = torch.randint(0, 256, (r, -(-k // 32)), dtype=torch.int32, generator=g).to(torch.uint8)
    lay = Fragments(fp6=True, group=group)
    frag, fs = lay.pack(codes, scales, fmt, k)
    assert (frag.numel(), fs.numel()) == lay.sizes(fmt, r, k) == Fragments(group=group).sizes(fmt, r, k)
    kind = f"fp6m{get_format(fmt).element.mbits}"
    assert torch.equal(unfrag_codes(frag, r, k, 6, scatter=kind, group=group), codes)
    assert torch.equal(unfrag_scales(fs, r, k, 32, group=group), scales)


@pytest.mark.parametrize("e", [4, 5])
def test_fp6_bits_are_a_permutation_the_decode_reads(e):
    """fp6_bits puts a lane's 32 codes x 6 bits on its 192 bits once each; every register's magnitude field is
    5 consecutive bits of one word (high code 16 above), its sign pair (q, q + 16) of one word with q <= 15;
    register 15 sits where `w5 & C` reads it, the field-1 registers' signs at their word's bits 15 / 31."""
    pos = fp6_bits(e)
    assert sorted(x for r in pos for h in r for x in h) == list(range(192))
    for k, ((mw, fb), ms, sw, q, ss) in enumerate(fp6_layout(e)):
        for h in range(2):
            assert pos[k][h][:5] == [32 * mw + fb + 16 * h + b for b in range(5)]
            assert pos[k][h][5] == 32 * sw + q + 16 * h
        assert fb + ms == e and q + ss == 15 and 0 <= q <= 15 and fb + 4 < 16
    assert fp6_layout(e)[15] == ((5, e), 0, 5, 15, 0)


def test_fp6_layout_recipe():
    """A WeightStore recipe keeps the FP6 layout (and the old recipes read as before)."""
    from mxc.kernels.operands import layout_of, layout_recipe

    for lay in (Fragments(fp6=True), Fragments(fp6=True, group=8), Fragments(e2m1=True), Fragments(if4=True)):
        assert layout_of(layout_recipe(lay)) == lay
    assert Fragments(fp6=True).suffix != Fragments().suffix


# ---------------------------------------------------------------- MXINT8's fragments (dec's integer decode)
from mxc.kernels.layouts import int8_from_sign_magnitude, int8_sign_magnitude  # noqa: E402


def _bf16_value(bits: torch.Tensor) -> torch.Tensor:
    """bf16 bits (int64, low 16) -> their values as float64."""
    return (bits.to(torch.int32) << 16).view(torch.float32).double()


def _e8m0_f32(c: torch.Tensor) -> torch.Tensor:
    """mxc::e8m0 as float32: 2^(c - 127), 0x00 2^-127 (a float32 subnormal), 0xFF NaN."""
    return torch.where(c == 0xFF, torch.tensor(float("nan")),
                       torch.where(c == 0, torch.tensor(2.0 ** -127), torch.exp2((c - 127).double()))).float()


def _int8_float_decode(codes: torch.Tensor, scales: torch.Tensor, k: int) -> torch.Tensor:
    """bf16 bits of MXINT8's float decode (frag_steps' generic branch): pack_bf16 of float(q) x 2^-6 x the
    E8M0 scale in float32 (q two's complement; 0x80 = -128 included)."""
    q = codes.to(torch.int64)
    el = torch.where(q >= 0x80, q - 0x100, q).float() * 2.0 ** -6
    s = _e8m0_f32(scales.to(torch.int64).repeat_interleave(32, 1)[:, : q.shape[1]])
    return _bf16_bits(el * s)[:, :k]


def _dec_int8_emulated(frag: torch.Tensor, fs: torch.Tensor, r: int, k: int) -> torch.Tensor:
    """What frag_steps' I8 branch puts in the A registers, as bf16 bits [r, k] (padding dropped): per tile, lane
    and step the two words of its 8 sign-magnitude bytes, register j = prmt(w0, w1, j * 0x11 | (4 + j) *
    0x1100), the lut's int8_factors {2^(c-133), -2^(c-126)} (7 <= c <= 253), (0x4300 | m) x f + add (exact: its
    value is representable, so the FMA's single rounding is exact; emulated in float64), the signs ORed in;
    a warp with any lane's scale byte outside 7..253 takes the float decode of its codes for that tile."""
    rt, kt = -(-r // 16), -(-k // 64)
    b = frag.reshape(rt, kt, 32, 8, 4).to(torch.int64)
    w = [sum(b[..., i, j] << (8 * j) for j in range(4)) for i in range(8)]  # [rt, kt, lane] each
    sc = fs.reshape(rt, kt, 8, 2, 2).to(torch.int64)
    lane = torch.arange(32)
    g, t = lane // 4, lane % 4
    scr = [sc[:, :, g, t // 2, 0], sc[:, :, g, t // 2, 1]]  # [rt, kt, lane]
    ok = [(c >= 7) & (c <= 253) for c in scr]
    flt = ~(ok[0] & ok[1]).all(-1, keepdim=True)  # [rt, kt, 1]: the warp's __any_sync
    mul = [torch.where(o, ((c - 6) << 7), 0) for c, o in zip(scr, ok)]
    add = [torch.where(o, 0x8000 | ((c + 1) << 7), 0) for c, o in zip(scr, ok)]
    sf = [_e8m0_f32(c) for c in scr]
    out = torch.zeros(rt * 16, kt * 64, dtype=torch.int64)
    for st in range(4):
        for j in range(4):
            h = _prmt(w[2 * st], w[2 * st + 1], j * 0x11 | (4 + j) * 0x1100)
            for hh in range(2):
                half = (h >> (16 * hh)) & 0xFFFF
                x = (half & 0x7F) | 0x4300
                fast = _bf16_bits((_bf16_value(x) * _bf16_value(mul[j & 1]) + _bf16_value(add[j & 1])).float())
                fast = fast | (half & 0x8000)
                byte = half & 0xFF  # the float decode of the same byte (sign-magnitude -> q)
                q = torch.where((byte & 0x80) != 0, -(byte & 0x7F), byte)
                slow = _bf16_bits((q.float() * 2.0 ** -6) * sf[j & 1])
                a = torch.where(flt, slow, fast)
                p = j + 4 * hh
                rows = (g + 8 * (p % 2)).view(32)
                cols = (16 * t + 4 * st + 2 * ((p % 4) // 2) + p // 4).view(32)
                for i in range(rt):
                    for qq in range(kt):
                        out[16 * i + rows, 64 * qq + cols] = a[i, qq]
    return out[:r, :k]


def _every_int8_code(rows: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """MXINT8 codes [rows, 256 x 32 x 2 / rows] and E8M0 scale bytes: every scale byte 0..255 in two blocks whose
    64 codes are together every code -127..127 but -128 (0x80, which numerics never writes) and 0 twice
    (a permutation of 0..255 with 0x80 replaced by 0)."""
    g = torch.Generator().manual_seed(3)
    blocks = []
    scales = []
    for c in torch.randperm(256, generator=g).tolist():
        perm = torch.randperm(256, generator=g)
        perm = torch.where(perm == 0x80, 0, perm)
        # 256 codes over 8 blocks of 32: this scale byte in 8 blocks, so every (scale, code) pair occurs
        blocks.append(perm.reshape(8, 32))
        scales += [c] * 8
    codes = torch.cat(blocks).reshape(rows, -1).to(torch.uint8)
    return codes, torch.tensor(scales, dtype=torch.uint8).reshape(rows, -1)


@pytest.mark.parametrize("r, k", [(16, 4096), (23, 100)])
def test_int8_integer_decode_is_the_float_decode(r, k):
    """dec's MXINT8 decode (frag_steps' I8 branch), emulated on the packed fragments: the float decode's bf16
    bits for every scale byte (0x00's 2^-127 and the small bytes whose products are bf16 subnormals, 254
    whose -128 x 2^-6 x 2^127 would overflow, the NaN 0xFF) and every code -127..127, odd shapes included; a
    whole tile of the fast path alone checked too (every lane's bytes in 7..253)."""
    codes, scales = _every_int8_code(16 if r == 16 else 32)
    if r != 16:
        codes, scales = codes[:r, :k].contiguous(), scales[:r, : -(-k // 32)].contiguous()
    frag, fs = Fragments(int8=True).pack(codes, scales, "mxint8", k)
    got = _dec_int8_emulated(frag, fs, r, k)
    ref = _int8_float_decode(torch.nn.functional.pad(codes, (0, -(-k // 32) * 32 - k)), scales, k)
    nan = (scales.to(torch.int64) == 0xFF).repeat_interleave(32, 1)[:, :k]
    assert torch.equal(got[~nan], ref[~nan]), f"{(got != ref)[~nan].sum()} codes differ"
    assert (((got[nan] & 0x7FFF) > 0x7F80)).all() and (((ref[nan] & 0x7FFF) > 0x7F80)).all()
    if r == 16:
        sub = ((ref & 0x7F80) == 0) & ((ref & 0x7F) != 0)
        assert sub.any()  # bf16 subnormal products (scale bytes < 7) are among them
    # the fast path alone: scales 7..253 only, every code
    s2 = torch.where((scales < 7) | (scales > 253), 127, scales.to(torch.int64)).to(torch.uint8)
    frag, fs = Fragments(int8=True).pack(codes, s2, "mxint8", k)
    assert torch.equal(_dec_int8_emulated(frag, fs, r, k),
                       _int8_float_decode(torch.nn.functional.pad(codes, (0, -(-k // 32) * 32 - k)), s2, k))


def test_int8_decode_of_quantized_weights():
    """On numerics' own MXINT8 codes (a zero block, tiny values, a NaN block, K not a multiple of 32 or 64):
    bf16 bits equal to the float decode's, and the codes come back."""
    from mxc.numerics import quantize

    g = torch.Generator().manual_seed(9)
    w = torch.randn(37, 150, generator=g) * torch.exp(3 * torch.randn(37, 1, generator=g))
    w[0, :40] = 0.0
    w[1, :32] *= 1e-30
    w[3, 20] = float("nan")
    q = quantize(w, "mxint8")
    assert (q.scales == 0xFF).sum() == 1 and (q.elements == 0x80).sum() == 0
    frag, fs = Fragments(int8=True).pack(q.elements, q.scales, "mxint8", 150)
    got = _dec_int8_emulated(frag, fs, 37, 150)
    ref = _int8_float_decode(q.elements, q.scales, 150)
    nan = (q.scales.to(torch.int64) == 0xFF).repeat_interleave(32, 1)[:, :150]
    assert torch.equal(got[~nan], ref[~nan])
    kp = q.elements.shape[1]
    back = int8_from_sign_magnitude(unfrag_codes(frag, 37, kp, 8))
    assert torch.equal(back, q.elements)


@pytest.mark.parametrize("group", [1, 8])
@pytest.mark.parametrize("r, k", [(16, 64), (1, 1), (33, 200), (140, 200)])
def test_int8_fragment_round_trip(r, k, group):
    """MXINT8 fragments (sign-magnitude bytes) round trip on odd shapes, grouped or not; the code -128 (0x80,
    never written by numerics) is refused, naming the weight."""
    from mxc.kernels.operands import layout_of, layout_recipe

    g = torch.Generator().manual_seed(r * k + group + 11)
    kb = -(-k // 32)
    scales = torch.randint(0, 256, (r, kb), dtype=torch.int32, generator=g).to(torch.uint8)
    codes = torch.randint(0, 256, (r, kb * 32), dtype=torch.int32, generator=g).to(torch.uint8)
    codes = torch.where(codes == 0x80, 0x81, codes)
    lay = Fragments(int8=True, group=group)
    assert lay.suffix == "f16x64m" + (f"g{group}" if group > 1 else "")
    assert layout_of(layout_recipe(lay)) == lay
    frag, fs = lay.pack(codes, scales, "mxint8", k)
    assert (frag.numel(), fs.numel()) == lay.sizes("mxint8", r, k)
    sm = unfrag_codes(frag, r, kb * 32, 8, group=group)
    assert torch.equal(sm, int8_sign_magnitude(codes))
    assert torch.equal(int8_from_sign_magnitude(sm), codes)
    bad = codes.clone()
    bad[0, 0] = 0x80
    with pytest.raises(ValueError, match=r"MXINT8 code -128 \(0x80, weight \[0, 0\]"):
        lay.pack(bad, scales, "mxint8", k)

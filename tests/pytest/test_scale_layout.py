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

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

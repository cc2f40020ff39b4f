"""Block-scale layouts for Blackwell's block-scaled `tcgen05.mma` (groundwork for the cuda-sm100 target).

The tensor cores read a 128-row operand's scales from tensor memory, copied
there by `tcgen05.cp ... 32x128b.warpx4` in 512-byte chunks: 128 rows x 4 scale
columns, row `32*a + b` of the chunk's 128 at byte `16*b + 4*a` (plus the
column). The scale matrix [M, K/bs] is padded to multiples of (128, 4) and
stored chunk by chunk, K chunks fastest: `reshape(M/128, 4, 32, C/4, 4)
.permute(0, 3, 2, 1, 4)` (DESIGN.md §4; cuBLAS's and Triton's layout).
"""

from __future__ import annotations

import torch

ROWS, COLS, CHUNK = 128, 4, 512


def padded_shape(m: int, c: int) -> tuple[int, int]:
    """[M, C] scales padded to multiples of (128, 4)."""
    return -(-m // ROWS) * ROWS, -(-c // COLS) * COLS


def swizzle_128x4(scales: torch.Tensor, pad: int = 0) -> torch.Tensor:
    """uint8 scales [M, C] -> the 128x4-interleaved bytes, shape [Mp/128, Cp/4, 512]; padding = `pad`."""
    if scales.dim() != 2 or scales.dtype != torch.uint8:
        raise ValueError(f"scales must be a 2-D uint8 tensor [M, K/bs], got {tuple(scales.shape)} {scales.dtype}")
    m, c = scales.shape
    mp, cp = padded_shape(m, c)
    full = torch.full((mp, cp), pad, dtype=torch.uint8)
    full[:m, :c] = scales
    return full.reshape(mp // ROWS, 4, 32, cp // COLS, COLS).permute(0, 3, 2, 1, 4).reshape(
        mp // ROWS, cp // COLS, CHUNK).contiguous()


def unswizzle_128x4(swizzled: torch.Tensor, m: int, c: int) -> torch.Tensor:
    """The inverse of swizzle_128x4: [M, C] uint8 scales, padding dropped."""
    mp, cp = padded_shape(m, c)
    if tuple(swizzled.shape) != (mp // ROWS, cp // COLS, CHUNK):
        raise ValueError(f"expected swizzled scales of shape {(mp // ROWS, cp // COLS, CHUNK)} for [{m}, {c}], "
                         f"got {tuple(swizzled.shape)}")
    full = swizzled.reshape(mp // ROWS, cp // COLS, 32, 4, COLS).permute(0, 3, 2, 1, 4).reshape(mp, cp)
    return full[:m, :c].contiguous()


def offset_128x4(row: int, col: int, c: int) -> int:
    """Byte offset of scale (row, col) of a [*, c] matrix in the swizzled layout (what a kernel computes)."""
    cp = padded_shape(1, c)[1]
    chunk = (row // ROWS) * (cp // COLS) + col // COLS
    return chunk * CHUNK + (row % 32) * 16 + ((row % ROWS) // 32) * 4 + col % COLS

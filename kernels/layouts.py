"""Block-scale layouts for Blackwell's block-scaled `tcgen05.mma` (groundwork for the cuda-sm100 target).

The tensor cores read a 128-row operand's scales from tensor memory, copied
there by `tcgen05.cp ... 32x128b.warpx4` in 512-byte chunks: 128 rows x 4 scale
columns, row `32*a + b` of the chunk's 128 at byte `16*b + 4*a` (plus the
column). The scale matrix [M, K/bs] is padded to multiples of (128, 4) and
stored chunk by chunk, K chunks fastest: `reshape(M/128, 4, 32, C/4, 4)
.permute(0, 3, 2, 1, 4)` (the layout `tcgen05.cp` reads; cuBLAS's and Triton's layout).
"""

from __future__ import annotations

import functools

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


# ---------------------------------------------------------------- operand tiles (the block-scaled GEMM's layout)
# An operand [R, K] is stored as tiles of 128 rows x 128 K-elements, tile (rt, kt) at
# ((rt * KT) + kt) * tile_bytes: what one bulk copy (cp.async.bulk, the TMA engine without a
# tensor map) moves into shared memory, where the MMA reads it through a no-swizzle K-major
# matrix descriptor. Inside a tile: 16-byte units, UE elements each; unit u of row r at
# ((r // 8) * units + u) * 128 + (r % 8) * 16 (core matrices of 8 rows x 16 bytes, the K-adjacent
# ones 128 bytes apart: LBO = 128, SBO = units * 128). A unit's codes are packed as
# numerics packs them (4-bit low nibble first, 6-bit four per three bytes), zero-padded to 16
# bytes: UE = 16 for FP8 / FP6 / FP4-in-mxf8f6f4 (the "unpacked" 16-per-16-byte smem form of
# kind::mxf8f6f4), 32 for packed FP4 (kind::mxf4, kind::mxf4nvf4), 8 for bf16.
TILE_R, TILE_K = 128, 128


def tile_units(ue: int) -> int:
    return TILE_K // ue


def tile_bytes(ue: int) -> int:
    return TILE_R * tile_units(ue) * 16


def _pack_unit(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """codes [..., UE] -> [..., 16] bytes (packed little-endian, zero padding)."""
    from mxc.numerics.quantize import pack_fp6, pack_nibbles

    packed = {4: pack_nibbles, 6: pack_fp6, 8: lambda c: c}[bits](codes)
    pad = 16 - packed.shape[-1]
    return torch.nn.functional.pad(packed, (0, pad)) if pad else packed


def _unpack_unit(units: torch.Tensor, bits: int, ue: int) -> torch.Tensor:
    from mxc.numerics.quantize import unpack_fp6, unpack_nibbles

    data = units[..., : ue * bits // 8]
    return {4: unpack_nibbles, 6: unpack_fp6, 8: lambda c: c}[bits](data)


def tile_codes(codes: torch.Tensor, bits: int, ue: int) -> torch.Tensor:
    """Element codes [R, K] (uint8, one per element) -> tiled bytes, rows and K zero-padded to 128."""
    if codes.dim() != 2 or codes.dtype != torch.uint8:
        raise ValueError(f"codes must be a 2-D uint8 tensor, got {tuple(codes.shape)} {codes.dtype}")
    if 16 * 8 // bits < ue and bits != 16:
        raise ValueError(f"{ue} {bits}-bit codes do not fit a 16-byte unit")
    r, k = codes.shape
    rp, kp = -(-r // TILE_R) * TILE_R, -(-k // TILE_K) * TILE_K
    full = torch.zeros((rp, kp), dtype=torch.uint8)
    full[:r, :k] = codes
    units = tile_units(ue)
    t = full.reshape(rp // TILE_R, 16, 8, kp // TILE_K, units, ue)
    t = _pack_unit(t, bits)  # [Rt, 16 groups, 8 rows, KT, units, 16]
    return t.permute(0, 3, 1, 4, 2, 5).contiguous().reshape(-1)


def untile_codes(tiled: torch.Tensor, r: int, k: int, bits: int, ue: int) -> torch.Tensor:
    """The inverse of tile_codes: [R, K] codes, padding dropped."""
    rp, kp = -(-r // TILE_R) * TILE_R, -(-k // TILE_K) * TILE_K
    units = tile_units(ue)
    if tiled.numel() != rp * kp * 16 // ue:
        raise ValueError(f"expected {rp * kp * 16 // ue} tiled bytes for [{r}, {k}] in units of {ue}, "
                         f"got {tiled.numel()}")
    t = tiled.reshape(rp // TILE_R, kp // TILE_K, 16, units, 8, 16).permute(0, 2, 4, 1, 3, 5)
    codes = _unpack_unit(t, bits, ue).reshape(rp, kp)
    return codes[:r, :k].contiguous()


def tile_offset(row: int, k: int, k_total: int, ue: int) -> tuple[int, int]:
    """(byte offset of the 16-byte unit holding element (row, k), index of the element in it)."""
    kt_n = -(-k_total // TILE_K)
    units = tile_units(ue)
    tile = (row // TILE_R) * kt_n + k // TILE_K
    r, kk = row % TILE_R, k % TILE_K
    return tile * tile_bytes(ue) + ((r // 8) * units + kk // ue) * 128 + (r % 8) * 16, kk % ue


def tile_scales(scales: torch.Tensor, k: int, block: int, pad: int) -> torch.Tensor:
    """Scale codes [R, ceil(K/bs)] -> 128x4 chunks covering K padded to 128 (padding = `pad`)."""
    kp = -(-k // TILE_K) * TILE_K
    cols = kp // block
    r = scales.shape[0]
    full = torch.full((r, cols), pad, dtype=torch.uint8)
    full[:, : scales.shape[1]] = scales[:, :cols]
    return swizzle_128x4(full, pad).reshape(-1)


# ---------------------------------------------------------------- fragment tiles (the dec kernel's layout)
# The decode-shape kernel (`dec`, mxc_sm90.cuh) feeds weights to `mma.sync m16n8k16` as the A
# operand (16 rows of N x 16 of K) straight from registers. Its weights are stored as tiles of 16
# rows x 64 K-elements, tile (rt, kt) at ((rt * KT) + kt) * tile bytes; in a tile, lane L (g = L // 4,
# t = L % 4) finds its 32 codes contiguous at L * 32 * bits / 8: rows g and g + 8, K 16t .. 16t + 15,
# packed as numerics packs codes (4-bit low nibble first, 6-bit four per three bytes), in the order
# the A fragments take them: code 8s + p is MMA step s's register p % 4, half p // 4, i.e. row
# g + 8 * (p % 2), K 16t + 4s + 2 * ((p % 4) // 2) + p // 4. The K order inside a tile is thereby
# permuted (step s multiplies K 16t + 4s .. + 3 of every lane t), the same for the activations, so a
# lane reads its activations as 16 consecutive values and its weights' block is t (16-blocks) or
# t // 2 (32-blocks) in every step. Scales: per tile [8 (g)][64 / bs (block)][2 (rows g, g + 8)].
FRAG_R, FRAG_K = 16, 64
# The E2M1 variant (`scatter`): a step's eight 4-bit codes fill one 32-bit word bit by bit, code
# (register j, half h)'s bits (magnitude 0, 1, 2, sign) at E2M1_BITS[j][h], so that the decode to bf16
# bits (magnitude at 6..8 / 22..24, sign at 15 / 31) takes 9 integer operations per word (mxc_sm90.cuh,
# `e2m1_bits`; M = 0x81C081C0): `(w & 0x80C080C0) | ((w << 8) & 0x01000100)`, `(w << 4) & M`,
# `rotl(w, 10) & M`, `rotl(w, 14) & M`. Seven of them run on the integer ALU; the two left shifts may run
# as multiplies on the FMA pipe (IMAD.SHL), beside the bf16 multiplies. Among the layouts whose registers each
# take one or two shifted or rotated copies of the word, a search found none with fewer operations, and none
# with 9 and fewer on the ALU.
E2M1_BITS = (((6, 7, 0, 15), (22, 23, 16, 31)), ((2, 3, 4, 11), (18, 19, 20, 27)),
             ((28, 29, 30, 5), (12, 13, 14, 21)), ((24, 25, 26, 1), (8, 9, 10, 17)))
# The first E2M1 layout (11 operations, 8 on the ALU: `w & M`, `(w << 3) & M`, `(w << 6) & M` and
# `((w >> 4) & 0x00C000C0) | ((w >> 5) & 0x01000100) | ((w << 1) & 0x80008000)`), which artifacts compiled
# before it hold (their weights' recipe says `"fragments": true`, the current layout's `"fragments": 2`): kept
# so that new weights written into such an artifact are packed as its embedded kernels read them.
E2M1_BITS_V1 = (((6, 7, 8, 15), (22, 23, 24, 31)), ((3, 4, 5, 12), (19, 20, 21, 28)),
                ((0, 1, 2, 9), (16, 17, 18, 25)), ((10, 11, 13, 14), (26, 27, 29, 30)))
# The IF4 variant (also NVINT4's): every block's codes as sign-magnitude nibbles (an INT block's two's
# complement q in [-7, 7] re-encoded, `if4_sign_magnitude`), so that FP and INT blocks alike decode as
# sign(c) x T[|c|] with a table T of 8 bf16 magnitudes per scale byte (mxc_sm90.cuh, `if4_table`);
# code (register j, half h)'s bits (magnitude 0, 1, 2, sign) at IF4_BITS[j][h]. The magnitudes of
# row g's codes (registers 0, 2) fill nibbles 0..3 of the step's word, row g + 8's (registers 1, 3)
# nibbles 4..7, bits 0..2 of each; the signs fill the nibbles' top bits, row g's at 7, 15, 23, 31 and
# row g + 8's at 3, 11, 19, 27. The decode (`frag_steps`): z = w & 0x77777777 and z >> 16 are the
# byte selectors (prmt) of rows g and g + 8 into their tables' low and high bytes; the high bytes take
# the signs by `^ (w & 0x80808080)` and `^ ((w << 4) & 0x80808080)`; prmt 0x5140 / 0x7362 interleave
# low and high bytes into registers 0 and 2 (row g) or 1 and 3 (row g + 8).
IF4_BITS = (((0, 1, 2, 7), (4, 5, 6, 15)), ((16, 17, 18, 3), (20, 21, 22, 11)),
            ((8, 9, 10, 23), (12, 13, 14, 31)), ((24, 25, 26, 19), (28, 29, 30, 27)))
WORD_BITS = {"e2m1": E2M1_BITS, "e2m1v1": E2M1_BITS_V1, "if4": IF4_BITS}


# The FP6 variant (E2M3, E3M2: sign at code bit 5, magnitude at bits 0..4), for the dec kernels' integer
# decode: a lane's 24 bytes of a fragment tile as 6 words w0..w5 (little-endian), its 16 A registers
# k = 4 x step + j (register j of an MMA step: code j in the low half, code j + 4 in the high half) each
# built as bf16 bits with the code's magnitude at bits e..e+4 (E2M3 e = 4, E3M2 e = 5: the element's
# exponent on bf16's low exponent bits) and its sign at bit 15, high half + 16. Register k < 15: its
# magnitudes in word k // 3, field f = k % 3 at bits 5f..5f+4 (low code) and 16+5f..20+5f (high code);
# the signs of the field-1 registers (1, 4, 7, 10, 13) at bits 15 and 31 of their own word, the other
# ten's in w5 at bits (q, q + 16) for q in 0..14 outside e..e+4 (FP6_SIGN_SLOTS order); register 15:
# magnitudes in w5 at e..e+4 / 16+e..20+e, signs at w5's bits 15 and 31, so that it is w5 & C. The
# decode (mxc_sm90.cuh, `fp6_reg`): ((word >> (5f - e)) & MAG) | ((sign word << (15 - q)) & SGN), the
# shifts and masks constants (C = MAG | SGN, MAG = 0x1F << e in both halves, SGN = 0x80008000).
FP6_REGS = 16


def fp6_layout(e: int) -> list[tuple[tuple[int, int], int, int, int, int]]:
    """Per register k (0..15): ((magnitude word, field bit), shift of the magnitude word to bring the field
    to bit e (left: positive), sign word, sign bit q (low half; high half q + 16), shift of the sign word
    (left) to bring q to 15. Bits of the lane's 192 are word x 32 + bit."""
    slots = [q for q in range(15) if not e <= q <= e + 4]
    assert len(slots) == 10
    out, si = [], 0
    for k in range(FP6_REGS):
        if k == 15:
            out.append(((5, e), 0, 5, 15, 0))
            continue
        word, f = divmod(k, 3)
        if f == 1:
            sw, q = word, 15
        else:
            sw, q = 5, slots[si]
            si += 1
        out.append(((word, 5 * f), e - 5 * f, sw, q, 15 - q))
    return out


def fp6_bits(e: int) -> list[list[list[int]]]:
    """[register k][half h][bit b] -> the lane's tile bit (word x 32 + bit) of code bit b (0..4 magnitude,
    5 sign) of register k's half h (code j, or j + 4, of step k // 4, j = k % 4)."""
    pos = []
    for (mw, fb), _, sw, q, _ in fp6_layout(e):
        pos.append([[mw * 32 + fb + 16 * h + b for b in range(5)] + [sw * 32 + q + 16 * h] for h in range(2)])
    flat = sorted(x for r in pos for h in r for x in h)
    assert flat == list(range(192)), "the FP6 layout must use every bit of a lane's 24 bytes once"
    return pos


def _fp6_e(kind: str) -> int:
    return {"fp6m3": 4, "fp6m2": 5}[kind]


@functools.cache
def _fp6_table(e: int) -> torch.Tensor:
    """[code i][value v][word] -> v's bits in the lane's 6 words of the FP6 layout (fp6_bits): disjoint across
    codes, so the OR of the words is their sum."""
    pos = fp6_bits(e)
    table = torch.zeros((32, 64, 6), dtype=torch.int64)
    for st in range(4):
        for p in range(8):
            k, h = 4 * st + p % 4, p // 4
            for b in range(6):
                at = pos[k][h][b]
                table[8 * st + p, [v for v in range(64) if (v >> b) & 1], at // 32] += 1 << (at % 32)
    return table


def _scatter_fp6(lanes: torch.Tensor, e: int) -> torch.Tensor:
    """[..., 32] 6-bit codes (code 8 st + p) -> [..., 24] bytes in the FP6 layout (fp6_bits)."""
    c = lanes.to(torch.int64)
    table = _fp6_table(e)
    c = c.movedim(-1, 0).contiguous()  # [32, ...]: each code's column contiguous
    words = torch.stack([sum(table[i, :, w][c[i]] for i in range(32) if table[i, :, w].any())
                         for w in range(6)], -1)
    return torch.stack([(words >> (8 * i)) & 0xFF for i in range(4)], -1).flatten(-2).to(torch.uint8)


def _gather_fp6(data: torch.Tensor, e: int) -> torch.Tensor:
    """The inverse of _scatter_fp6."""
    pos = fp6_bits(e)
    b = data.to(torch.int64).unflatten(-1, (6, 4))
    words = b[..., 0] | (b[..., 1] << 8) | (b[..., 2] << 16) | (b[..., 3] << 24)
    codes = torch.zeros((*words.shape[:-1], 32), dtype=torch.int64)
    for st in range(4):
        for p in range(8):
            k, h = 4 * st + p % 4, p // 4
            for bit in range(6):
                at = pos[k][h][bit]
                codes[..., 8 * st + p] |= ((words[..., at // 32] >> (at % 32)) & 1) << bit
    return codes.to(torch.uint8)


def _frag_index() -> torch.Tensor:
    """[32 lanes, 32 codes] -> flat index row * 64 + k inside a fragment tile."""
    lane, q = torch.arange(32).unsqueeze(1), torch.arange(32).unsqueeze(0)
    g, t, s, p = lane // 4, lane % 4, q // 8, q % 8
    row = g + 8 * (p % 2)
    k = 16 * t + 4 * s + 2 * ((p % 4) // 2) + p // 4
    return row * FRAG_K + k


def _frag_grid(r: int, k: int, group: int = 1) -> tuple[int, int]:
    """(row tiles, K tiles) of an [r, k] operand: rows padded to 16 x group, K to 64."""
    return -(-r // (FRAG_R * group)) * group, -(-k // FRAG_K)


def _grouped(t: torch.Tensor, rt: int, kt: int, group: int) -> torch.Tensor:
    """Per-tile data [rt, kt, ...] flattened with `group` consecutive row tiles side by side per K tile:
    tile (i, j) at ((i // group) * kt + j) * group + i % group (rdec's CTA moves one such run per K tile)."""
    t = t.reshape(rt // group, group, kt, -1).transpose(1, 2)
    return t.contiguous().reshape(-1)


def _ungrouped(flat: torch.Tensor, rt: int, kt: int, group: int) -> torch.Tensor:
    """The inverse of _grouped: [rt, kt, per-tile bytes]."""
    return flat.reshape(rt // group, kt, group, -1).transpose(1, 2).reshape(rt, kt, -1)


@functools.cache
def _word_table(positions) -> torch.Tensor:
    """[code p][value v] -> v's bits scattered to `positions` (E2M1_BITS, IF4_BITS): disjoint across p, so the
    OR of a step's word is their sum."""
    return torch.tensor([[sum(((v >> b) & 1) << pos for b, pos in enumerate(positions[p % 4][p // 4]))
                          for v in range(16)] for p in range(8)], dtype=torch.int64)


def _scatter_words(lanes: torch.Tensor, positions=E2M1_BITS) -> torch.Tensor:
    """[..., 32] 4-bit codes (8 per step) -> [..., 16] bytes, each step's word bit-scattered (code
    (register j, half h)'s bit b at positions[j][h][b]: E2M1_BITS, IF4_BITS)."""
    c = lanes.to(torch.int64).unflatten(-1, (4, 8))  # [..., step, p]
    table = _word_table(positions)
    c = c.movedim(-1, 0).contiguous()  # [p, ..., step]: each code position's column contiguous
    word = sum(table[p][c[p]] for p in range(8))
    return torch.stack([(word >> (8 * i)) & 0xFF for i in range(4)], -1).flatten(-2).to(torch.uint8)


def _gather_words(data: torch.Tensor, positions=E2M1_BITS) -> torch.Tensor:
    """The inverse of _scatter_words."""
    b = data.to(torch.int64).unflatten(-1, (4, 4))
    word = b[..., 0] | (b[..., 1] << 8) | (b[..., 2] << 16) | (b[..., 3] << 24)
    codes = torch.zeros((*word.shape, 8), dtype=torch.int64)
    for p in range(8):
        for bit, pos in enumerate(positions[p % 4][p // 4]):
            codes[..., p] |= ((word >> pos) & 1) << bit
    return codes.flatten(-2).to(torch.uint8)


def _scatter_kind(scatter: bool | str) -> str | None:
    """frag_codes' `scatter` as a key: False none, True or "e2m1" E2M1_BITS, "e2m1v1" E2M1_BITS_V1, "if4"
    IF4_BITS, "fp6m3" / "fp6m2" the FP6 layout of E2M3 / E3M2 (fp6_bits)."""
    if scatter is False:
        return None
    kind = "e2m1" if scatter is True else scatter
    if kind not in WORD_BITS and kind not in ("fp6m3", "fp6m2"):
        raise ValueError(f"unknown bit-scattered layout {scatter!r} (known: {', '.join(WORD_BITS)})")
    return kind


def _block_flags(scales: torch.Tensor, r: int, k: int, block: int,
                 all_int: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(INT flag, NaN scale) per element [r, k] of IF4 scale bytes [r, ceil(k / block)] (UE4M3 NaN: 0x7F, 0xFF;
    `all_int`: NVINT4, every block INT, bit 7 the scale's sign)."""
    if scales.dim() != 2 or scales.shape[0] != r or scales.shape[1] * block < k:
        raise ValueError(f"IF4 scales of shape {tuple(scales.shape)} do not cover codes [{r}, {k}] in blocks of {block}")
    per = scales.to(torch.int16).repeat_interleave(block, 1)[:, :k]
    return ((per & 0x80) != 0) | all_int, (per & 0x7F) == 0x7F


def if4_sign_magnitude(codes: torch.Tensor, scales: torch.Tensor, block: int, all_int: bool = False) -> torch.Tensor:
    """IF4 codes [R, K] (numerics': E2M1 nibbles in FP blocks, two's complement in INT blocks, INT flag in
    bit 7 of the scale byte [R, ceil(K / block)]) -> sign-magnitude nibbles in every block, as the IF4
    fragments hold them (IF4_BITS). The value of code (s, m) is then sign s times the block's table entry
    m in both kinds of block (the table is per scale byte). Every code of a block whose scale is NaN (0x7F,
    0xFF) decodes to the same NaN, which a sign bit would flip: those blocks keep their nibbles' low three
    bits only (and come back from `if4_from_sign_magnitude` so; numerics gives such blocks zero codes). An
    INT code -8 (two's complement 0x8, never produced: q is clamped to [-7, 7]) has no sign-magnitude
    nibble: ValueError. `all_int`: NVINT4's codes (every block INT, two's complement in [-7, 7]; the same table
    decode, its table m x the UE4M3 scale, negative for scale bytes >= 0x80: the kernel flips signs by XOR)."""
    if codes.dim() != 2 or codes.dtype != torch.uint8:
        raise ValueError(f"codes must be a 2-D uint8 tensor, got {tuple(codes.shape)} {codes.dtype}")
    r, k = codes.shape
    is_int, nan = _block_flags(scales, r, k, block, all_int)
    c = codes.to(torch.int16) & 0xF
    bad = is_int & ~nan & (c == 8)
    if bad.any():
        row, col = (int(v) for v in bad.nonzero()[0])
        what = "NVINT4 code" if all_int else "IF4 INT block holds the code"
        raise ValueError(f"{what} -8 (weight [{row}, {col}]): the format's INT codes are "
                         "-7..7 and the kernels' sign-magnitude decode has no -8")
    sm = torch.where(is_int & (c >= 8), 8 | (16 - c), c)  # q < 0: sign bit and |q|
    return torch.where(nan, c & 7, sm).to(torch.uint8)


def if4_from_sign_magnitude(codes: torch.Tensor, scales: torch.Tensor, block: int,
                            all_int: bool = False) -> torch.Tensor:
    """The inverse of if4_sign_magnitude: INT blocks' nibbles back to two's complement (NaN blocks' codes as
    stored: their low three bits)."""
    r, k = codes.shape
    is_int, nan = _block_flags(scales, r, k, block, all_int)
    c = codes.to(torch.int16)
    mag = c & 7
    tc = torch.where((c & 8) != 0, (16 - mag) & 0xF, mag)  # -|q| in two's complement (a -0 never written: 0)
    return torch.where(is_int & ~nan, tc, c).to(torch.uint8)


def int8_sign_magnitude(codes: torch.Tensor) -> torch.Tensor:
    """MXINT8 codes [R, K] (two's complement bytes, value q / 64) -> sign-magnitude bytes (bit 7 the sign,
    bits 0..6 |q|), as the MXINT8 fragments hold them (in the plain 8-bit fragment order): the dec kernels
    decode |q| by bf16 128 + |q| (0x4300 | |q|) and one FMA (mxc_sm90.cuh, `int8_factors`). q = -128 (0x80,
    which FORMATS.md's decode accepts as -2.0 but numerics' encode never writes: it clamps to [-127, 127])
    has no 7-bit magnitude: ValueError naming the weight."""
    if codes.dim() != 2 or codes.dtype != torch.uint8:
        raise ValueError(f"codes must be a 2-D uint8 tensor, got {tuple(codes.shape)} {codes.dtype}")
    c = codes.to(torch.int64)
    bad = c == 0x80
    if bad.any():
        row, col = (int(v) for v in bad.nonzero()[0])
        raise ValueError(f"MXINT8 code -128 (0x80, weight [{row}, {col}]): the format's encode writes -127..127 "
                         "and the kernels' sign-magnitude decode has no -128")
    return torch.where(c >= 0x80, 0x80 | (0x100 - c), c).to(torch.uint8)


def int8_from_sign_magnitude(codes: torch.Tensor) -> torch.Tensor:
    """The inverse of int8_sign_magnitude (a -0 byte, 0x80, never written: read as 0)."""
    c = codes.to(torch.int64)
    m = c & 0x7F
    return torch.where((c & 0x80) != 0, (0x100 - m) & 0xFF, m).to(torch.uint8)


def frag_codes(codes: torch.Tensor, bits: int, scatter: bool | str = False, group: int = 1) -> torch.Tensor:
    """Element codes [R, K] (uint8, one per element) -> fragment tiles, R padded to 16 x group, K to 64
    (zeros); `scatter`: 4-bit codes bit-scattered for the E2M1 decode (True or "e2m1": E2M1_BITS; "e2m1v1":
    the first layout, E2M1_BITS_V1) or for IF4's table decode ("if4": IF4_BITS, the codes sign-magnitude:
    if4_sign_magnitude), or 6-bit codes in the FP6 integer decode's layout ("fp6m3": E2M3, "fp6m2": E3M2,
    fp6_bits); `group` row tiles side by side per K tile (_grouped)."""
    if codes.dim() != 2 or codes.dtype != torch.uint8:
        raise ValueError(f"codes must be a 2-D uint8 tensor, got {tuple(codes.shape)} {codes.dtype}")
    r, k = codes.shape
    rt, kt = _frag_grid(r, k, group)
    full = torch.zeros((rt * FRAG_R, kt * FRAG_K), dtype=torch.uint8)
    full[:r, :k] = codes
    tiles = full.reshape(rt, FRAG_R, kt, FRAG_K).permute(0, 2, 1, 3).reshape(rt, kt, FRAG_R * FRAG_K)
    from mxc.numerics.quantize import pack_fp6, pack_nibbles

    lanes = tiles[:, :, _frag_index()]  # [rt, kt, 32, 32]
    kind = _scatter_kind(scatter)
    if kind in ("fp6m3", "fp6m2"):
        if bits != 6:
            raise ValueError(f"the FP6 layout holds 6-bit codes, not {bits}-bit")
        return _grouped(_scatter_fp6(lanes, _fp6_e(kind)), rt, kt, group)
    if kind:
        if bits != 4:
            raise ValueError(f"the bit-scattered layout holds 4-bit codes, not {bits}-bit")
        return _grouped(_scatter_words(lanes, WORD_BITS[kind]), rt, kt, group)
    return _grouped({4: pack_nibbles, 6: pack_fp6, 8: lambda c: c}[bits](lanes), rt, kt, group)


def unfrag_codes(frag: torch.Tensor, r: int, k: int, bits: int, scatter: bool | str = False,
                 group: int = 1) -> torch.Tensor:
    """The inverse of frag_codes: [R, K] codes, padding dropped."""
    rt, kt = _frag_grid(r, k, group)
    lane_bytes = 32 * bits // 8
    if frag.numel() != rt * kt * 32 * lane_bytes:
        raise ValueError(f"expected {rt * kt * 32 * lane_bytes} fragment bytes for [{r}, {k}] of {bits}-bit codes, "
                         f"got {frag.numel()}")
    from mxc.numerics.quantize import unpack_fp6, unpack_nibbles

    kind = _scatter_kind(scatter)
    if kind in ("fp6m3", "fp6m2"):
        def unpack(data):
            return _gather_fp6(data, _fp6_e(kind))
    elif kind:
        def unpack(data):
            return _gather_words(data, WORD_BITS[kind])
    else:
        unpack = {4: unpack_nibbles, 6: unpack_fp6, 8: lambda c: c}[bits]
    lanes = unpack(_ungrouped(frag, rt, kt, group).reshape(rt, kt, 32, lane_bytes))
    tiles = torch.empty((rt, kt, FRAG_R * FRAG_K), dtype=torch.uint8)
    tiles[:, :, _frag_index().reshape(-1)] = lanes.reshape(rt, kt, -1)
    full = tiles.reshape(rt, kt, FRAG_R, FRAG_K).permute(0, 2, 1, 3).reshape(rt * FRAG_R, kt * FRAG_K)
    return full[:r, :k].contiguous()


def frag_scales(scales: torch.Tensor, k: int, block: int, pad: int, group: int = 1) -> torch.Tensor:
    """Scale codes [R, ceil(K/bs)] -> per fragment tile [8][64/bs][2] bytes, R padded to 16 x group and K
    to 64 with `pad` (a scale code of 1); tiles ordered as frag_codes orders them."""
    r = scales.shape[0]
    rt, kt = _frag_grid(r, k, group)
    nb = FRAG_K // block
    full = torch.full((rt * FRAG_R, kt * nb), pad, dtype=torch.uint8)
    cols = min(scales.shape[1], kt * nb)
    full[:r, :cols] = scales[:, :cols]
    t = full.reshape(rt, 2, 8, kt, nb).permute(0, 3, 2, 4, 1)  # [rt, kt, g, block, row g / g + 8]
    return _grouped(t, rt, kt, group)


def unfrag_scales(frag: torch.Tensor, r: int, k: int, block: int, group: int = 1) -> torch.Tensor:
    """The inverse of frag_scales: [R, ceil(K/bs)] scale codes."""
    rt, kt = _frag_grid(r, k, group)
    nb = FRAG_K // block
    full = _ungrouped(frag, rt, kt, group).reshape(rt, kt, 8, nb, 2).permute(0, 4, 2, 1, 3).reshape(rt * FRAG_R, kt * nb)
    return full[:r, : -(-k // block)].contiguous()

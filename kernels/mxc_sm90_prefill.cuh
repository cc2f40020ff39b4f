// Hopper's bf16 tensor-core GEMMs for weight-only layers from M = 17, and for MXFP8 x MXFP8 layers:
//
//   tilea  x [M, K] f32 -> bf16 (RNE) tiles of R rows x 64 K, zero-padded (rows past M, K past K); PERM:
//          K permuted inside each tile as the fragment tiles permute it (rdec's operand);
//   tileq  the same tiles holding MX-quantized activations (codes x E8M0 scales, exact in bf16);
//   rdec   the weights in fragment tiles, decoded in registers by the consumer warps into wgmma's A
//          operand (weights x activations^T: the weights are the MMA's M side), a producer thread feeding
//          a ring of stages by bulk copies; K split across CTAs, dsum adding;
//   dec1b  (M = 1) dec1's decode, the weights moved by bulk copies into a ring of shared-memory stages.
// Tiles are K-major core matrices of 8 rows x 16 bytes, what wgmma reads without swizzle; tile (i, kt)
// of an operand lies at (i * KT + kt) * tile bytes. (The prefill path, wdec + hgemm, which decoded the
// weights once per call into bf16 tiles for a persistent bf16 GEMM, was removed on 2026-12-06 once rdec had
// measured faster on the H100 and the H200: docs/cuda-sm90-log.md.)
#pragma once

namespace mxc {

constexpr int PF_K = 64;  // K per tile

// Chunk q (8 bf16 = 16 bytes) of a tiled operand with R rows per tile: its row and K within the matrix.
// Consecutive chunks are consecutive 16 bytes of the tile (rows of a core matrix, then K, then row groups).
template <int R>
__device__ __forceinline__ void pf_chunk(size_t q, int KT, int& row, int& k, size_t& off) {
  constexpr int CH = R * PF_K / 8;  // chunks per tile
  const size_t tile = q / CH;
  const int c = (int)(q % CH);
  const int i = (int)(tile / KT), kt = (int)(tile % KT);
  row = i * R + (c >> 6) * 8 + (c & 7);
  k = kt * PF_K + ((c >> 3) & 7) * 8;
  off = q * 16;
}

// tilea: R rows per tile; PERM: K permuted inside each 64-K tile as the fragment tiles permute it
// (mxc.kernels.layouts, "fragment tiles"), so that rdec's weights in those tiles meet their activations:
// the tile's K position 8c + i holds x's K 16 (i / 2) + 2c + i % 2 (four pairs, 16 apart).
template <int R, bool PERM>
__device__ __forceinline__ void tilea(const float* __restrict__ x, __nv_bfloat16* __restrict__ a, int M, int K) {
  const int KT = (K + PF_K - 1) / PF_K, MT = (M + R - 1) / R;
  const size_t q = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (q >= (size_t)MT * KT * (R * PF_K / 8)) return;
  int m, k;
  size_t off;
  pf_chunk<R>(q, KT, m, k, off);
  float v[8];
  const float* xr = x + (size_t)m * K;
  if constexpr (PERM) {
    const int kp = k - k % PF_K + 2 * ((k % PF_K) / 8);  // the chunk's first pair
    const bool vec = m < M && (K & 1) == 0 && (((uintptr_t)x) & 7) == 0;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int kk = kp + 16 * j;
      if (vec && kk + 2 <= K) {
        const float2 p = __ldg(reinterpret_cast<const float2*>(xr + kk));
        v[2 * j] = p.x; v[2 * j + 1] = p.y;
      } else {
        v[2 * j] = (m < M && kk < K) ? __ldg(xr + kk) : 0.f;
        v[2 * j + 1] = (m < M && kk + 1 < K) ? __ldg(xr + kk + 1) : 0.f;
      }
    }
  } else if (m < M && k + 8 <= K && (((uintptr_t)(xr + k)) & 15) == 0) {
    const float4 p = __ldg(reinterpret_cast<const float4*>(xr + k)), r = __ldg(reinterpret_cast<const float4*>(xr + k) + 1);
    v[0] = p.x; v[1] = p.y; v[2] = p.z; v[3] = p.w; v[4] = r.x; v[5] = r.y; v[6] = r.z; v[7] = r.w;
  } else {
#pragma unroll
    for (int j = 0; j < 8; ++j) v[j] = (m < M && k + j < K) ? __ldg(xr + k + j) : 0.f;
  }
  *reinterpret_cast<uint4*>(reinterpret_cast<uint8_t*>(a) + off) =
      make_uint4(pack_bf16(v[0], v[1]), pack_bf16(v[2], v[3]), pack_bf16(v[4], v[5]), pack_bf16(v[6], v[7]));
}

// tileq: x [M, K] f32 -> MX-quantized activations (numerics' rule with scale_rule=floor, rounding=rne: E8M0
// scale 2^e, e = clamp(floor(log2 amax) - emax, -127, 127), -127 for a zero block; codes by the format's
// saturating RNE encoder of x * 2^-e; a block holding NaN/Inf gets the NaN scale and zero codes), held
// dequantized as bf16 tiles of R rows x 64 K like tilea's (PERM alike): code value x 2^e, exact but below
// bf16's subnormal range (2^-133). One thread per row of a 64-K tile (two 32-blocks).
template <class E, class F, int R, bool PERM>
__device__ __forceinline__ void tileq(const float* __restrict__ x, __nv_bfloat16* __restrict__ a, int M, int K) {
  const int KT = (K + PF_K - 1) / PF_K, MT = (M + R - 1) / R;
  const size_t q = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (q >= (size_t)MT * KT * R) return;
  const size_t tile = q / R;
  const int r = (int)(q % R), m = (int)(tile / KT) * R + r, k0 = (int)(tile % KT) * PF_K;
  float v[PF_K];
  const float* xr = x + (size_t)m * K + k0;
  if (m < M && k0 + PF_K <= K && (((uintptr_t)xr) & 15) == 0) {
#pragma unroll
    for (int j = 0; j < PF_K / 4; ++j) {
      const float4 p = __ldg(reinterpret_cast<const float4*>(xr) + j);
      v[4 * j] = p.x; v[4 * j + 1] = p.y; v[4 * j + 2] = p.z; v[4 * j + 3] = p.w;
    }
  } else {
#pragma unroll
    for (int j = 0; j < PF_K; ++j) v[j] = (m < M && k0 + j < K) ? __ldg(xr + j) : 0.f;
  }
#pragma unroll
  for (int b = 0; b < 2; ++b) {  // the two 32-blocks: quantize, then the value each code stands for
    float amax = 0.f;
    bool special = false;
#pragma unroll
    for (int j = 32 * b; j < 32 * b + 32; ++j) {
      const float av = fabsf(v[j]);
      special |= !(av <= 3.402823466e38f);
      amax = fmaxf(amax, av);
    }
    const int e = amax == 0.f ? -127 : max(-127, min(127, ilogbf(amax) - E::EMAX));
    const uint32_t sc = special ? 0xFFu : (uint32_t)(e + 127);
    const float inv = e < 127 ? __int_as_float((127 - e) << 23) : __int_as_float(0x00400000);  // 2^-e, exact
    const float scale = F::scale(sc);
#pragma unroll
    for (int j = 32 * b; j < 32 * b + 32; ++j)
      v[j] = F::elem(special ? 0u : (uint32_t)E::encode(v[j] * inv), sc) * scale;
  }
  uint8_t* out = reinterpret_cast<uint8_t*>(a) + tile * (R * PF_K * 2) + (r >> 3) * 1024 + (r & 7) * 16;
#pragma unroll
  for (int c = 0; c < 8; ++c) {  // chunk c: K 8c .. 8c+7 of the tile, or with PERM 16 (i / 2) + 2c + i % 2
    uint32_t w[4];
#pragma unroll
    for (int i = 0; i < 8; i += 2) {
      const int k = PERM ? 16 * (i / 2) + 2 * c : 8 * c + i;
      w[i / 2] = pack_bf16(v[k], v[k + 1]);
    }
    *reinterpret_cast<uint4*>(out + c * 128) = make_uint4(w[0], w[1], w[2], w[3]);
  }
}

__device__ __forceinline__ void wgmma_wait1() { asm volatile("wgmma.wait_group.sync.aligned 1;\n" ::: "memory"); }

}  // namespace mxc

namespace mxc {

// ---------------------------------------------------------------- rdec: the weights decoded in registers
// y^T tile (128 weight rows x NA rows of x) = W . a^T over the K tiles (of 64) [z * per, (z + 1) * per):
// W in fragment tiles grouped by 8 (kinds.RDec.weight_layout: a CTA's 128 rows x 64 K in one run of
// codes and one of scales), a in tilea's permuted tiles of NA rows (the K order of the fragment tiles),
// one CTA per 128 weight rows, NA rows of x and K split. Three warpgroups:
//   producer   one thread moving each K tile's activations, codes and scales by three bulk copies into a
//              ring of SLOTS stages (setmaxnreg gives its warpgroup's registers to the consumers);
//   consumers  two warpgroups of 64 weight rows: each warp decodes its fragment tile (16 rows x 64 K)
//              in registers, as dec does (integer ops for E2M1 and FP8, exact; table lookups for IF4),
//              into the A operand of four wgmma m64nNAk16 (A from registers, B the activations in shared
//              memory); the next tile is decoded while they run (two register sets), one MMA group kept
//              in flight.
// No shared-memory round trip of decoded weights, no barrier between decode and MMA.
template <class F, int NA>
struct RdecSmem {
  static constexpr int LB = 32 * F::BITS / 8, NB = 64 / F::BS;  // a lane's code bytes; blocks per tile row
  static constexpr int AT = NA * PF_K * 2, WC = 8 * 32 * LB, WS = 8 * 16 * NB;  // one K tile's bytes
  static constexpr int STAGE = AT + WC + WS;
};

__device__ __forceinline__ void fence_regs16(uint32_t* r) {
  asm volatile("" : "+r"(r[0]), "+r"(r[1]), "+r"(r[2]), "+r"(r[3]), "+r"(r[4]), "+r"(r[5]), "+r"(r[6]), "+r"(r[7]),
               "+r"(r[8]), "+r"(r[9]), "+r"(r[10]), "+r"(r[11]), "+r"(r[12]), "+r"(r[13]), "+r"(r[14]), "+r"(r[15])
               :: "memory");
}

template <int LB>
__device__ __forceinline__ Raw<LB> lds_raw(const uint8_t* p) {
  Raw<LB> r;
  if constexpr (LB % 16 == 0) {
#pragma unroll
    for (int i = 0; i < LB / 16; ++i) {
      const uint4 v = reinterpret_cast<const uint4*>(p)[i];
      r.w[4 * i] = v.x; r.w[4 * i + 1] = v.y; r.w[4 * i + 2] = v.z; r.w[4 * i + 3] = v.w;
    }
  } else {
#pragma unroll
    for (int i = 0; i < LB / 8; ++i) {
      const uint2 v = reinterpret_cast<const uint2*>(p)[i];
      r.w[2 * i] = v.x; r.w[2 * i + 1] = v.y;
    }
  }
  return r;
}

template <class F, int NA, int SLOTS, int S, bool BIAS>
__device__ __forceinline__ void rdec(const __nv_bfloat16* __restrict__ a, const uint8_t* __restrict__ w,
                                     const uint8_t* __restrict__ wsc, const float* __restrict__ tsp,
                                     const float* __restrict__ bias, float* __restrict__ out, int M, int N, int K,
                                     int epi) {
  extern __shared__ __align__(1024) uint8_t smem[];
  __shared__ __align__(16) uint32_t lut[DecLut<F>::WORDS];
  using L = RdecSmem<F, NA>;
  const int KT = (K + PF_K - 1) / PF_K, nt = blockIdx.x, mt = blockIdx.y, z = blockIdx.z;
  const int per = (KT + S - 1) / S, kb = min(KT, z * per), nk = min(KT, kb + per) - kb;
  const uint8_t* ga = reinterpret_cast<const uint8_t*>(a) + ((size_t)mt * KT + kb) * L::AT;
  const uint8_t* gw = w + ((size_t)nt * KT + kb) * L::WC;
  const uint8_t* gs = wsc + ((size_t)nt * KT + kb) * L::WS;
  const uint32_t full0 = smem_u32(smem + SLOTS * L::STAGE), empty0 = full0 + 8 * SLOTS;
  const int t = threadIdx.x, wg = t >> 7, u = t & 127;
  if ((((uintptr_t)a) | ((uintptr_t)w) | ((uintptr_t)wsc)) & 15) __trap();  // no printf: C7510
  if (t == 0) {
    for (int s = 0; s < SLOTS; ++s) {
      bs::mbar_init(full0 + 8 * s, 1);
      bs::mbar_init(empty0 + 8 * s, 2);  // one thread per consumer warpgroup
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  if constexpr (DecLut<F>::USED) {
    if (t >= 128) dec_lut_fill<F>(lut, t - 128);  // 256 consumer threads, 256 codes
  }
  __syncthreads();

  if (wg == 0) {  // the producer
    asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n");  // its registers to the consumers
    if (t == 0) {
      for (int i = 0; i < nk; ++i) {
        const int s = i % SLOTS;
        if (i >= SLOTS) bs::mbar_wait(empty0 + 8 * s, (i / SLOTS - 1) & 1);
        uint8_t* p = smem + s * L::STAGE;
        const uint32_t bar = full0 + 8 * s;
        bs::mbar_expect_tx(bar, L::STAGE);
        bs::bulk_load(smem_u32(p), ga + (size_t)i * L::AT, L::AT, bar);
        bs::bulk_load(smem_u32(p + L::AT), gw + (size_t)i * L::WC, L::WC, bar);
        bs::bulk_load(smem_u32(p + L::AT + L::WC), gs + (size_t)i * L::WS, L::WS, bar);
      }
    }
    return;
  }
  asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n");
  const int c = wg - 1, lane = t & 31, g = lane >> 2, tq = lane & 3;
  const int tile = 4 * c + (u >> 5);  // the warp's fragment tile among the CTA's 8
  const int coff = L::AT + tile * 32 * L::LB + lane * L::LB;
  const int soff = L::AT + L::WC + tile * 16 * L::NB + 2 * (g * L::NB + 16 * tq / F::BS);
  float acc[NA / 2];
#pragma unroll
  for (int i = 0; i < NA / 2; ++i) acc[i] = 0.f;
  uint32_t fa[2][16];
  auto step = [&](int i, uint32_t* fr) {
    const int s = i % SLOTS;
    bs::mbar_wait(full0 + 8 * s, (i / SLOTS) & 1);
    const uint8_t* p = smem + s * L::STAGE;
    const Raw<L::LB> raw = lds_raw<L::LB>(p + coff);
    const uint32_t sc2 = *reinterpret_cast<const uint16_t*>(p + soff);
    frag_steps<F, 0>(raw, sc2, lut, [&](int st, const uint32_t* av) {
#pragma unroll
      for (int j = 0; j < 4; ++j) fr[4 * st + j] = av[j];
    });
    const uint32_t B = smem_u32(p);
    fence_regs16(fr);  // the decode complete before the fence (else ptxas serializes the wgmmas: C7513)
    wgmma_fence();
#pragma unroll
    for (int st = 0; st < 4; ++st) wgmma_bf16_rA<NA>(acc, fr + 4 * st, smem_desc(B + 256 * st, 128, PF_K * 16));
    wgmma_commit();
    wgmma_wait1();  // tile i-1's MMAs are done: its stage and its registers are free
    if (i > 0 && u == 0) bs::mbar_arrive(empty0 + 8 * ((i - 1) % SLOTS));
  };
  int i = 0;
  for (; i + 1 < nk; i += 2) {
    step(i, fa[0]);
    step(i + 1, fa[1]);
  }
  if (i < nk) step(i, fa[0]);
  wgmma_wait0();
  fence_acc_n<NA>(acc);
  // the NV tensor scale, and for E2M1 with UE4M3 / UE5M3 scales the 2^16 dec_factor left out
  const float post = (F::TS ? *tsp : 1.f) * ((F::E2M1 && !F::E8M0) ? 65536.f : 1.f);
  const int n0 = nt * 128 + 64 * c, m0 = mt * NA;
  float* o = S == 1 ? out : out + (size_t)z * M * N;
#pragma unroll
  for (int i = 0; i < NA / 2; ++i) {  // acc[i]: weight row frag_row, row of x frag_col
    const int n = n0 + frag_row(i, u), m = m0 + frag_col(i, u);
    if (n < N && m < M) {
      float v = acc[i] * post;
      if (S == 1) {  // the activation called, not inlined: inlined into this unrolled loop it made the
        if (BIAS) v += bias[n];  // kernel ~12k instructions, each CTA's epilogue stalled on instruction fetch
        v = bs::activate(v, epi);
      }
      o[(size_t)m * N + n] = v;
    }
  }
}

}  // namespace mxc

namespace mxc {

// ---------------------------------------------------------------- dec1b: dec1 fed by bulk copies
// y[m] = x[m] . W^T for one row of x per CTA row (M = 1, the decode step), the fragment tiles of dec1
// (kinds.Dec.weight_layout), the weights and scales moved by the TMA engine instead of each warp's loads:
//   producer   one thread of an extra warp streaming the CTA's row tiles [r0, r1) (one contiguous run of
//              codes and one of scales: all K tiles of row tile r0, then r0 + 1, ...) through a ring of
//              STAGES stages, each up to C = WARPS x TPW K tiles of one row tile (the row tile's last stage
//              holds what is left of its KT), one bulk copy of codes and one of scales per stage (no
//              registers held for loads in flight);
//   consumers  WARPS warps; K tile j of a stage goes to warp j % WARPS, which decodes it in registers as
//              dec1 does (frag_steps) against x as bf16 in shared memory (each warp stages the K tiles of x
//              it reads, those of the tiles it is given, so none waits for another), into one of
//              TPW accumulators; after a row tile's stages it leaves their sum in `red` [row tile][warp][16
//              rows]; the sum over the warps in warp order, the NV tensor scale, the bias and the epilogue
//              after the last row tile.
// cuda-sm90 selects it at M = 1 where kinds.use_dec1b says (kinds.Dec1B says what it measured).
// A CTA takes rpc = ceil(row tiles / grid) <= DEC1B_RPC consecutive row tiles (kinds.Dec1B.grid); K at
// most DEC1B_KMAX (x's staging).
constexpr int DEC1B_KMAX = 16384, DEC1B_RPC = 8;

// dec1b's ring: STAGES full barriers (one producer arrival plus the bulk copies' bytes) and STAGES empty
// ones (one arrival per consumer warp), 8 bytes apart from full0 and empty0; thread 0 only.
__device__ __forceinline__ void ring_init(uint32_t full0, uint32_t empty0, int stages, int consumers) {
  for (int q = 0; q < stages; ++q) {
    bs::mbar_init(full0 + 8 * q, 1);
    bs::mbar_init(empty0 + 8 * q, consumers);
  }
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}

// Its producer (one thread): the KT K tiles of the row tiles [r0, r1) (the fragment tiles, a row tile's K
// tiles contiguous) into the ring, stages of up to L::C tiles of one row tile (the row tile's last holds
// what is left), one bulk copy of codes and one of scales per stage, each stage's slot reused once its
// consumers have released it.
template <class L, int STAGES>
__device__ __forceinline__ void stream_row_tiles(uint8_t* smem, const uint8_t* __restrict__ w,
                                                 const uint8_t* __restrict__ s, int r0, int r1, int KT,
                                                 uint32_t full0, uint32_t empty0) {
  int slot = 0, phase = 0, j = 0;
  for (int r = r0; r < r1; ++r) {
    for (int kt = 0; kt < KT; kt += L::C, ++j) {
      const int nc = min(L::C, KT - kt);
      if (j >= STAGES) bs::mbar_wait(empty0 + 8 * slot, phase ^ 1);
      uint8_t* p = smem + slot * L::STAGE;
      const uint32_t bar = full0 + 8 * slot;
      const size_t tile = (size_t)r * KT + kt;
      bs::mbar_expect_tx(bar, nc * (L::WT + L::ST));
      bs::bulk_load(smem_u32(p), w + tile * L::WT, nc * L::WT, bar);
      bs::bulk_load(smem_u32(p + L::C * L::WT), s + tile * L::ST, nc * L::ST, bar);
      if (++slot == STAGES) {
        slot = 0;
        phase ^= 1;
      }
    }
  }
}

template <class F, int WARPS, int TPW>
struct Dec1bSmem {
  static constexpr int LB = 32 * F::BITS / 8, NB = 64 / F::BS;  // a lane's code bytes; blocks per tile row
  static constexpr int C = WARPS * TPW, WT = 32 * LB, ST = 16 * NB;  // K tiles per stage; a tile's codes, scales
  static constexpr int STAGE = C * (WT + ST);
  static constexpr int XS = DEC1B_KMAX * 2, RED = DEC1B_RPC * WARPS * 16 * 4;  // then 2 x STAGES mbarriers
};

// DIAG (measurement variants, `bench_cuda ring`; wrong outputs): 2 the raw codes as A (no decode), 3 the
// consumers only wait for each stage and release it (the ring alone).
template <class F, int WARPS, int TPW, int STAGES, bool BIAS, int DIAG = 0>
__device__ __forceinline__ void dec1b(const float* __restrict__ x, const uint8_t* __restrict__ w,
                                      const uint8_t* __restrict__ s, const float* __restrict__ tsp,
                                      const float* __restrict__ bias, float* __restrict__ y, int M, int N, int K,
                                      int epi) {
  extern __shared__ __align__(128) uint8_t smem[];
  __shared__ __align__(16) uint32_t lut[DecLut<F>::WORDS];
  using L = Dec1bSmem<F, WARPS, TPW>;
  static_assert(WARPS >= 8, "256 consumer threads fill the decode's table");
  (void)M;
  __nv_bfloat16* xs = reinterpret_cast<__nv_bfloat16*>(smem + STAGES * L::STAGE);
  float* red = reinterpret_cast<float*>(smem + STAGES * L::STAGE + L::XS);
  const uint32_t full0 = smem_u32(smem + STAGES * L::STAGE + L::XS + L::RED), empty0 = full0 + 8 * STAGES;
  const int RT = (N + 15) / 16, KT = (K + 63) / 64;
  int rpc = 1;  // ceil(RT / gridDim.x), counted (as dec1)
  while (rpc * (int)gridDim.x < RT) ++rpc;
  const int r0 = blockIdx.x * rpc, r1 = min(RT, r0 + rpc), m = blockIdx.y;
  if (r0 >= r1) return;
  if (rpc > DEC1B_RPC || KT * 64 > DEC1B_KMAX || ((((uintptr_t)w) | ((uintptr_t)s)) & 15)) __trap();
  const int t = threadIdx.x, warp = t >> 5, lane = t & 31;
  // named barrier 2: the producer warp arrives once its lane 0 has set up the ring and streams at once; the
  // consumers wait there for the ring and for each other's part of the decode's table
  constexpr int ALL = (WARPS + 1) * 32;
  if (warp == WARPS) {  // the producer: per row tile, ceil(KT / C) stages, the last holding the KT % C left
    if (lane == 0) ring_init(full0, empty0, STAGES, WARPS);
    __syncwarp();
    asm volatile("bar.arrive 2, %0;\n" ::"r"(ALL) : "memory");
    if (lane == 0) stream_row_tiles<L, STAGES>(smem, w, s, r0, r1, KT, full0, empty0);
    return;
  }
  if constexpr (DecLut<F>::USED) {
    if (t < 256) dec_lut_fill<F>(lut, t);
  }
  asm volatile("bar.sync 2, %0;\n" ::"r"(ALL) : "memory");
  // x row m -> bf16 (RNE) in xs[0 .. KT * 64), zeros past K, while the first stages are in flight: each warp
  // converts the K tiles it consumes (w, w + WARPS, ...: C is a multiple of WARPS), so none waits for another
  const float* xr = x + (size_t)m * K;
  const bool xvec = (K % 4 == 0) && ((uintptr_t)xr % 16) == 0;
  const int nx = (KT - warp + WARPS - 1) / WARPS * 8;  // this warp's items of 8 values
  for (int i0 = 0; i0 < nx; i0 += 4 * 32) {
    float v[4][8];
#pragma unroll
    for (int j = 0; j < 4; ++j) {  // 4 items' loads in flight per lane
      const int it = i0 + 32 * j + lane, k = (warp + WARPS * (it >> 3)) * 64 + 8 * (it & 7);
      if (it < nx) ld_x8(xr, k, K, xvec, true, v[j]);
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int it = i0 + 32 * j + lane, k = (warp + WARPS * (it >> 3)) * 64 + 8 * (it & 7);
      if (it < nx) st_bf16x8(xs + k, v[j]);
    }
  }
  __syncwarp();
  // a stage holds up to C K tiles of one row tile, warp w the tiles w + q x WARPS of it
  const int g = lane >> 2, tq = lane & 3, per = (KT + L::C - 1) / L::C, nr = r1 - r0;
  int woff = warp * L::WT + lane * L::LB, soff = L::C * L::WT + warp * L::ST + 2 * (g * L::NB + 16 * tq / F::BS);
  int xoff = 2 * (warp * 64 + 16 * tq), lim = KT - warp;
  // opaque: computed once here, not rematerialized from the thread index in the loop
  asm volatile("" : "+r"(woff), "+r"(soff), "+r"(xoff), "+r"(lim));
  const bool leader = lane == 0;
  const uint8_t* xw = reinterpret_cast<const uint8_t*>(xs) + xoff;
  int slot = 0, phase = 0;
#pragma unroll 1
  for (int r = 0; r < nr; ++r) {
    float acc[TPW][1][4];
#pragma unroll
    for (int q = 0; q < TPW; ++q) acc[q][0][0] = acc[q][0][1] = acc[q][0][2] = acc[q][0][3] = 0.f;
#pragma unroll 1
    for (int c = 0; c < per; ++c) {
      bs::mbar_wait(full0 + 8 * slot, phase);
      const uint8_t* p = smem + slot * L::STAGE;
      if constexpr (DIAG == 3) {  // the ring alone
        __syncwarp();
        if (leader) bs::mbar_arrive(empty0 + 8 * slot);
        if (++slot == STAGES) {
          slot = 0;
          phase ^= 1;
        }
        continue;
      }
      auto tile = [&](int q) {  // K tile c x C + q x WARPS + warp of the row tile into acc[q]
        const Raw<L::LB> raw = lds_raw<L::LB>(p + woff + q * WARPS * L::WT);
        const uint32_t sc2 = *reinterpret_cast<const uint16_t*>(p + soff + q * WARPS * L::ST);
        uint32_t xb[1][8];
        const uint8_t* xp = xw + (c * L::C + q * WARPS) * 128;
        const uint4 a = *reinterpret_cast<const uint4*>(xp), b = *reinterpret_cast<const uint4*>(xp + 16);
        xb[0][0] = a.x; xb[0][1] = a.y; xb[0][2] = a.z; xb[0][3] = a.w;
        xb[0][4] = b.x; xb[0][5] = b.y; xb[0][6] = b.z; xb[0][7] = b.w;
        dec_tile<F, DIAG == 2 ? 2 : 0>(acc[q], raw, sc2, xb, lut);
      };
      // all TPW tiles in one basic block, so that their decodes and MMA chains interleave: 1-3.5 % faster
      // for the E2M1 formats on an H100, 3-4 % slower for the table decode (TAB4), which keeps one at a time
      if (!F::TAB4 && c * L::C + (TPW - 1) * WARPS < lim) {
#pragma unroll
        for (int q = 0; q < TPW; ++q) tile(q);
      } else {  // a tile at a time, skipping those past the row tile's last, partial stage
#pragma unroll
        for (int q = 0; q < TPW; ++q)
          if (c * L::C + q * WARPS < lim) tile(q);
      }
      __syncwarp();
      if (leader) bs::mbar_arrive(empty0 + 8 * slot);
      if (++slot == STAGES) {
        slot = 0;
        phase ^= 1;
      }
    }
    if (tq == 0) {  // column 0 of the n8 tile: c0 (row g), c2 (row g + 8)
      float v0 = acc[0][0][0], v2 = acc[0][0][2];
#pragma unroll
      for (int q = 1; q < TPW; ++q) {
        v0 += acc[q][0][0];
        v2 += acc[q][0][2];
      }
      red[(r * WARPS + warp) * 16 + g] = v0;
      red[(r * WARPS + warp) * 16 + g + 8] = v2;
    }
  }
  asm volatile("bar.sync 1, %0;\n" ::"r"(WARPS * 32) : "memory");
  const float post = (F::TS ? *tsp : 1.f) * ((F::E2M1 && !F::E8M0) ? 65536.f : 1.f);
  for (int i = t; i < (r1 - r0) * 16; i += WARPS * 32) {
    const int r = i >> 4, row = i & 15, n = (r0 + r) * 16 + row;
    if (n < N) {
      float v = 0.f;
#pragma unroll 4
      for (int q = 0; q < WARPS; ++q) v += red[(r * WARPS + q) * 16 + row];
      v *= post;
      if (BIAS) v += bias[n];
      y[(size_t)m * N + n] = epilogue(v, epi);
    }
  }
}

}  // namespace mxc

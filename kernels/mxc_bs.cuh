// The block-scaled GEMM skeleton: one kernel body, two MMA atoms.
//
//   bsmma  y = epilogue(A . W^T * ts_a * ts_w + bias): A and W block-scaled codes
//          (activations quantized by `bsq`, weights packed at compile time), both in the
//          tiled layout of mxc.kernels.layouts (128 x 128 tiles of 16-byte units; scales in
//          the 128x4 chunks the tensor cores read).
//   bsdec  the decode path: bf16 activations (bsq for bf16) times weights of any format,
//          decoded to bf16 in shared memory.
//   bsq    activations f32 [M, K] -> tiled codes + 128x4 scales (MX: floor rule, RNE,
//          saturating; NV: the NVFP4 recipe with the tensor scale from `amax`), or bf16.
//   amax   the NV tensor scale of the activations: AMAX_CTAS partial maxima of the finite |x|;
//          its readers (bsq, bsmma) reduce them to {S_enc, S_dec} (tensor_scale).
//
// Shared by both architectures (everything except the MMA atom): the tile layouts and
// their address arithmetic, the bulk-copy (TMA engine, cp.async.bulk) + mbarrier pipeline
// with STAGES slots, the decode of codes x scales to bf16 (read from the 128x4 chunks), and
// the epilogue (tensor scales, bias, activation, bounds). The atom:
//   sm_100a  tcgen05.mma.cta_group::1.kind::{mxf8f6f4 | mxf4 | mxf4nvf4}.block_scale on the
//            raw tiles, scales copied to tensor memory by tcgen05.cp (32x128b.warpx4),
//            completion by tcgen05.commit -> mbarrier, accumulator read by tcgen05.ld;
//            the decode path uses kind::f16 on the decoded bf16 tiles.
//   sm_90a   (the twin, which runs on the H100) decodes both operands to bf16 in shared
//            memory and runs wgmma m64n128k16 (HGMMA), accumulator in registers.
#pragma once

namespace mxc {
namespace bs {

constexpr int BM = 128, BN = 128, BK = 128, STAGES = 3, CHUNK = 512, THREADS = 256, AMAX_CTAS = 128;

// ---------------------------------------------------------------- operands
// F: a format struct (mxc.kernels.format_struct) or BF16; UE: elements per 16-byte unit.
struct BF16 {
  static constexpr int BITS = 16, BS = 0;
  static constexpr bool TS = false;
};

template <class F, int UE>
struct Op {
  static constexpr bool SCALED = F::BS > 0;
  static constexpr int UNITS = BK / UE;                   // units per tile row
  static constexpr int TILE = BM * UNITS * 16;            // bytes of a 128 x 128 tile
  static constexpr int LBO = 128, SBO = UNITS * 128;      // K-adjacent / row-group-adjacent core matrices
  static constexpr int CH = SCALED ? BK / (4 * F::BS) : 0;  // 128x4 scale chunks per K tile
  static constexpr int SBYTES = CH * CHUNK;
  static constexpr int STAGE = TILE + SBYTES;
  // Byte offset of the unit holding (row r, element k) of a tile; element index in the unit.
  __device__ static __forceinline__ int unit_off(int r, int k) { return ((r >> 3) * UNITS + k / UE) * 128 + (r & 7) * 16; }
  // Scale code of (row r, block b of the K tile) in the tile's chunks.
  __device__ static __forceinline__ int scale_off(int r, int b) {
    return (b >> 2) * CHUNK + (r & 31) * 16 + (r >> 5) * 4 + (b & 3);
  }
};

// Eight E2M1 codes (nibble j of w is code j) times a bf16 scale (s2: the scale in both halves) as four
// bf16 pairs, by integer ops: each magnitude's bf16 bits from two byte tables (prmt), the sign bit
// moved into place, one bf16 multiply per pair. Exact: element (2 significant bits) x scale (E8M0, or
// UE4M3 / UE5M3: at most 4) fits bf16's 8, subnormals included (bf16 arithmetic keeps them); a NaN scale
// gives NaN. The same values as F::elem(c) * F::scale(sc) rounded to bf16.
__device__ __forceinline__ uint4 e2m1x8(uint32_t w, uint32_t s2) {
  // bf16 of 0, 0.5, 1, 1.5, 2, 3, 4, 6: low bytes 00 00 80 C0 00 40 80 C0, high bytes 00 3F 3F 3F 40 40 40 40
  constexpr uint32_t LO0 = 0xC0800000u, LO1 = 0xC0804000u, HI0 = 0x3F3F3F00u, HI1 = 0x40404040u;
  uint32_t out[4];
#pragma unroll
  for (int h = 0; h < 2; ++h) {  // codes 4h .. 4h+3
    const uint32_t c = w >> (16 * h), sel = c & 0x7777u;
    uint32_t lo, hi;
    asm("prmt.b32 %0, %1, %2, %3;" : "=r"(lo) : "r"(LO0), "r"(LO1), "r"(sel));
    asm("prmt.b32 %0, %1, %2, %3;" : "=r"(hi) : "r"(HI0), "r"(HI1), "r"(sel));
#pragma unroll
    for (int p = 0; p < 2; ++p) {  // codes 4h+2p, 4h+2p+1
      uint32_t v;
      asm("prmt.b32 %0, %1, %2, %3;" : "=r"(v) : "r"(lo), "r"(hi), "r"(p ? 0x7362u : 0x5140u));
      v |= ((c << (12 - 8 * p)) & 0x8000u) | ((c << (24 - 8 * p)) & 0x80000000u);  // the signs
      const __nv_bfloat162 prod = __hmul2(*reinterpret_cast<const __nv_bfloat162*>(&v),
                                          *reinterpret_cast<const __nv_bfloat162*>(&s2));
      out[2 * h + p] = *reinterpret_cast<const uint32_t*>(&prod);
    }
  }
  return make_uint4(out[0], out[1], out[2], out[3]);
}

// A scale code as bf16 in both halves of a word (exact for E8M0, UE4M3 and UE5M3; NaN stays NaN).
template <class F>
__device__ __forceinline__ uint32_t scale_bf16x2(uint32_t scode) {
  const float s = F::scale(scode);
  return pack_bf16(s, s);
}

// Eight decoded elements (r, k0 .. k0+7) of a tile, element x block scale, as four bf16 pairs.
template <class F, int UE>
__device__ __forceinline__ uint4 decode8(const uint8_t* tile, const uint8_t* sc, int r, int k0) {
  using O = Op<F, UE>;
  if constexpr (!O::SCALED) {
    return *reinterpret_cast<const uint4*>(tile + O::unit_off(r, k0));  // already bf16
  } else if constexpr (F::E2M1 && UE == 32) {  // plain E2M1 codes, packed: the integer decode
    const uint32_t w = *reinterpret_cast<const uint32_t*>(tile + O::unit_off(r, k0) + (k0 % UE) / 2);
    return e2m1x8(w, scale_bf16x2<F>(sc[O::scale_off(r, k0 / F::BS)]));
  } else {
    // the 8 codes: 8 bytes (FP8), 6 (FP6: units of 16 elements, so offset 0 or 6), 4 (4-bit)
    const uint8_t* src = tile + O::unit_off(r, k0) + (k0 % UE) * F::BITS / 8;
    Raw<8> raw;
    if constexpr (F::BITS == 8) {
      const uint2 v = *reinterpret_cast<const uint2*>(src);
      raw.w[0] = v.x; raw.w[1] = v.y;
    } else if constexpr (F::BITS == 4) {
      raw.w[0] = *reinterpret_cast<const uint32_t*>(src);
      raw.w[1] = 0;
    } else {
      const uint16_t* h = reinterpret_cast<const uint16_t*>(src);
      raw.w[0] = h[0] | ((uint32_t)h[1] << 16);
      raw.w[1] = h[2];
    }
    const uint32_t scode = sc[O::scale_off(r, k0 / F::BS)];
    const float s = F::scale(scode);
    uint32_t p[4];
#pragma unroll
    for (int j = 0; j < 4; ++j)
      p[j] = pack_bf16(F::elem(code_at<F::BITS>(raw, 2 * j), scode) * s,
                       F::elem(code_at<F::BITS>(raw, 2 * j + 1), scode) * s);
    return make_uint4(p[0], p[1], p[2], p[3]);
  }
}

// A whole tile decoded into a bf16 tile (units of 8, the layout both MMAs read), all threads.
template <class F, int UE>
__device__ __forceinline__ void decode_tile(const uint8_t* tile, const uint8_t* sc, uint8_t* out) {
  using D = Op<BF16, 8>;
  static_assert(D::UNITS == 16, "the unit index q maps to (row, k) for 128 x 128 tiles");
  for (int q = threadIdx.x; q < BM * D::UNITS; q += THREADS) {  // q: the unit at q * 16 (no bank conflicts)
    const int r = (q >> 7) * 8 + (q & 7), k0 = ((q >> 3) & 15) * 8;
    *reinterpret_cast<uint4*>(out + 16 * q) = decode8<F, UE>(tile, sc, r, k0);
  }
}

// ---------------------------------------------------------------- mbarrier + bulk copy (sm_90+)
__device__ __forceinline__ void mbar_init(uint32_t bar, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, int bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint32_t bar, int parity) {
  asm volatile(
      "{\n .reg .pred p;\n"
      "WAIT_%=:\n"
      " mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n"
      " @!p bra WAIT_%=;\n}\n" ::"r"(bar), "r"(parity) : "memory");
}
// One bulk copy global -> shared (the TMA engine, no tensor map), completing on `bar`.
__device__ __forceinline__ void bulk_load(uint32_t dst, const void* src, int bytes, uint32_t bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n"
               ::"r"(dst), "l"(src), "r"(bytes), "r"(bar) : "memory");
}

// ---------------------------------------------------------------- amax's partial maxima
// The max of a CTA's values (every thread gets it).
__device__ __forceinline__ float cta_max(float m) {
  __shared__ float red[32];
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  __syncthreads();  // red may be in use by a previous call
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = m;
  __syncthreads();
  m = red[0];
  for (int i = 1; i < (int)(blockDim.x >> 5); ++i) m = fmaxf(m, red[i]);
  return m;
}

// AMAX_CTAS CTAs, grid-stride: out[cta] = the max of the finite |x| it saw.
__device__ __forceinline__ void amax(const float* __restrict__ x, float* __restrict__ out, int M, int K) {
  float m = 0.f;
  const size_t n = (size_t)M * K;
  const float4* x4 = reinterpret_cast<const float4*>(x);
  const bool vec = ((uintptr_t)x & 15) == 0;
  const size_t n4 = vec ? n / 4 : 0;
  auto take = [&](float v) { v = fabsf(v); if (v <= 3.402823466e38f) m = fmaxf(m, v); };
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n4; i += (size_t)gridDim.x * blockDim.x) {
    const float4 v = __ldg(x4 + i);
    take(v.x); take(v.y); take(v.z); take(v.w);
  }
  for (size_t i = 4 * n4 + (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    take(x[i]);
  m = cta_max(m);
  if (threadIdx.x == 0) out[blockIdx.x] = m;
}

// {S_enc, S_dec} of numerics.nv_tensor_scale from amax's partial maxima (all threads of a CTA call it):
// S_enc = num / amax (num = F::TS_NUM: max scale x max element; 1 if amax is 0 or S_enc not finite),
// S_dec = 1 / S_enc.
__device__ __forceinline__ float2 tensor_scale(const float* __restrict__ partial, float num) {
  const float m = cta_max(threadIdx.x < AMAX_CTAS ? partial[threadIdx.x] : 0.f);
  float enc = __fdiv_rn(num, m);
  if (!(m > 0.f) || !(enc <= 3.402823466e38f)) enc = 1.f;
  return make_float2(enc, __fdiv_rn(1.f, enc));
}

// ---------------------------------------------------------------- the epilogue (shared)
// One call per output element (not inlined: the activation functions would be unrolled per register).
__device__ __noinline__ float epilogue_call(float v, int epi) { return epilogue(v, epi); }
// v, or the activation epi of v (the call skipped when there is none).
__device__ __forceinline__ float activate(float v, int epi) { return epi ? epilogue_call(v, epi) : v; }

template <bool BIAS>
__device__ __forceinline__ void put(float v, float scale, const float* __restrict__ bias, float* __restrict__ y,
                                    int m, int n, int M, int N, int epi) {
  if (m < M && n < N) {
    v *= scale;
    if (BIAS) v += bias[n];
    y[(size_t)m * N + n] = activate(v, epi);
  }
}

// ---------------------------------------------------------------- the kernel body
// Shared memory: STAGES x [A tile | A scales | W tile | W scales], then (when the atom decodes)
// the bf16 tiles of A and W, then the barriers. The atom (Sm90 or Sm100, in mxc_bs_sm*.cuh):
//   Atom::template Ctx<FA, UA, FB, UB>  per-CTA state (accumulator, tensor memory)
//   ctx.init(scratch) before the CTA barrier, ctx.ready() after it, ctx.step(stage pointers, kt,
//   release barrier, last barrier) per K tile, ctx.finish(done barrier, put)
template <class FA, int UA, class FB, int UB>
struct Smem {
  using A = Op<FA, UA>;
  using B = Op<FB, UB>;
  static constexpr int STAGE = A::STAGE + B::STAGE;
  static constexpr int DEC = BM * 256;  // one bf16 tile (mxc.kernels.Kernel.smem adds up the whole layout)
};

template <template <class, int, class, int> class Atom, class FA, int UA, class FB, int UB, bool BIAS>
__device__ __forceinline__ void gemm(const uint8_t* __restrict__ a, const uint8_t* __restrict__ as,
                                     const float* __restrict__ ats, const uint8_t* __restrict__ w,
                                     const uint8_t* __restrict__ ws, const float* __restrict__ wts,
                                     const float* __restrict__ bias, float* __restrict__ y, int M, int N, int K,
                                     int epi) {
  extern __shared__ __align__(1024) uint8_t smem[];
  using S = Smem<FA, UA, FB, UB>;
  using A = typename S::A;
  using B = typename S::B;
  using At = Atom<FA, UA, FB, UB>;
  const int t = threadIdx.x;
  const int KT = (K + BK - 1) / BK, mt = blockIdx.y, nt = blockIdx.x;
  const uint8_t* ga = a + (size_t)mt * KT * A::TILE;
  const uint8_t* gas = A::SCALED ? as + (size_t)mt * KT * A::SBYTES : nullptr;
  const uint8_t* gw = w + (size_t)nt * KT * B::TILE;
  const uint8_t* gws = ws + (size_t)nt * KT * B::SBYTES;
  uint8_t* const dec = smem + STAGES * S::STAGE;
  uint64_t* const bars = reinterpret_cast<uint64_t*>(dec + (At::DECODES ? 2 * S::DEC : 0));
  const uint32_t full0 = smem_u32(bars), empty0 = full0 + 8 * STAGES, done = full0 + 16 * STAGES;
  if ((((uintptr_t)a) | ((uintptr_t)w) | ((uintptr_t)as) | ((uintptr_t)ws)) & 15) {
    // no printf: a call in a wgmma kernel makes ptxas serialize its wgmma pipeline (C7510)
    __trap();
  }
  At ctx;
  ctx.init(smem_u32(bars + 2 * STAGES + 1));  // the atom's barrier and tensor memory (sm_100a)
  if (t == 0) {
    for (int s = 0; s < STAGES; ++s) {
      mbar_init(full0 + 8 * s, 1);
      mbar_init(empty0 + 8 * s, 1);
    }
    mbar_init(done, 1);
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");  // visible to the async proxy
  }
  __syncthreads();
  ctx.ready();  // reads what init wrote (the tensor-memory address)

  auto stage = [&](int s) { return smem + s * S::STAGE; };
  auto issue = [&](int kt) {  // thread 0: one bulk copy per tile and per scale run
    const int s = kt % STAGES;
    uint8_t* p = stage(s);
    const uint32_t bar = full0 + 8 * s;
    mbar_expect_tx(bar, S::STAGE);
    bulk_load(smem_u32(p), ga + (size_t)kt * A::TILE, A::TILE, bar);
    if (A::SCALED) bulk_load(smem_u32(p + A::TILE), gas + (size_t)kt * A::SBYTES, A::SBYTES, bar);
    bulk_load(smem_u32(p + A::STAGE), gw + (size_t)kt * B::TILE, B::TILE, bar);
    bulk_load(smem_u32(p + A::STAGE + B::TILE), gws + (size_t)kt * B::SBYTES, B::SBYTES, bar);
  };
  if (t == 0)
    for (int kt = 0; kt < min(KT, STAGES); ++kt) issue(kt);

  for (int kt = 0; kt < KT; ++kt) {
    const int s = kt % STAGES, phase = (kt / STAGES) & 1;
    mbar_wait(full0 + 8 * s, phase);
    uint8_t* p = stage(s);
    ctx.step(p, p + A::TILE, p + A::STAGE, p + A::STAGE + B::TILE, dec, kt, empty0 + 8 * s,
             kt == KT - 1 ? done : 0u);
    if (t == 0 && kt + STAGES < KT) {
      mbar_wait(empty0 + 8 * s, phase);  // the MMAs that read slot s are done
      issue(kt + STAGES);
    }
  }
  float sa = 1.f;
  if constexpr (FA::TS) sa = tensor_scale(ats, FA::TS_NUM).y;  // S_dec of the activations, from amax's partials
  const float scale = sa * (FB::TS ? *wts : 1.f);
  ctx.finish(done, [&](float v, int r, int c) {
    put<BIAS>(v, scale, bias, y, mt * BM + r, nt * BN + c, M, N, epi);
  });
}

// ---------------------------------------------------------------- bsq: the activations

// Saturating round-to-nearest-even of |v| (finite) to a minifloat with EB/MB bits and bias: the code.
template <int EB, int MB, int BIAS>
__device__ __forceinline__ uint32_t encode_minifloat(float v) {
  constexpr int EMIN = 1 - BIAS;
  constexpr float MAXV = (float)((1 << (MB + 1)) - 1) * (float)(1ull << (((1 << EB) - 1 - BIAS) + 32)) /
                         (float)(1ull << (MB + 32));
  const uint32_t sign = (__float_as_uint(v) >> 31) << (EB + MB);  // -0 keeps its sign, as numerics does
  const float a = fabsf(v);
  const int e = a == 0.f ? EMIN : max(ilogbf(a), EMIN);
  const float q = __int_as_float((e - MB + 127) << 23);  // the quantum at a's binade (exact power of two)
  const float r = fminf(rintf(a / q) * q, MAXV);
  if (r == 0.f) return sign;
  const int er = max(ilogbf(r), EMIN);
  const uint32_t mant = (uint32_t)(r / __int_as_float((er - MB + 127) << 23));  // significand, exact
  const uint32_t code = r < __int_as_float((EMIN + 127) << 23) ? mant : (((uint32_t)(er + BIAS) << MB) | (mant - (1u << MB)));
  return sign | code;
}

struct Fp8E4M3 {
  __device__ static __forceinline__ uint32_t encode(float v) { return __nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E4M3); }
};
struct Fp8E5M2 {
  __device__ static __forceinline__ uint32_t encode(float v) { return __nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E5M2); }
};
template <int EB, int MB, int BIAS>
struct Mini {
  __device__ static __forceinline__ uint32_t encode(float v) { return encode_minifloat<EB, MB, BIAS>(v); }
};

// OCP MX (numerics._quantize_mx, scale_rule=floor, rounding=rne): e = clamp(floor(log2 amax) - emax,
// -127, 127), -127 for a zero block; codes = saturating RNE of x * 2^-e; NaN/Inf blocks: 0xFF, zero codes.
template <int EMAX, class Enc>
struct QMx {
  static constexpr int BS = 32;
  __device__ static __forceinline__ void quantize(const float* v, float amax, bool special, const float*, uint32_t& sc,
                                                  uint32_t* c) {
    const int e = amax == 0.f ? -127 : max(-127, min(127, ilogbf(amax) - EMAX));
    const float inv = e < 127 ? __int_as_float((127 - e) << 23) : __int_as_float(0x00400000);  // 2^-e, exact
#pragma unroll
    for (int j = 0; j < BS; ++j) c[j] = special ? 0u : Enc::encode(v[j] * inv);
    sc = special ? 0xFF : (uint32_t)(e + 127);
  }
};

// One NVFP4 block candidate (numerics._candidate): s = UE4M3(amax / target * S_enc), codes = RNE(x * (1 /
// (s * S_dec))), zero codes where s is 0; ts = {S_enc, S_dec}. ERR: also its squared error against x,
// summed left to right (numerics.block_error, mse), products and sums rounded one by one (__fmul_rn,
// __fadd_rn: no FMA), NaN terms read 0 (numerics.product).
template <bool ERR>
__device__ __forceinline__ float nv_candidate(const float* v, float amax, float target, const float* ts, uint32_t& s,
                                              uint32_t* c) {
  constexpr int BS = 16;
  s = __nv_cvt_float_to_fp8(__fdiv_rn(amax, target) * ts[0], __NV_SATFINITE, __NV_E4M3);
  const float sd = minifloat<4, 3, 7, false, false, 0x7F>(s) * ts[1];
  const float inv = __fdiv_rn(1.f, sd);
  float err = 0.f;
#pragma unroll
  for (int j = 0; j < BS; ++j) {
    c[j] = s == 0 ? 0u : encode_minifloat<2, 1, 1>(v[j] * inv);
    if constexpr (ERR) {
      float deq = __fmul_rn(s == 0 ? 0.f : minifloat<2, 1, 1, true, false, -1>(c[j]), sd);
      deq = deq != deq ? 0.f : deq;
      const float d = __fsub_rn(deq, v[j]);
      const float t = __fmul_rn(d, d);
      err = __fadd_rn(err, t != t ? 0.f : t);
    }
  }
  return err;
}

// NaN/Inf blocks (both NV quantizers): the scale's NaN code (0x7F), zero codes.
__device__ __forceinline__ void nv_special(uint32_t& sc, uint32_t* c) {
  sc = 0x7F;
#pragma unroll
  for (int j = 0; j < 16; ++j) c[j] = 0;
}

// NVFP4 (numerics._quantize_nv): the map-6 candidate.
struct QNv {
  static constexpr int BS = 16;
  __device__ static __forceinline__ void quantize(const float* v, float amax, bool special, const float* ts,
                                                  uint32_t& sc, uint32_t* c) {
    nv_candidate<false>(v, amax, 6.f, ts, sc, c);
    if (special) nv_special(sc, c);
  }
};

// Four Over Six (numerics._quantize_nv, choice 4over6, error_metric mse): the map-4 candidate (target 4)
// where its squared error is strictly smaller than the map-6 one's.
struct QNv46 {
  static constexpr int BS = 16;
  __device__ static __forceinline__ void quantize(const float* v, float amax, bool special, const float* ts,
                                                  uint32_t& sc, uint32_t* c) {
    uint32_t s4, c4[BS];
    const float e6 = nv_candidate<true>(v, amax, 6.f, ts, sc, c);
    const float e4 = nv_candidate<true>(v, amax, 4.f, ts, s4, c4);
    if (e4 < e6) {
      sc = s4;
#pragma unroll
      for (int j = 0; j < BS; ++j) c[j] = c4[j];
    }
    if (special) nv_special(sc, c);
  }
};

// One thread per (row, block) of the padded [Mp, Kp] operand: codes into the tile layout, the scale
// into its 128x4 chunk; rows >= M and columns >= K are zero codes with the scale of 1.
template <class E, class F, int UE>
__device__ __forceinline__ void bsq(const float* __restrict__ x, uint8_t* __restrict__ codes,
                                    uint8_t* __restrict__ scales, const float* __restrict__ ts, int M, int K) {
  using O = Op<F, UE>;
  constexpr int BS = F::BS;
  const int KT = (K + BK - 1) / BK, Mp = (M + BM - 1) / BM * BM, nb = KT * BK / BS;
  float ts2[2] = {1.f, 1.f};
  if (ts != nullptr) {  // before any thread returns: the whole CTA reduces the partial maxima
    const float2 t = tensor_scale(ts, F::TS_NUM);
    ts2[0] = t.x; ts2[1] = t.y;
  }
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= Mp * nb) return;
  const int m = i / nb, b = i % nb, kt = (b * BS) / BK, rt = m / BM, r = m % BM;
  float v[BS];
  float amax = 0.f;
  bool special = false;
#pragma unroll
  for (int j = 0; j < BS; ++j) {
    const int k = BS * b + j;
    v[j] = (m < M && k < K) ? x[(size_t)m * K + k] : 0.f;
    const float av = fabsf(v[j]);
    special |= !(av <= 3.402823466e38f);
    amax = fmaxf(amax, av);
  }
  uint32_t sc, c[BS];
  E::quantize(v, amax, special, ts2, sc, c);
  uint8_t* tile = codes + ((size_t)rt * KT + kt) * O::TILE;
  const int kb = (b * BS) % BK;
#pragma unroll
  for (int j0 = 0; j0 < BS; j0 += UE < BS ? UE : BS) {  // the units this block fills
    constexpr int N = UE < BS ? UE : BS;
    uint8_t* unit = tile + O::unit_off(r, kb + j0);
    const int i0 = (kb + j0) % UE;
    if constexpr (F::BITS == 8) {
#pragma unroll
      for (int j = 0; j < N; ++j) unit[i0 + j] = (uint8_t)c[j0 + j];
    } else if constexpr (F::BITS == 4) {
#pragma unroll
      for (int j = 0; j < N; j += 2) unit[(i0 + j) >> 1] = (uint8_t)(c[j0 + j] | (c[j0 + j + 1] << 4));
    } else {
#pragma unroll
      for (int j = 0; j < N; j += 4) {
        const uint32_t wv = c[j0 + j] | (c[j0 + j + 1] << 6) | (c[j0 + j + 2] << 12) | (c[j0 + j + 3] << 18);
        uint8_t* o = unit + (i0 + j) / 4 * 3;
        o[0] = wv & 0xFF; o[1] = (wv >> 8) & 0xFF; o[2] = wv >> 16;
      }
    }
    if (i0 + N == UE) {  // the unit's last element: zero its padding bytes
      for (int q = UE * F::BITS / 8; q < 16; ++q) unit[q] = 0;
    }
  }
  scales[((size_t)rt * KT + kt) * O::SBYTES + O::scale_off(r, (kb / BS))] = (uint8_t)sc;
}

// x f32 [M, K] -> bf16 tiles (RNE), one thread per unit of 8; padding zero.
__device__ __forceinline__ void bsq_bf16(const float* __restrict__ x, uint8_t* __restrict__ out, int M, int K) {
  using O = Op<BF16, 8>;
  const int KT = (K + BK - 1) / BK, Mp = (M + BM - 1) / BM * BM, nu = KT * BK / 8;
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= Mp * nu) return;
  const int m = i / nu, k0 = (i % nu) * 8, rt = m / BM, r = m % BM, kt = k0 / BK;
  float v[8];
#pragma unroll
  for (int j = 0; j < 8; ++j) v[j] = (m < M && k0 + j < K) ? x[(size_t)m * K + k0 + j] : 0.f;
  *reinterpret_cast<uint4*>(out + ((size_t)rt * KT + kt) * O::TILE + O::unit_off(r, k0 % BK)) =
      make_uint4(pack_bf16(v[0], v[1]), pack_bf16(v[2], v[3]), pack_bf16(v[4], v[5]), pack_bf16(v[6], v[7]));
}

}  // namespace bs
}  // namespace mxc

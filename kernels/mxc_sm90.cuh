// mxc's CUDA kernels for Hopper (sm_90a), embedded in IREE artifacts as custom dispatches.
//
// IREE's CUDA ABI (DESIGN.md §4): buffer pointers in binding order, then 32-bit
// constants; the extern "C" wrappers that mxc.kernels generates for the variants a
// model needs follow it. Number formats come in as structs generated from
// mxc.numerics.formats (`F::BITS`, `F::BS`, `F::elem`, `F::scale`), so the decode
// here has one source of truth, and tests compare it with numerics.decode_table
// code by code.
//
//   gemv    weight-only, M <= 16: weights decoded in registers, f32 activations,
//           f32 FMA; equal to the CPU target up to the order of the f32 sum
//           (cuda-sm100's decode kernel; cuda-sm90 takes dec).
//   dec     weight-only, M <= 16, on the tensor cores: weights in fragment tiles
//           decoded in registers to bf16 (exact; IF4's INT blocks rounded), bf16
//           activations, mma.sync m16n8k16 (HMMA), f32 accumulators; R weight row
//           tiles per CTA share each load of the activations.
//   decs    dec split along K across CTAs (M <= 16, large N x K): the CTA's warps take different
//           weight rows over one K range, whose activations it stages once as bf16 in shared
//           memory; the CTAs of a row group sum their partials in a thread-block cluster (CL) or
//           write them to a workspace that `dsum` adds; then the bias and the epilogue.
//   dec1    dec at M = 1 (the decode step): x staged once per warp as bf16 in shared
//           memory, a ring of weight tiles in flight per warp, one wave of CTAs with
//           equal shares of the row tiles; E2M1 and FP8 decoded by integer ops, IF4 and NVINT4 by table lookups.
//   dec1b   dec1 with the weights moved by bulk copies (one producer thread) into a ring of shared-memory
//           stages, decoded by the consumer warps as dec1 does (mxc_sm90_prefill.cuh); cuda-sm90's M = 1
//           kernel where kinds.use_dec1b says.
//   rdec    weight-only (and MXFP8 x MXFP8 after tileq), M >= 17: the fragment tiles decoded in
//           registers into wgmma's A operand, warp-specialized (mxc_sm90_prefill.cuh).
#pragma once
#include <cuda_bf16.h>
#include <cooperative_groups.h>
#include <cuda_fp8.h>
#include <stdint.h>
#include <type_traits>

namespace mxc {

// ---------------------------------------------------------------- decode
// A minifloat code -> float32, exact: EB exponent bits, MB mantissa bits, bias,
// sign bit on top when SIGNED; HAS_INF: exponent all ones is Inf/NaN (IEEE-like);
// NAN_MAG >= 0: the magnitude code that is NaN (E4M3's 0x7F).
template <int EB, int MB, int BIAS, bool SIGNED, bool HAS_INF, int NAN_MAG>
__device__ __forceinline__ float minifloat(uint32_t c) {
  const uint32_t mag = c & ((1u << (EB + MB)) - 1);
  // The magnitude's bits placed at the bottom of a float32's exponent field read as value * 2^(BIAS-127)
  // (subnormal codes as float32 subnormals); one exact multiply by 2^(127-BIAS) rescales both.
  float v = __int_as_float(mag << (23 - MB)) * __int_as_float((254 - BIAS) << 23);
  if (HAS_INF && (mag >> MB) == (1u << EB) - 1) v = (mag & ((1u << MB) - 1)) ? __int_as_float(0x7fc00000)
                                                                             : __int_as_float(0x7f800000);
  if (NAN_MAG >= 0 && mag == (uint32_t)NAN_MAG) v = __int_as_float(0x7fc00000);
  if (SIGNED) v = __int_as_float(__float_as_int(v) | (((c >> (EB + MB)) & 1) << 31));
  return v;
}

// Two's complement BITS-bit integer code times 2^-MB.
template <int BITS, int MB>
__device__ __forceinline__ float intcode(uint32_t c) {
  const int q = ((int)(c << (32 - BITS))) >> (32 - BITS);
  return (float)q * __int_as_float((127 - MB) << 23);
}

// E8M0: 2^(c-127), 0xFF NaN, 0x00 = 2^-127 (a float32 subnormal).
__device__ __forceinline__ float e8m0(uint32_t c) {
  if (c == 0xFF) return __int_as_float(0x7fc00000);
  return c == 0 ? __int_as_float(0x00400000) : __int_as_float(c << 23);
}

// ---------------------------------------------------------------- memory
template <int BYTES>
struct Raw {
  uint32_t w[(BYTES + 3) / 4];
  __device__ __forceinline__ uint32_t byte(int j) const { return (w[j >> 2] >> (8 * (j & 3))) & 0xFF; }
};

// Load BYTES bytes (a multiple of 8) from p: vector loads when `vec`, bytes otherwise.
template <int BYTES>
__device__ __forceinline__ Raw<BYTES> load_bytes(const uint8_t* __restrict__ p, bool vec) {
  Raw<BYTES> r;
  if (vec) {
    if constexpr (BYTES % 16 == 0) {
#pragma unroll
      for (int i = 0; i < BYTES / 16; ++i) {
        uint4 v = __ldg(reinterpret_cast<const uint4*>(p) + i);
        r.w[4 * i] = v.x; r.w[4 * i + 1] = v.y; r.w[4 * i + 2] = v.z; r.w[4 * i + 3] = v.w;
      }
    } else {
#pragma unroll
      for (int i = 0; i < BYTES / 8; ++i) {
        uint2 v = __ldg(reinterpret_cast<const uint2*>(p) + i);
        r.w[2 * i] = v.x; r.w[2 * i + 1] = v.y;
      }
    }
  } else {
#pragma unroll
    for (int i = 0; i < (BYTES + 3) / 4; ++i) r.w[i] = 0;
#pragma unroll
    for (int j = 0; j < BYTES; ++j) r.w[j >> 2] |= (uint32_t)__ldg(p + j) << (8 * (j & 3));
  }
  return r;
}

// Code i of a block's bytes (4-bit: low nibble first; 6-bit: 4 codes per 3 bytes, little-endian).
template <int BITS, int BYTES>
__device__ __forceinline__ uint32_t code_at(const Raw<BYTES>& r, int i) {
  if constexpr (BITS == 8) return r.byte(i);
  else if constexpr (BITS == 4) return (r.byte(i >> 1) >> (4 * (i & 1))) & 0xF;
  else {
    const int g = i >> 2;
    const uint32_t w = r.byte(3 * g) | (r.byte(3 * g + 1) << 8) | (r.byte(3 * g + 2) << 16);
    return (w >> (6 * (i & 3))) & 0x3F;
  }
}

// A block's decoded weights, element times block scale (times the NV tensor scale when `ts` != 1):
// v[i] = F::elem(code_i, scode) * (F::scale(scode) * ts), the CPU target's f32 operations.
template <class F>
__device__ __forceinline__ void decode_block(const Raw<F::BS * F::BITS / 8>& r, uint32_t scode, float ts, float* v) {
  const float s = F::TS ? F::scale(scode) * ts : F::scale(scode);
#pragma unroll
  for (int i = 0; i < F::BS; ++i) v[i] = F::elem(code_at<F::BITS>(r, i), scode) * s;
}

// The fused epilogue, `epi` a run-time constant: 0 none, 1 relu, 2 gelu, 3 silu (lower-mxq-to-linalg's formulas).
__device__ __forceinline__ float epilogue(float v, int epi) {
  if (epi == 1) return v > 0.f ? v : (v == v ? 0.f : v);  // relu (NaN propagates, as maximumf)
  if (epi == 2) return (v * 0.5f) * (1.f + erff(v * 0.7071067811865476f));  // gelu
  if (epi == 3) return v / (1.f + expf(-v));  // silu
  return v;
}

// ---------------------------------------------------------------- gemv (M <= 16)
// One warp per R output columns n; lanes stride over the K blocks; MT = rows of x per pass.
template <class F, int MT, int R, bool BIAS>
__device__ __forceinline__ void gemv(const float* __restrict__ x, const uint8_t* __restrict__ w,
                                     const uint8_t* __restrict__ s, const float* __restrict__ tsp,
                                     const float* __restrict__ bias, float* __restrict__ y, int M, int N, int K, int epi) {
  constexpr int BS = F::BS, BYTES = BS * F::BITS / 8, VA = (BYTES % 16 == 0) ? 16 : 8;
  constexpr int U = MT == 1 ? 4 : 1;  // blocks per lane per step (decode shapes: more bytes in flight)
  const int nb = (K + BS - 1) / BS;
  const size_t row_bytes = (size_t)nb * BYTES;
  const int warp = (int)((blockIdx.x * blockDim.x + threadIdx.x) >> 5), lane = threadIdx.x & 31;
  const int n0 = warp * R;
  if (n0 >= N) return;
  const float ts = F::TS ? *tsp : 1.f;
  const bool wvec = ((uintptr_t)w % VA) == 0;
  const bool xvec = (K % 4 == 0) && ((uintptr_t)x % 16) == 0;
  for (int m0 = 0; m0 < M; m0 += MT) {
    float acc[MT][R];
#pragma unroll
    for (int mm = 0; mm < MT; ++mm)
#pragma unroll
      for (int r = 0; r < R; ++r) acc[mm][r] = 0.f;
#pragma unroll 1
    for (int b0 = lane; b0 < nb; b0 += 32 * U) {
      // The raw bytes of U blocks x R rows first: U*R independent 8-16 byte loads in flight per lane.
      Raw<BYTES> raw[U][R];
      uint32_t sc[U][R];
#pragma unroll
      for (int u = 0; u < U; ++u)
#pragma unroll
        for (int r = 0; r < R; ++r) {
          const int b = b0 + 32 * u, n = min(n0 + r, N - 1);  // rows past N compute garbage never stored
          if (b < nb) {
            raw[u][r] = load_bytes<BYTES>(w + n * row_bytes + (size_t)b * BYTES, wvec);
            sc[u][r] = __ldg(s + (size_t)n * nb + b);
          }
        }
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int b = b0 + 32 * u;
        if (b >= nb) continue;
        float wv[R][BS];
#pragma unroll
        for (int r = 0; r < R; ++r) decode_block<F>(raw[u][r], sc[u][r], ts, wv[r]);
        const int k0 = b * BS;
#pragma unroll
        for (int mm = 0; mm < MT; ++mm) {
          if (m0 + mm >= M) continue;  // (a break would stop the unrolling: acc[] to local memory)
          const float* xr = x + (size_t)(m0 + mm) * K + k0;
#pragma unroll
          for (int i = 0; i < BS; i += 4) {
            float4 xv;
            if (xvec && k0 + i + 3 < K) {
              xv = __ldg(reinterpret_cast<const float4*>(xr + i));
            } else {
              xv.x = k0 + i < K ? __ldg(xr + i) : 0.f;
              xv.y = k0 + i + 1 < K ? __ldg(xr + i + 1) : 0.f;
              xv.z = k0 + i + 2 < K ? __ldg(xr + i + 2) : 0.f;
              xv.w = k0 + i + 3 < K ? __ldg(xr + i + 3) : 0.f;
            }
#pragma unroll
            for (int r = 0; r < R; ++r) {
              acc[mm][r] = fmaf(xv.x, wv[r][i], acc[mm][r]);
              acc[mm][r] = fmaf(xv.y, wv[r][i + 1], acc[mm][r]);
              acc[mm][r] = fmaf(xv.z, wv[r][i + 2], acc[mm][r]);
              acc[mm][r] = fmaf(xv.w, wv[r][i + 3], acc[mm][r]);
            }
          }
        }
      }
    }
#pragma unroll
    for (int mm = 0; mm < MT; ++mm) {
#pragma unroll
      for (int r = 0; r < R; ++r) {
        float v = acc[mm][r];
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        const int n = n0 + r;
        if (lane == (mm * R + r) % 32 && m0 + mm < M && n < N) {
          if (BIAS) v += bias[n];
          y[(size_t)(m0 + mm) * N + n] = epilogue(v, epi);
        }
      }
    }
  }
}

__device__ __forceinline__ uint32_t pack_bf16(float a, float b) {
  __nv_bfloat162 h = __floats2bfloat162_rn(a, b);  // .x = a (low half)
  return *reinterpret_cast<uint32_t*>(&h);
}

// ---------------------------------------------------------------- dec (M <= 16, mma.sync)
// Weights in fragment tiles of 16 rows x 64 K (mxc.kernels.layouts, "fragment tiles"): lane L
// (g = L/4, t = L%4) of a warp reads its 32 codes of a tile with one load: rows g and g+8, K
// 16t..16t+15, code 8s+p being MMA step s's A register p%4, half p/4. Inside a tile K is permuted
// alike for both operands (step s multiplies K 16t+4s..16t+4s+3 of lane t), so each lane's
// activations are 16 consecutive values and its scales one per row per tile.
__device__ __forceinline__ void mma_bf16_16816(float* d, const uint32_t* a, uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t bf16x2_mul(uint32_t a, uint32_t b) {
  __nv_bfloat162 r = __hmul2(*reinterpret_cast<__nv_bfloat162*>(&a), *reinterpret_cast<__nv_bfloat162*>(&b));
  return *reinterpret_cast<uint32_t*>(&r);
}

// E2M1 codes to bf16 bits holding the value times 2^-126 (E2M1's subnormal included): a step's word
// is bit-scattered (mxc.kernels.layouts.E2M1_BITS) so that its 8 codes take 9 operations: 7 on the ALU
// (LOP3 masks, SHF.L.W rotations), 2 left shifts that ptxas may issue to the FMA pipe (IMAD.SHL).
__device__ __forceinline__ void e2m1_bits(uint32_t w, uint32_t* r) {
  constexpr uint32_t M = 0x81C081C0u;
  r[0] = (w & 0x80C080C0u) | ((w << 8) & 0x01000100u);
  r[1] = (w << 4) & M;
  r[2] = __funnelshift_l(w, w, 10) & M;
  r[3] = __funnelshift_l(w, w, 14) & M;
}

// The dec kernel's bf16x2 factor of a scale code (a table in shared memory, one entry per code), for
// E2M1 formats: bits x factor is element x scale, exactly (<= 6 significant bits), or its 2^-16.
//   E8M0: 2^(c-1) (bits are value x 2^-126) for c <= 128; 0 marks the codes whose 2^(c-1) bf16 cannot
//         hold (those blocks take 2^126 and 2^(c-127) in two multiplies).
//   UE4M3 / UE5M3 (<= 2^16): scale x 2^110, so the products are element x scale x 2^-16 (x 2^16 after the sum).
//   FP8 and FP6 elements (F8, FP6; E8M0 scales): 2^(c-bias) (bits are value x 2^(bias-127)); 0 past bf16's
//         range (F8_BIAS: the element's bias).
template <class F>
__device__ __forceinline__ uint32_t dec_factor(uint32_t c) {
  if constexpr (F::F8 || F::FP6) return c <= F::F8_BIAS + 127 ? ((c - F::F8_BIAS + 127) << 7) * 0x10001u : 0u;
  if constexpr (F::E8M0) return c <= 128 ? ((c + 126) << 7) * 0x10001u : 0u;
  const float f = F::scale(c) * __int_as_float((127 + 110) << 23);
  return pack_bf16(f, f);
}

// prmt.b32, default mode: byte n of the result is byte (sel >> 4n) & 7 of {b, a} (a's bytes 0..3, b's 4..7), or
// that byte's sign bit replicated when bit 4n + 3 is set; bits 16..31 of sel are not read. (__byte_perm masks
// sel with 0x7777 first, an instruction more where the compiler cannot fold the mask.)
__device__ __forceinline__ uint32_t prmt(uint32_t a, uint32_t b, uint32_t sel) {
  uint32_t r;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(sel));
  return r;
}

// The table of a TAB4 format (IF4, NVINT4) for scale byte c (IF4's FP and INT blocks alike): the bf16 bits of
// F::elem(m, c) x F::scale(c), the values of codes of magnitude m = 0..7 (E2M1's in an IF4 FP block, m x 6/7
// in an IF4 INT block, m in NVINT4, times the scale), computed by the float decode's own operations, so that
// the table decode equals it bit for bit (a code's value is its magnitude's with the sign flipped for a
// negative code: the float operations and RNE are sign-symmetric, also for NVINT4's negative scale bytes
// >= 0x80 and a zero scale's signed zeros). As four words of bytes
// for prmt: {low bytes of m = 0..3, low bytes of 4..7, high bytes of 0..3, high bytes of 4..7}.
template <class F>
__device__ __forceinline__ uint4 if4_table(uint32_t c) {
  const float s = F::scale(c);
  uint32_t p[4];  // p[i]: magnitudes 2i (low half), 2i + 1 (high half)
#pragma unroll
  for (int i = 0; i < 4; ++i) p[i] = pack_bf16(F::elem(2 * i, c) * s, F::elem(2 * i + 1, c) * s);
  return make_uint4(__byte_perm(p[0], p[1], 0x6420), __byte_perm(p[2], p[3], 0x6420),
                    __byte_perm(p[0], p[1], 0x7531), __byte_perm(p[2], p[3], 0x7531));
}

// MXINT8's table entry for E8M0 scale byte c: {2^(c-133), -2^(c-126)} as bf16x2 factors of the FMA that turns
// bf16 128 + m (0x4300 | m, m = |q| in 0..127) into m x 2^-6 x 2^(c-127) exactly, for 7 <= c <= 253 (both
// factors and every nonzero result bf16 normals); {0, 0} marks the other bytes (c < 7: subnormal results,
// c = 254: -2^128, c = 255: NaN), whose tiles take the float decode.
template <class F>
__device__ __forceinline__ uint2 int8_factors(uint32_t c) {
  if (c < 7 || c > 253) return make_uint2(0u, 0u);
  return make_uint2(((c - 6) << 7) * 0x10001u, (0x8000u | ((c + 1) << 7)) * 0x10001u);
}

__device__ __forceinline__ uint32_t bf16x2_fma(uint32_t a, uint32_t b, uint32_t c) {
  __nv_bfloat162 r = __hfma2(*reinterpret_cast<__nv_bfloat162*>(&a), *reinterpret_cast<__nv_bfloat162*>(&b),
                             *reinterpret_cast<__nv_bfloat162*>(&c));
  return *reinterpret_cast<uint32_t*>(&r);
}

// FP6 (E2M3 E = 4, E3M2 E = 5) register K (0..15) of a fragment tile's 4 MMA steps (K = 4 x step + j) from a
// lane's 6 words in the FP6 layout (mxc.kernels.layouts.fp6_layout, which this mirrors): bf16 bits with the low
// code's magnitude at bits E..E+4 and sign at 15, the high code's at +16, read as value x 2^(bias-127). The
// magnitudes are field f = K % 3 of word K / 3 (bits 5f.., 16+5f..), shifted to E; the signs at bits 15 / 31 of
// the same word (f = 1) or at (q, q + 16) of word 5, shifted to 15; register 15 is word 5 & C. All constants.
template <int E, int K>
__device__ __forceinline__ uint32_t fp6_reg(const uint32_t* w) {
  constexpr uint32_t MAG = (0x1Fu << E) * 0x10001u, SGN = 0x80008000u;
  if constexpr (K == 15) {
    return w[5] & (MAG | SGN);
  } else {
    constexpr int word = K / 3, f = K % 3, ms = E - 5 * f;
    constexpr int idx = 2 * (K / 3) + (f == 2), q = f == 1 ? 15 : (idx < E ? idx : idx + 5);
    constexpr int sw = f == 1 ? word : 5;
    const uint32_t x = ms >= 0 ? w[word] << (ms & 31) : w[word] >> ((-ms) & 31);
    const uint32_t y = w[sw] << (15 - q);
    return (x & MAG) | (y & SGN);
  }
}

// The dec kernels' shared table (one entry per scale code, built at the kernel's start): dec_factor's bf16x2
// factor (E2M1, FP8, FP6; 256 words), the TAB4 formats' (IF4, NVINT4) if4_table (1024 words, 16 bytes per
// scale byte) or MXINT8's int8_factors (512 words).
template <class F>
struct DecLut {
  static constexpr bool USED = F::E2M1 || F::F8 || F::FP6 || F::TAB4 || F::I8;
  static constexpr int WORDS = F::TAB4 ? 1024 : F::I8 ? 512 : 256;
};

template <class F>
__device__ __forceinline__ void dec_lut_fill(uint32_t* lut, uint32_t c) {
  if constexpr (F::TAB4) reinterpret_cast<uint4*>(lut)[c] = if4_table<F>(c);
  else if constexpr (F::I8) reinterpret_cast<uint2*>(lut)[c] = int8_factors<F>(c);
  else if constexpr (F::E2M1 || F::F8 || F::FP6) lut[c] = dec_factor<F>(c);
}

// ---------------------------------------------------------------- dec1 (M = 1, mma.sync)
// The dec kernel for one row of x (the decode step of an LLM): the same fragment tiles, with
//   - x converted once per warp to bf16 in shared memory (the warp's K range, Dec1Ck at a time),
//     lane g's B column reading row 0 (columns 1..7 of the n8 tile are copies, never stored);
//   - a ring of U tiles' weights and scales in flight per warp, a slot refilled as its tile is used;
//   - CTAs that take `rpc` consecutive 16-row tiles each, rpc = ceil(row tiles / grid), the grid no
//     larger than the CTAs the GPU holds at once (kinds.Dec.grid): one wave, equal work per CTA;
//     the next row tile's first U loads are issued before the CTA's sum of the last.
template <int WARPS>
struct Dec1Ck { static constexpr int K = 16384 / WARPS; };  // K per staged chunk of x per warp: 32 KB of bf16 per CTA

// Eight float32 values of row xr from K position k into v: two vector loads where `vec` (K % 4 == 0, xr
// 16-byte aligned) and k + 8 <= K, else one load per value; zeros past K, and all zeros where !ok (a row past M).
__device__ __forceinline__ void ld_x8(const float* __restrict__ xr, int k, int K, bool vec, bool ok, float* v) {
  if (ok && vec && k + 8 <= K) {
    const float4 a = __ldg(reinterpret_cast<const float4*>(xr + k)), b = __ldg(reinterpret_cast<const float4*>(xr + k) + 1);
    v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
    v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
  } else {
#pragma unroll
    for (int c = 0; c < 8; ++c) v[c] = (ok && k + c < K) ? __ldg(xr + k + c) : 0.f;
  }
}

// Eight values as bf16 (RNE) by one 16-byte store at p.
__device__ __forceinline__ void st_bf16x8(void* p, const float* v) {
  *reinterpret_cast<uint4*>(p) = make_uint4(pack_bf16(v[0], v[1]), pack_bf16(v[2], v[3]), pack_bf16(v[4], v[5]),
                                            pack_bf16(v[6], v[7]));
}

// x row m, K [kb, kb + klen) (float32) -> bf16 (RNE) in xs[0 .. klen), zeros past K; 8 values per lane
// and item, SI items' loads in flight.
template <int SI>
__device__ __forceinline__ void dec_stage(const float* __restrict__ xr, __nv_bfloat16* xs, int kb, int klen, int K,
                                          bool xvec, int lane) {
  const int items = klen >> 3;
  for (int i0 = 0; i0 < items; i0 += 32 * SI) {
    float v[SI][8];
#pragma unroll
    for (int j = 0; j < SI; ++j) {
      if (i0 + 32 * j + lane < items) ld_x8(xr, kb + 8 * (i0 + 32 * j + lane), K, xvec, true, v[j]);
    }
#pragma unroll
    for (int j = 0; j < SI; ++j) {
      const int it = i0 + 32 * j + lane;
      if (it < items) st_bf16x8(xs + 8 * it, v[j]);
    }
  }
}

// MMA step st of a fragment tile on NT n8 tiles of activations.
template <int NT>
__device__ __forceinline__ void mma_n(float (*acc)[4], const uint32_t* a, const uint32_t (*xb)[8], int st) {
#pragma unroll
  for (int i = 0; i < NT; ++i) mma_bf16_16816(acc[i], a, xb[i][2 * st], xb[i][2 * st + 1]);
}

// The bf16 factors that turn a fragment's bits, read as value x 2^(BIAS-127), into value x scale for the
// scale codes sc of rows g, g+8: fb = the lut's 2^(c-BIAS); where bf16 cannot hold that (lut entry 0;
// CHECK: the scale encoding has such codes) the warp takes two multiplies, 2^(127-BIAS) then the scale
// itself (f2; 1.0 elsewhere). Returns whether it does (warp-uniform). f2 is set only where it does, and
// read only there when the steps are compiled per case (SPLIT: with_two); else it is set always.
template <class F, uint32_t BIAS, bool CHECK = true, bool SPLIT = true>
__device__ __forceinline__ bool scale_factors(const uint32_t sc[2], const uint32_t* lut, uint32_t fb[2],
                                              uint32_t f2[2]) {
  fb[0] = lut[sc[0]];
  fb[1] = lut[sc[1]];
  if constexpr (!SPLIT) f2[0] = f2[1] = 0x3F803F80u;  // bf16 1.0
  bool two = false;
  if constexpr (CHECK) two = __any_sync(0xffffffffu, fb[0] == 0u || fb[1] == 0u);
  if (two) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float sf = F::scale(sc[r]);
      f2[r] = fb[r] ? 0x3F803F80u : pack_bf16(sf, sf);
      fb[r] = fb[r] ? fb[r] : ((254u - BIAS) << 7) * 0x10001u;
    }
  }
  return two;
}

// a[j] x the factors of its row (scale_factors): one bf16 multiply, two where `two` (a compile-time
// std::bool_constant from with_two, or a runtime bool).
template <bool TWO>
__device__ __forceinline__ void scale_regs(uint32_t a[4], const uint32_t fb[2], const uint32_t f2[2],
                                           std::bool_constant<TWO>) {
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    a[j] = bf16x2_mul(a[j], fb[j & 1]);
    if constexpr (TWO) a[j] = bf16x2_mul(a[j], f2[j & 1]);
  }
}
__device__ __forceinline__ void scale_regs(uint32_t a[4], const uint32_t fb[2], const uint32_t f2[2], bool two) {
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    a[j] = bf16x2_mul(a[j], fb[j & 1]);
    if (two) a[j] = bf16x2_mul(a[j], f2[j & 1]);
  }
}

// body(two): with SPLIT, body(std::bool_constant<two>), the fragment tile's steps compiled once per case, so
// that the common one (one multiply) carries no predicated second multiplies (ptxas if-converts a runtime
// `two` inside the steps into 16 predicated HMUL2 per tile, which issue whether or not they run); without
// (dec1's FP8, where the second copy costs a spilled register), body(two) with the runtime bool.
template <bool SPLIT, class Body>
__device__ __forceinline__ void with_two(bool two, Body&& body) {
  if constexpr (SPLIT) {
    if (two)
      body(std::true_type{});
    else
      body(std::false_type{});
  } else {
    body(two);
  }
}

// One fragment tile's lane codes decoded to bf16 A fragments: mma(st, a) for each of its 4 MMA steps st,
// a = the step's four A registers (rows g, g+8 as in mma.sync's and wgmma's A layout). The codes and sc2
// (the scale codes of rows g, g+8) as the fragment tile holds them; lut: the DecLut table.
// DIAG 2 (a measurement variant): the raw words as A, no decode.
template <class F, int DIAG, bool SPLIT = true, class MMA>
__device__ __forceinline__ void frag_steps(const Raw<32 * F::BITS / 8>& raw, uint32_t sc2, const uint32_t* lut,
                                           MMA&& mma) {
  const uint32_t sc[2] = {sc2 & 0xFF, (sc2 >> 8) & 0xFF};
  if constexpr (DIAG == 2) {
#pragma unroll
    for (int st = 0; st < 4; ++st) {
      const uint32_t a[4] = {raw.w[st] & 0x3F3F3F3Fu, (raw.w[st] >> 2) & 0x3F3F3F3Fu, sc[0], sc[1]};
      mma(st, a);
    }
  } else if constexpr (F::F8) {
    // FP8 codes to bf16 bits by integer ops: the code's byte moved to bits 8..15 (PRMT), its sign kept
    // at bit 15, its magnitude shifted down so that its exponent lands on bf16's low exponent bits: the
    // bits read as value x 2^(bias-127), and one multiply by the lut's 2^(c-bias) makes value x scale.
    constexpr uint32_t MAG = (0x7Fu << (7 - F::F8_MB)) * 0x10001u;
    uint32_t fb[2], f2[2];
    with_two<SPLIT>(scale_factors<F, F::F8_BIAS, true, SPLIT>(sc, lut, fb, f2), [&](auto two) {
#pragma unroll
      for (int st = 0; st < 4; ++st) {
        uint32_t a[4];
#pragma unroll
        for (int j = 0; j < 4; ++j) {  // register j: code j (low half), code j + 4 (high half)
          const uint32_t h = __byte_perm(raw.w[2 * st], raw.w[2 * st + 1], (j << 4) | ((4 + j) << 12));
          a[j] = (h & 0x80008000u) | ((h >> (1 + F::F8_MB)) & MAG);
        }
        scale_regs(a, fb, f2, two);
        mma(st, a);
      }
    });
  } else if constexpr (F::E2M1) {
    uint32_t fb[2], f2[2];  // only an E8M0 scale can leave bf16 (2^(c-1) for c = 255: 2^126, then the scale)
    with_two<SPLIT>(scale_factors<F, 1, F::E8M0, SPLIT>(sc, lut, fb, f2), [&](auto two) {
#pragma unroll
      for (int st = 0; st < 4; ++st) {
        uint32_t a[4];
        e2m1_bits(raw.w[st], a);
        scale_regs(a, fb, f2, two);
        mma(st, a);
      }
    });
  } else if constexpr (F::FP6) {
    // FP6 (E2M3, E3M2) by integer ops on the FP6 layout (fp6_reg): each A register's bf16 pair read as
    // value x 2^(bias-127), one multiply by the lut's 2^(c-bias) makes value x scale (exact: <= 4 significant
    // bits); scales whose 2^(c-bias) bf16 cannot hold take 2^(127-bias), then the scale (FP8's `two`).
    constexpr int E = 7 - F::F8_MB;
    uint32_t fb[2], f2[2];
    with_two<SPLIT>(scale_factors<F, F::F8_BIAS, true, SPLIT>(sc, lut, fb, f2), [&](auto two) {
      auto step = [&](auto st_c) {
        constexpr int st = decltype(st_c)::value;
        uint32_t a[4] = {fp6_reg<E, 4 * st>(raw.w), fp6_reg<E, 4 * st + 1>(raw.w), fp6_reg<E, 4 * st + 2>(raw.w),
                         fp6_reg<E, 4 * st + 3>(raw.w)};
        scale_regs(a, fb, f2, two);
        mma(st, a);
      };
      step(std::integral_constant<int, 0>{});
      step(std::integral_constant<int, 1>{});
      step(std::integral_constant<int, 2>{});
      step(std::integral_constant<int, 3>{});
    });
  } else if constexpr (F::I8) {
    // MXINT8 (sign-magnitude bytes, mxc.kernels.layouts.int8_sign_magnitude; FP8's byte order): register j's
    // codes j and j + 4 each in both bytes of their half (PRMT), the magnitudes under bf16 128's exponent
    // (0x4300 | m: 128 + m exactly), one FMA by int8_factors makes m x 2^-6 x scale exactly, the signs
    // (bits 15, 31 of the PRMT) ORed in. A tile where any lane's scale byte has no factors (int8_factors)
    // takes the float decode of the same bytes (F::elem of the two's complement code, x F::scale).
    const uint2 fg = reinterpret_cast<const uint2*>(lut)[sc[0]], fh = reinterpret_cast<const uint2*>(lut)[sc[1]];
    const bool flt = __any_sync(0xffffffffu, fg.x == 0u || fh.x == 0u);
    const uint32_t mul[2] = {fg.x, fh.x}, add[2] = {fg.y, fh.y};
    if (flt) {
      const float sf[2] = {F::scale(sc[0]), F::scale(sc[1])};
#pragma unroll
      for (int st = 0; st < 4; ++st) {
        uint32_t a[4];
#pragma unroll
        for (int j = 0; j < 4; ++j) {  // bytes j, j + 4 of the step: sign-magnitude -> two's complement
          const uint32_t b0 = (raw.w[2 * st] >> (8 * j)) & 0xFFu, b1 = (raw.w[2 * st + 1] >> (8 * j)) & 0xFFu;
          const uint32_t q0 = (b0 & 0x80u) ? (0x100u - (b0 & 0x7Fu)) & 0xFFu : b0;
          const uint32_t q1 = (b1 & 0x80u) ? (0x100u - (b1 & 0x7Fu)) & 0xFFu : b1;
          a[j] = pack_bf16(F::elem(q0, sc[j & 1]) * sf[j & 1], F::elem(q1, sc[j & 1]) * sf[j & 1]);
        }
        mma(st, a);
      }
    } else {
#pragma unroll
      for (int st = 0; st < 4; ++st) {
        uint32_t a[4];
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const uint32_t h = prmt(raw.w[2 * st], raw.w[2 * st + 1], (j * 0x11u) | ((4 + j) * 0x1100u));
          a[j] = bf16x2_fma((h & 0x007F007Fu) | 0x43004300u, mul[j & 1], add[j & 1]) | (h & 0x80008000u);
        }
        mma(st, a);
      }
    }
  } else if constexpr (F::TAB4) {
    // IF4 and NVINT4 by table lookups (mxc.kernels.layouts.IF4_BITS): the step's word holds row g's magnitudes
    // in nibbles 0..3 (codes 0, 4, 2, 6: registers 0 and 2), row g + 8's in nibbles 4..7 (codes 1, 5, 3, 7),
    // their signs in the nibbles' top bits. z (and z >> 16) pick each code's low and high byte from its
    // row's table (prmt reads selector bits 0..15), the signs flip the high bytes' bit 7 (XOR: NVINT4's
    // table is negative for scale bytes >= 0x80; IF4's never is), and two prmt per row interleave low and
    // high bytes into the bf16 pairs: value = sign x table[magnitude].
    const uint4 tg = reinterpret_cast<const uint4*>(lut)[sc[0]], th = reinterpret_cast<const uint4*>(lut)[sc[1]];
#pragma unroll
    for (int st = 0; st < 4; ++st) {
      const uint32_t w = raw.w[st], z = w & 0x77777777u, zh = z >> 16;
      const uint32_t lg = prmt(tg.x, tg.y, z), hg = prmt(tg.z, tg.w, z) ^ (w & 0x80808080u);
      const uint32_t lh = prmt(th.x, th.y, zh), hh = prmt(th.z, th.w, zh) ^ ((w << 4) & 0x80808080u);
      const uint32_t a[4] = {prmt(lg, hg, 0x5140), prmt(lh, hh, 0x5140), prmt(lg, hg, 0x7362), prmt(lh, hh, 0x7362)};
      mma(st, a);
    }
  } else {
    const float sf[2] = {F::scale(sc[0]), F::scale(sc[1])};
#pragma unroll
    for (int st = 0; st < 4; ++st) {
      float v[8];
#pragma unroll
      for (int p = 0; p < 8; ++p) v[p] = F::elem(code_at<F::BITS>(raw, 8 * st + p), sc[p & 1]) * sf[p & 1];
      uint32_t a[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) a[j] = pack_bf16(v[j], v[j + 4]);
      mma(st, a);
    }
  }
}

// One fragment tile: its 4 MMA steps into acc, each on the NT n8 tiles of activations (xb[i]: lane g's
// column of tile i, its 16 K values as bf16 pairs).
// SPLIT: frag_steps' (with_two).
template <class F, int DIAG, int NT = 1, bool SPLIT = true>
__device__ __forceinline__ void dec_tile(float (*acc)[4], const Raw<32 * F::BITS / 8>& raw, uint32_t sc2,
                                         const uint32_t (*xb)[8], const uint32_t* lut) {
  frag_steps<F, DIAG, SPLIT>(raw, sc2, lut, [&](int st, const uint32_t* a) { mma_n<NT>(acc, a, xb, st); });
}

template <class F, bool BIAS, int U, bool VEC, int DIAG, int WARPS>
__device__ __forceinline__ void dec1_rows(const float* __restrict__ xr, const uint8_t* __restrict__ w,
                                          const uint8_t* __restrict__ s, const float* __restrict__ tsp,
                                          const float* __restrict__ bias, float* __restrict__ yr, int N, int K,
                                          int epi, int r0, int r1, const uint32_t* lut, __nv_bfloat16* xs,
                                          float (*red)[16]) {
  constexpr int LB = 32 * F::BITS / 8, NB = 64 / F::BS, CT = Dec1Ck<WARPS>::K / 64;
  static_assert(CT % U == 0, "a staged chunk holds whole batches of the ring");
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int KT = (K + 63) / 64, kt0 = warp * KT / WARPS, ntile = (warp + 1) * KT / WARPS - kt0;
  const size_t wrow = (size_t)KT * (32 * LB), srow = (size_t)KT * (16 * NB);
  const uint8_t* wb = w + (size_t)kt0 * (32 * LB) + lane * LB;
  const uint8_t* sb = s + (size_t)kt0 * (16 * NB) + 2 * (g * NB + 16 * t / F::BS);
  const bool xvec = (K % 4 == 0) && ((uintptr_t)xr % 16) == 0;
  const float post = (F::TS ? *tsp : 1.f) * ((F::E2M1 && !F::E8M0) ? 65536.f : 1.f);
  Raw<LB> ring[U];
  uint32_t rsc[U];
  auto load = [&](int u, const uint8_t* wp, const uint8_t* sp, int i) {
    ring[u] = load_bytes<LB>(wp + i * (32 * LB), VEC);
    rsc[u] = __ldg(reinterpret_cast<const unsigned short*>(sp + i * (16 * NB)));
  };
  const uint8_t* wp = wb + r0 * wrow;
  const uint8_t* sp = sb + r0 * srow;
#pragma unroll
  for (int u = 0; u < U; ++u)
    if (u < ntile) load(u, wp, sp, u);
  if constexpr (DIAG != 1) {
    dec_stage<2>(xr, xs, kt0 * 64, min(CT, ntile) * 64, K, xvec, lane);
    __syncwarp();
  }
  const int xo = 16 * t;  // lane t's 16 values of a tile's 64
#pragma unroll 1
  for (int rt = r0; rt < r1; ++rt) {
    float acc[1][4] = {{0.f, 0.f, 0.f, 0.f}};
    auto tile = [&](int u, int i) {
      uint32_t xb[1][8];
      const __nv_bfloat16* xp = xs + (i % CT) * 64 + xo;
      const uint4 a = *reinterpret_cast<const uint4*>(xp), b = *reinterpret_cast<const uint4*>(xp + 8);
      xb[0][0] = a.x; xb[0][1] = a.y; xb[0][2] = a.z; xb[0][3] = a.w;
      xb[0][4] = b.x; xb[0][5] = b.y; xb[0][6] = b.z; xb[0][7] = b.w;
      dec_tile<F, DIAG, 1, !F::F8>(acc, ring[u], rsc[u], xb, lut);  // FP8: one copy (a second spills)
      if (i + U < ntile) load(u, wp, sp, i + U);
    };
    int i = 0;
#pragma unroll 1
    for (; i + U <= ntile; i += U) {
      if (DIAG != 1 && ntile > CT && i % CT == 0 && (i > 0 || rt > r0)) {  // the next chunk of x
        __syncwarp();
        dec_stage<1>(xr, xs, (kt0 + i) * 64, min(CT, ntile - i) * 64, K, xvec, lane);
        __syncwarp();
      }
#pragma unroll
      for (int u = 0; u < U; ++u) tile(u, i + u);
    }
    if (i < ntile) {  // the last, partial batch
      if (DIAG != 1 && ntile > CT && i % CT == 0 && (i > 0 || rt > r0)) {
        __syncwarp();
        dec_stage<1>(xr, xs, (kt0 + i) * 64, min(CT, ntile - i) * 64, K, xvec, lane);
        __syncwarp();
      }
#pragma unroll
      for (int u = 0; u < U; ++u)
        if (i + u < ntile) tile(u, i + u);
    }
    wp += wrow;
    sp += srow;
    if (rt + 1 < r1) {  // the next row tile's first loads, before the sum
#pragma unroll
      for (int u = 0; u < U; ++u)
        if (u < ntile) load(u, wp, sp, u);
    }
    // column 0 of the n8 tile: c0 (row g), c2 (row g + 8) of lanes t = 0
    if (t == 0) {
      red[warp][g] = acc[0][0];
      red[warp][g + 8] = acc[0][2];
    }
    __syncthreads();
    if (threadIdx.x < 16) {
      const int n = rt * 16 + threadIdx.x;
      if (n < N) {
        float v = 0.f;
#pragma unroll
        for (int q = 0; q < WARPS; ++q) v += red[q][threadIdx.x];
        v *= post;
        if (BIAS) v += bias[n];
        yr[n] = epilogue(v, epi);
      }
    }
    __syncthreads();
  }
}

// WARPS warps per CTA splitting K; a ring of U tiles per warp (U = 2 fits 64 registers).
template <class F, int WARPS, bool BIAS, int U = 2, int DIAG = 0>
__device__ __forceinline__ void dec1(const float* __restrict__ x, const uint8_t* __restrict__ w,
                                     const uint8_t* __restrict__ s, const float* __restrict__ tsp,
                                     const float* __restrict__ bias, float* __restrict__ y, int M, int N, int K,
                                     int epi) {
  __shared__ float red[WARPS][16];
  __shared__ __align__(16) uint32_t lut[DecLut<F>::WORDS];
  __shared__ __align__(16) __nv_bfloat16 xs_all[WARPS][Dec1Ck<WARPS>::K];
  (void)M;
  if constexpr (DecLut<F>::USED) {
    if (WARPS <= 8 || threadIdx.x < 256) dec_lut_fill<F>(lut, threadIdx.x);
    __syncthreads();
  }
  const int RT = (N + 15) / 16;
  int rpc = 1;  // ceil(RT / gridDim.x), counted (a division by a run-time value is an I2F and a reciprocal)
  while (rpc * (int)gridDim.x < RT) ++rpc;
  const int r0 = blockIdx.x * rpc, r1 = min(RT, r0 + rpc), m = blockIdx.y;
  if (r0 >= r1) return;
  const float* xr = x + (size_t)m * K;
  float* yr = y + (size_t)m * N;
  __nv_bfloat16* xs = xs_all[threadIdx.x >> 5];
  if (((uintptr_t)w % 16) == 0)
    dec1_rows<F, BIAS, U, true, DIAG, WARPS>(xr, w, s, tsp, bias, yr, N, K, epi, r0, r1, lut, xs, red);
  else
    dec1_rows<F, BIAS, 1, false, DIAG, WARPS>(xr, w, s, tsp, bias, yr, N, K, epi, r0, r1, lut, xs, red);  // bytes: no ring
}

// ---------------------------------------------------------------- dec (2 <= M <= 16, mma.sync)
// MT rows of x (one n8 MMA tile per 8) against R consecutive 16-row tiles of weights per CTA: each warp
// takes its share of K for all R row tiles, so one load and bf16 conversion of the activations serves
// R weight tiles (R = 1 re-read x from L2 for every 16 weight rows: at M = 16 eight times the weights'
// bytes). The weights come through a ring of U K tiles per warp (the R fragment tiles of K tile k + U - 1
// are loaded before tile k is decoded); the CTA's warps sum in shared memory in a fixed order.
template <class F, int MT, int R, int U, bool BIAS>
__device__ __forceinline__ void dec(const float* __restrict__ x, const uint8_t* __restrict__ w,
                                    const uint8_t* __restrict__ s, const float* __restrict__ tsp,
                                    const float* __restrict__ bias, float* __restrict__ y, int M, int N, int K,
                                    int epi) {
  constexpr int WARPS = 8, NT = MT / 8;          // warps splitting K; n8 MMA tiles over x's rows
  constexpr int LB = 32 * F::BITS / 8;           // a lane's bytes of a tile
  constexpr int NB = 64 / F::BS;                 // blocks per tile row
  __shared__ float red[WARPS][16 * R][MT];
  __shared__ __align__(16) uint32_t lut[DecLut<F>::WORDS];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  if constexpr (DecLut<F>::USED) {
    dec_lut_fill<F>(lut, threadIdx.x);  // 256 threads, 256 codes
    __syncthreads();
  }
  const int RT = (N + 15) / 16, rt0 = blockIdx.x * R, m0 = blockIdx.y * MT, KT = (K + 63) / 64;
  const int kt0 = warp * KT / WARPS, kt1 = (warp + 1) * KT / WARPS;
  const size_t wrow = (size_t)KT * (32 * LB), srow = (size_t)KT * (16 * NB);
  // row tiles past N read the last one (computed, never stored)
  const uint8_t* wp = w + (size_t)min(rt0, RT - 1) * wrow + lane * LB;
  const uint8_t* sp = s + (size_t)min(rt0, RT - 1) * srow + 2 * (g * NB + 16 * t / F::BS);
  int rstep[R];
#pragma unroll
  for (int r = 0; r < R; ++r) rstep[r] = min(rt0 + r, RT - 1) - min(rt0, RT - 1);
  const bool wvec = ((uintptr_t)w % 16) == 0;
  const bool xvec = (K % 4 == 0) && ((uintptr_t)x % 16) == 0;
  float acc[R][NT][4];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int i = 0; i < NT; ++i) acc[r][i][0] = acc[r][i][1] = acc[r][i][2] = acc[r][i][3] = 0.f;

  auto load = [&](Raw<LB>* raw, uint32_t* sc2, int kt) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
      raw[r] = load_bytes<LB>(wp + rstep[r] * wrow + (size_t)kt * (32 * LB), wvec);
      sc2[r] = __ldg(reinterpret_cast<const unsigned short*>(sp + rstep[r] * srow + (size_t)kt * (16 * NB)));
    }
  };
  auto compute = [&](const Raw<LB>* raw, const uint32_t* sc2, int kt) {
    const int k0 = kt * 64 + 16 * t;
    uint32_t xb[NT][8];
#pragma unroll
    for (int i = 0; i < NT; ++i) {
      const int m = m0 + 8 * i + g;
      float v[16];
      if (m < M && xvec && k0 + 16 <= K) {
        const float4* xr = reinterpret_cast<const float4*>(x + (size_t)m * K + k0);
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          const float4 f = __ldg(xr + c);
          v[4 * c] = f.x; v[4 * c + 1] = f.y; v[4 * c + 2] = f.z; v[4 * c + 3] = f.w;
        }
      } else {
#pragma unroll
        for (int c = 0; c < 16; ++c) v[c] = (m < M && k0 + c < K) ? __ldg(x + (size_t)m * K + k0 + c) : 0.f;
      }
#pragma unroll
      for (int c = 0; c < 8; ++c) xb[i][c] = pack_bf16(v[2 * c], v[2 * c + 1]);
    }
#pragma unroll
    for (int r = 0; r < R; ++r) dec_tile<F, 0, NT>(acc[r], raw[r], sc2[r], xb, lut);
  };
  Raw<LB> ring[U][R];
  uint32_t rsc[U][R];
#pragma unroll
  for (int u = 0; u + 1 < U; ++u)
    if (kt0 + u < kt1) load(ring[u], rsc[u], kt0 + u);
#pragma unroll 1
  for (int kt = kt0; kt < kt1; kt += U) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      if (kt + u + U - 1 < kt1) load(ring[(u + U - 1) % U], rsc[(u + U - 1) % U], kt + u + U - 1);  // tile k-1's slot
      if (kt + u < kt1) compute(ring[u], rsc[u], kt + u);
    }
  }
  // c0, c1: row g, columns 2t, 2t+1; c2, c3: row g+8
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int i = 0; i < NT; ++i) {
      red[warp][16 * r + g][8 * i + 2 * t] = acc[r][i][0];
      red[warp][16 * r + g][8 * i + 2 * t + 1] = acc[r][i][1];
      red[warp][16 * r + g + 8][8 * i + 2 * t] = acc[r][i][2];
      red[warp][16 * r + g + 8][8 * i + 2 * t + 1] = acc[r][i][3];
    }
  __syncthreads();
  // the NV tensor scale, and for E2M1 with UE4M3 / UE5M3 scales the 2^16 the factors left out
  const float post = (F::TS ? *tsp : 1.f) * ((F::E2M1 && !F::E8M0) ? 65536.f : 1.f);
  for (int idx = threadIdx.x; idx < 16 * R * MT; idx += blockDim.x) {
    const int row = idx % (16 * R), col = idx / (16 * R), n = rt0 * 16 + row, m = m0 + col;
    if (n >= N || m >= M) continue;
    float v = 0.f;
#pragma unroll
    for (int q = 0; q < WARPS; ++q) v += red[q][row][col];
    v *= post;
    if (BIAS) v += bias[n];
    y[(size_t)m * N + n] = epilogue(v, epi);
  }
}

// ---------------------------------------------------------------- decs (2 <= M <= 16, split K, mma.sync)
// The dec tiles with the work cut the other way: a CTA's WARPS warps take WARPS x R different 16-row weight
// tiles over the same 1/S of K, so the activations of that K range are read from global memory once per
// CTA, converted to bf16 into shared memory (KTS tiles of 64 K at most), and shared by all of them (8 warps
// and 3 CTAs per SM, or 24 warps and one CTA per SM: a third of the stagings, ~1-1.7 us faster at M = 16).
// blockIdx.z = the K split. Without CL each warp writes its rows' partial sums (times the NV tensor
// scale) to out = ws[split][m][n] and `dsum` adds the S partials in order, the bias and the epilogue.
// With CL the S CTAs of a row group are one thread-block cluster (the wrapper's __cluster_dims__(1, 1, S),
// so cluster rank = split): each CTA leaves its partials in its own shared memory, and after a cluster
// barrier CTA q sums rows q/S of the group over the S CTAs' partials (distributed shared memory) in
// split order, adds the bias, applies the epilogue and writes out = y: dsum's operations in dsum's
// order, without the workspace and the second launch.
// R: 16-row weight tiles per warp (mxc selects 1); U: K tiles of weights in flight per warp; KTS: K tiles
// (of 64) of the activations a CTA can hold (dynamic shared memory, MT x KTS x 144 bytes; the host picks
// S so that a CTA's K range fits).
template <int MT>
struct DecsLayout {
  static constexpr int ROW = 64 * 2 + 16;  // bytes per row of x per K tile: 64 bf16 + a 16-byte pad (no bank conflicts)
  static constexpr int TILE = MT * ROW;
};

// DIAG (measurement variants, `bench_cuda ring`; wrong outputs): 2 the raw codes as A (no decode), 3 the weights'
// loads alone (each tile's words XORed into an accumulator that is stored: no shared-memory reads, no decode, no
// MMA), 4 no activations staged (shared memory left as the CTA before left it), skipped by a condition the
// compiler cannot fold, so that the rest is the kernel's code: dropped at compile time, the main loop compiled
// differently and ran 3-4 us slower with no activations at all (docs/cuda-sm90-log.md, 2026-12-06).
template <class F, int MT, int R, int S, int U, int KTS, bool CL = false, bool BIAS = false, int DIAG = 0, int WARPS = 8>
__device__ __forceinline__ void decs(const float* __restrict__ x, const uint8_t* __restrict__ w,
                                     const uint8_t* __restrict__ s, const float* __restrict__ tsp,
                                     const float* __restrict__ bias, float* __restrict__ out, int M, int N,
                                     int K, int epi) {
  constexpr int NT = MT / 8, LB = 32 * F::BITS / 8, NB = 64 / F::BS;
  using L = DecsLayout<MT>;
  extern __shared__ __align__(16) uint8_t xs[];
  __shared__ __align__(16) uint32_t lut[DecLut<F>::WORDS];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  if constexpr (DecLut<F>::USED) if (WARPS == 8 || threadIdx.x < 256) dec_lut_fill<F>(lut, threadIdx.x);  // 256 codes
  const int RT = (N + 15) / 16, KT = (K + 63) / 64, m0 = blockIdx.y * MT, split = blockIdx.z;
  const int ct = (KT + S - 1) / S, kt0 = split * ct, nt = max(0, min(KT, kt0 + ct) - kt0);  // this CTA's K tiles
  if (ct > KTS) {
    if (threadIdx.x == 0 && blockIdx.x == 0 && blockIdx.y == 0 && split == 0) printf("mxc decs kernel: K too long\n");
    __trap();
  }
  const int rt0 = (blockIdx.x * WARPS + warp) * R;
  const size_t wrow = (size_t)KT * (32 * LB), srow = (size_t)KT * (16 * NB);
  const uint8_t* wp = w + (size_t)min(rt0, RT - 1) * wrow + (size_t)kt0 * (32 * LB) + lane * LB;
  const uint8_t* sp = s + (size_t)min(rt0, RT - 1) * srow + (size_t)kt0 * (16 * NB) + 2 * (g * NB + 16 * t / F::BS);
  int rstep[R];
#pragma unroll
  for (int r = 0; r < R; ++r) rstep[r] = min(rt0 + r, RT - 1) - min(rt0, RT - 1);  // tiles past N: the last, unstored
  const bool wvec = ((uintptr_t)w % 16) == 0;
  Raw<LB> ring[U][R];
  uint32_t rsc[U][R];
  auto load = [&](Raw<LB>* raw, uint32_t* sc2, int i) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
      raw[r] = load_bytes<LB>(wp + rstep[r] * wrow + (size_t)i * (32 * LB), wvec);
      sc2[r] = __ldg(reinterpret_cast<const unsigned short*>(sp + rstep[r] * srow + (size_t)i * (16 * NB)));
    }
  };
#pragma unroll
  for (int u = 0; u + 1 < U; ++u)
    if (u < nt) load(ring[u], rsc[u], u);
  // x rows m0 .. m0 + MT, K tiles kt0 .. kt0 + nt -> bf16 (RNE) in shared memory, zeros past M and K
  const bool xvec = (K % 4 == 0) && ((uintptr_t)x % 16) == 0;
  constexpr int SI = 4;  // items (8 values: tile, row, eighth) per thread with their loads in flight
  const int items = (DIAG == 4 && K > 0) ? 0 : nt * MT * 8;  // diag 4: none, at run time
  for (int i0 = threadIdx.x; i0 < items; i0 += 32 * WARPS * SI) {
    float v[SI][8];
#pragma unroll
    for (int j = 0; j < SI; ++j) {
      const int it = i0 + 32 * WARPS * j, e = it & 7, row = (it >> 3) % MT, tile = (it >> 3) / MT;
      const int m = m0 + row;
      if (it < items) ld_x8(x + (size_t)m * K, (kt0 + tile) * 64 + 8 * e, K, xvec, m < M, v[j]);
    }
#pragma unroll
    for (int j = 0; j < SI; ++j) {
      const int it = i0 + 32 * WARPS * j, e = it & 7, row = (it >> 3) % MT, tile = (it >> 3) / MT;
      if (it < items) st_bf16x8(xs + tile * L::TILE + row * L::ROW + 16 * e, v[j]);
    }
  }
  __syncthreads();
  float acc[R][NT][4];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int i = 0; i < NT; ++i) acc[r][i][0] = acc[r][i][1] = acc[r][i][2] = acc[r][i][3] = 0.f;
  auto compute = [&](const Raw<LB>* raw, const uint32_t* sc2, int i) {
    if constexpr (DIAG == 3) {  // the loads alone: their words XORed into acc[0][0][0] (stored), nothing else
      uint32_t sink = __float_as_uint(acc[0][0][0]);
#pragma unroll
      for (int r = 0; r < R; ++r) {
#pragma unroll
        for (int j = 0; j < LB / 4; ++j) sink ^= raw[r].w[j];
        sink ^= sc2[r];
      }
      acc[0][0][0] = __uint_as_float(sink);
    } else {
      uint32_t xb[NT][8];
#pragma unroll
      for (int j = 0; j < NT; ++j) {  // lane g's column: x row 8j + g, K 16t .. 16t + 15 of the tile
        const uint8_t* p = xs + i * L::TILE + (8 * j + g) * L::ROW + 32 * t;
        const uint4 a = *reinterpret_cast<const uint4*>(p), b = *reinterpret_cast<const uint4*>(p + 16);
        xb[j][0] = a.x; xb[j][1] = a.y; xb[j][2] = a.z; xb[j][3] = a.w;
        xb[j][4] = b.x; xb[j][5] = b.y; xb[j][6] = b.z; xb[j][7] = b.w;
      }
#pragma unroll
      for (int r = 0; r < R; ++r) dec_tile<F, DIAG == 2 ? 2 : 0, NT>(acc[r], raw[r], sc2[r], xb, lut);
    }
  };
#pragma unroll 1
  for (int i0 = 0; i0 < nt; i0 += U) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      if (i0 + u + U - 1 < nt) load(ring[(u + U - 1) % U], rsc[(u + U - 1) % U], i0 + u + U - 1);  // tile i-1's slot
      if (i0 + u < nt) compute(ring[u], rsc[u], i0 + u);
    }
  }
  // c0, c1: weight row g, x rows 2t, 2t+1 (of n8 tile i); c2, c3: weight row g+8
  const float post = (F::TS ? *tsp : 1.f) * ((F::E2M1 && !F::E8M0) ? 65536.f : 1.f);
  if constexpr (!CL) {
    (void)bias;
    (void)epi;
    float* part = out + (size_t)split * M * N;
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int i = 0; i < NT; ++i)
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          const int n = (rt0 + r) * 16 + g + 8 * (c >> 1), m = m0 + 8 * i + 2 * t + (c & 1);
          if (rt0 + r < RT && n < N && m < M) part[(size_t)m * N + n] = acc[r][i][c] * post;
        }
  } else {
    // the CTA's partials [MT][ROWS] (+ a pad of 4 floats per x row: the fragment stores hit distinct banks)
    constexpr int ROWS = WARPS * R * 16, PS = ROWS + 4, PER = (ROWS + S - 1) / S;  // the last share may be short
    static_assert(MT * PS * 4 <= KTS * DecsLayout<MT>::TILE, "the partials fit where the activations were");
    namespace cg = cooperative_groups;
    cg::cluster_group cluster = cg::this_cluster();
    if (cluster.num_blocks() != S) {  // launched without the wrapper's cluster dimensions
      if (threadIdx.x == 0 && blockIdx.x == 0 && split == 0) printf("mxc decs kernel: not a cluster of S CTAs\n");
      __trap();
    }
    float* part = reinterpret_cast<float*>(xs);
    __syncthreads();  // every warp is done with the activations
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int i = 0; i < NT; ++i)
#pragma unroll
        for (int c = 0; c < 4; ++c)
          part[(8 * i + 2 * t + (c & 1)) * PS + (warp * R + r) * 16 + g + 8 * (c >> 1)] = acc[r][i][c] * post;
    cluster.sync();  // every CTA's partials are written
    const int q0 = (int)cluster.block_rank() * PER;  // = split * PER
    for (int e = threadIdx.x; e < PER * MT; e += blockDim.x) {
      const int col = e / PER, row = q0 + e % PER;
      if (row >= ROWS) continue;
      const int n = blockIdx.x * ROWS + row, m = m0 + col;
      const int idx = col * PS + row;
      float v = *cluster.map_shared_rank(part + idx, 0);
#pragma unroll
      for (int q = 1; q < S; ++q) v += *cluster.map_shared_rank(part + idx, q);
      if (n < N && m < M) {
        if (BIAS) v += bias[n];
        out[(size_t)m * N + n] = epilogue(v, epi);
      }
    }
    cluster.sync();  // no CTA leaves while another still reads its shared memory
  }
}

// y = epilogue(sum over the S splits of ws[split] (in order) + bias): decs's second kernel.
template <int S, bool BIAS>
__device__ __forceinline__ void dsum(const float* __restrict__ ws, const float* __restrict__ bias,
                                     float* __restrict__ y, int M, int N, int epi) {
  const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, MN = (size_t)M * N;
  if (i >= MN) return;
  float v = ws[i];
#pragma unroll
  for (int q = 1; q < S; ++q) v += ws[q * MN + i];
  if (BIAS) v += bias[i % N];
  y[i] = epilogue(v, epi);
}

// ---------------------------------------------------------------- wgmma helpers (sm_90a)
__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Shared-memory matrix descriptor, no swizzle, K-major core matrices of 8 rows x 16 bytes:
// LBO = bytes between core matrices adjacent in K, SBO = between core matrices adjacent in M/N.
__device__ __forceinline__ uint64_t smem_desc(uint32_t addr, uint32_t lbo, uint32_t sbo) {
  return (uint64_t)((addr & 0x3FFFF) >> 4) | ((uint64_t)(lbo >> 4) << 16) | ((uint64_t)(sbo >> 4) << 32);
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait0() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

// The m64nNk* accumulator fragment: register i of thread t (in its warpgroup) holds
// row 16*(warp) + lane/4 + 8*((i/2)%2), column 8*(i/4) + 2*(lane%4) + i%2.
__device__ __forceinline__ int frag_row(int i, int t) { return 16 * (t >> 5) + ((t & 31) >> 2) + 8 * ((i >> 1) & 1); }
__device__ __forceinline__ int frag_col(int i, int t) { return 8 * (i >> 2) + 2 * (t & 3) + (i & 1); }

}  // namespace mxc

// The wgmma kernels and the MX activation quantizer; included after the generated
// `wgmma_*` helpers (mxc.kernels.source), which hold the 64-register inline PTX.
#pragma once

namespace mxc {

// ---------------------------------------------------------------- asynchronous copies
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, int bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes) : "memory");
}
__device__ __forceinline__ void cp_async8(uint32_t dst, const void* src, int bytes) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(dst), "l"(src), "r"(bytes) : "memory");
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

// ---------------------------------------------------------------- tobf16: the wgmma kernel's activations
// x [M, K] f32 -> xb [M, KA] bf16 (RNE), KA = K rounded up to TK, the padding zero.
__device__ __forceinline__ void to_bf16(const float* __restrict__ x, __nv_bfloat16* __restrict__ xb, int M, int K) {
  const int KA = (K + TK - 1) / TK * TK;
  const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (size_t)M * KA) return;
  const int m = (int)(i / KA), k = (int)(i % KA);
  xb[i] = __float2bfloat16_rn(k < K ? x[(size_t)m * K + k] : 0.f);
}

// ---------------------------------------------------------------- wgmma_async: the same product, pipelined
// A (bf16, from to_bf16) and the raw weight bytes come by cp.async, STAGES tiles deep; each thread then
// decodes its half-row of the next weight tile from shared memory into a bf16 operand buffer while the
// tensor cores run on the current one. Shared memory: STAGES x (A tile + raw weight tile) + 2 bf16 tiles.
constexpr int STAGES = 4;

template <class F>
struct AsyncLayout {
  static constexpr int RB = TK * F::BITS / 8;      // raw weight bytes per row of a tile
  static constexpr int A_BYTES = TM * TK * 2;
  static constexpr int RAW_BYTES = TN * RB;
  static constexpr int B_BYTES = TN * TK * 2;
  static constexpr int SMEM = STAGES * (A_BYTES + RAW_BYTES) + 2 * B_BYTES;
};

template <class F, bool BIAS>
__device__ __forceinline__ void wgmma_async(const __nv_bfloat16* __restrict__ xb, const uint8_t* __restrict__ w,
                                            const uint8_t* __restrict__ s, const float* __restrict__ tsp,
                                            const float* __restrict__ bias, float* __restrict__ y, int M, int N, int K,
                                            int epi) {
  extern __shared__ __align__(128) uint8_t smem[];
  using L = AsyncLayout<F>;
  constexpr int BS = F::BS, BYTES = BS * F::BITS / 8, NBH = 32 / BS, RB = L::RB;
  uint8_t* const A0 = smem;
  uint8_t* const R0 = smem + STAGES * L::A_BYTES;
  uint8_t* const B0 = R0 + STAGES * L::RAW_BYTES;
  const int t = threadIdx.x, wg = t >> 7, r = t >> 1, h = t & 1;
  const int m0 = blockIdx.y * TM, n0 = blockIdx.x * TN;
  const int KA = (K + TK - 1) / TK * TK, nb = (K + BS - 1) / BS, KT = KA / TK;
  const size_t row_bytes = (size_t)nb * BYTES;
  if ((((uintptr_t)xb) & 15) || (((uintptr_t)w) & 7)) {
    if (t == 0 && blockIdx.x == 0 && blockIdx.y == 0) printf("mxc wgmma kernel: misaligned operands\n");
    __trap();
  }

  auto issue = [&](int kt) {
    if (kt < KT) {
      const int slot = kt % STAGES;
      const uint32_t a = smem_u32(A0 + slot * L::A_BYTES), raw = smem_u32(R0 + slot * L::RAW_BYTES);
#pragma unroll
      for (int c = 0; c < TM * TK / 8 / 256; ++c) {  // 16-byte chunks of A: 8 per row
        const int q = t + 256 * c, row = q >> 3, col = (q & 7) * 8, gm = m0 + row;
        cp_async16(a + tile_off<2>(row, col), xb + (size_t)min(gm, M - 1) * KA + kt * TK + col, gm < M ? 16 : 0);
      }
      for (int q = t; q < TN * RB / 8; q += 256) {  // 8-byte chunks of the raw weight rows
        const int row = q / (RB / 8), off = (q % (RB / 8)) * 8, gn = n0 + row;
        const size_t at = (size_t)kt * RB + off;
        const bool ok = gn < N && at < row_bytes;
        cp_async8(raw + row * RB + off, w + (size_t)min(gn, N - 1) * row_bytes + (ok ? at : 0), ok ? 8 : 0);
      }
    }
    cp_commit();  // an empty group past the end keeps the wait counts uniform
  };
  uint32_t sc[NBH];
  auto load_scales = [&](int kt) {
    const int gn = n0 + r;
#pragma unroll
    for (int q = 0; q < NBH; ++q) {
      const int b = (kt * TK + 32 * h) / BS + q;
      sc[q] = (gn < N && b < nb && kt < KT) ? __ldg(s + (size_t)gn * nb + b) : F::ZERO_SCALE;
    }
  };
  auto decode = [&](int kt) {  // raw slot of tile kt -> bf16 buffer kt % 2
    const uint8_t* raw = R0 + (kt % STAGES) * L::RAW_BYTES + r * RB + h * (RB / 2);
    uint8_t* B = B0 + (kt & 1) * L::B_BYTES;
#pragma unroll
    for (int q = 0; q < NBH; ++q) {
      Raw<BYTES> wr;
#pragma unroll
      for (int j = 0; j < BYTES / 4; ++j) wr.w[j] = reinterpret_cast<const uint32_t*>(raw + q * BYTES)[j];
      float v[BS];
      decode_block<F>(wr, sc[q], 1.f, v);  // element x block scale; the tensor scale goes on the accumulators
#pragma unroll
      for (int c = 0; c < BS / 8; ++c) {
        uint4 u = make_uint4(pack_bf16(v[8 * c], v[8 * c + 1]), pack_bf16(v[8 * c + 2], v[8 * c + 3]),
                             pack_bf16(v[8 * c + 4], v[8 * c + 5]), pack_bf16(v[8 * c + 6], v[8 * c + 7]));
        *reinterpret_cast<uint4*>(B + tile_off<2>(r, 32 * h + BS * q + 8 * c)) = u;
      }
    }
  };

  float acc[64];
#pragma unroll
  for (int i = 0; i < 64; ++i) acc[i] = 0.f;
#pragma unroll
  for (int kt = 0; kt < STAGES - 1; ++kt) issue(kt);
  load_scales(0);
  cp_wait<STAGES - 2>();
  __syncthreads();
  decode(0);
  load_scales(1);
  fence_proxy_async();
  __syncthreads();
  for (int kt = 0; kt < KT; ++kt) {
    const uint32_t A = smem_u32(A0 + (kt % STAGES) * L::A_BYTES) + wg * 64 * TK * 2;
    const uint32_t B = smem_u32(B0 + (kt & 1) * L::B_BYTES);
    wgmma_fence();
#pragma unroll
    for (int j = 0; j < TK / 16; ++j)
      wgmma_bf16_m64n128k16(acc, smem_desc(A + 256 * j, 128, TK * 16), smem_desc(B + 256 * j, 128, TK * 16));
    wgmma_commit();
    issue(kt + STAGES - 1);  // into the slot of tile kt-1, whose wgmma has completed
    if (kt + 1 < KT) {
      cp_wait<STAGES - 2>();  // tile kt+1 has landed (this thread's copies)
      __syncthreads();        // (everyone's)
      decode(kt + 1);         // while the tensor cores run on tile kt
      load_scales(kt + 2);
      fence_proxy_async();
    }
    wgmma_wait0();
    fence_acc(acc);
    __syncthreads();
  }
  store_tile<BIAS>(acc, F::TS ? *tsp : 1.f, bias, y, m0 + 64 * wg, n0, M, N, t & 127, epi);
}

// ---------------------------------------------------------------- MX activation quantizer
// x [M, K] f32 -> codes [M, Kp] (E::BITS = 8) and E8M0 scales [M, Kp/32]; numerics._quantize_mx
// with scale_rule=floor, rounding=rne: e = clamp(floor(log2 amax) - emax, -127, 127), -127 for a
// zero block, 0xFF and zero codes for a block with NaN/Inf; codes = saturating RNE of x * 2^-e.
template <class E>
__device__ __forceinline__ void actq_mx(const float* __restrict__ x, uint8_t* __restrict__ codes,
                                        uint8_t* __restrict__ scales, int M, int K) {
  const int nb = (K + 31) / 32, Kp = nb * 32;
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= M * nb) return;
  const int m = i / nb, b = i % nb;
  float v[32];
  float amax = 0.f;
  bool special = false;
#pragma unroll
  for (int j = 0; j < 32; ++j) {
    const int k = 32 * b + j;
    v[j] = k < K ? x[(size_t)m * K + k] : 0.f;
    const float av = fabsf(v[j]);
    special |= !(av <= 3.402823466e38f);
    amax = fmaxf(amax, av);
  }
  int e = amax == 0.f ? -127 : max(-127, min(127, ilogbf(amax) - E::EMAX));
  uint8_t* out = codes + (size_t)m * Kp + 32 * b;
  const float inv = e < 127 ? __int_as_float((127 - e) << 23) : __int_as_float(0x00400000);  // 2^-e, exact
#pragma unroll
  for (int j = 0; j < 32; j += 4) {
    uint32_t word = 0;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const float sv = v[j + q] * inv;
      const uint32_t c = special ? 0u : (uint32_t)E::encode(sv);
      word |= c << (8 * q);
    }
    *reinterpret_cast<uint32_t*>(out + j) = word;
  }
  scales[(size_t)m * nb + b] = special ? 0xFF : (uint8_t)(e + 127);
}

// ---------------------------------------------------------------- qgmma_async: MXFP8 x MXFP8, pipelined
// a [M, Kp] / w [N, Kp] FP8 codes by cp.async, STAGES tiles deep; the E8M0 scales one tile ahead in
// registers, decoded into shared memory. Per tile, its two 32-K blocks go to two scratch accumulators
// (wgmma m64n128k32, scale-d = 0), then acc += t_b * 2^(sa-127) * 2^(sb-127).
template <class FA, class FB, bool BIAS>
__device__ __forceinline__ void qgmma_async(const uint8_t* __restrict__ a, const uint8_t* __restrict__ as,
                                            const uint8_t* __restrict__ w, const uint8_t* __restrict__ ws,
                                            const float* __restrict__ bias, float* __restrict__ y, int M, int N,
                                            int K, int epi) {
  extern __shared__ __align__(128) uint8_t smem[];
  constexpr int TILE = TM * TK, SCALES = (TM + TN) * 2 * 4;
  uint8_t* const T0 = smem;                          // STAGES x (A tile, B tile)
  float* const S0 = reinterpret_cast<float*>(smem + STAGES * 2 * TILE);  // 2 x (SA[128][2], SB[128][2])
  const int t = threadIdx.x, wg = t >> 7, r = t >> 1, h = t & 1, tt = t & 127;
  const int m0 = blockIdx.y * TM, n0 = blockIdx.x * TN;
  const int nb = (K + 31) / 32, Kp = nb * 32, KT = (Kp + TK - 1) / TK;
  if ((((uintptr_t)a) & 15) || (((uintptr_t)w) & 15)) {
    if (t == 0 && blockIdx.x == 0 && blockIdx.y == 0) printf("mxc qgmma kernel: misaligned operands\n");
    __trap();
  }
  auto issue = [&](int kt) {
    if (kt < KT) {
      const uint32_t base = smem_u32(T0 + (kt % STAGES) * 2 * TILE);
#pragma unroll
      for (int c = 0; c < 2; ++c) {  // 16-byte chunks: 4 per row of 64 codes, 128 rows, A then B
        const int q = t + 256 * c, row = q >> 2, col = (q & 3) * 16, k = kt * TK + col;
        const int gm = m0 + row, gn = n0 + row;
        cp_async16(base + tile_off<1>(row, col), a + (size_t)min(gm, M - 1) * Kp + min(k, Kp - 16),
                   gm < M && k < Kp ? 16 : 0);
        cp_async16(base + TILE + tile_off<1>(row, col), w + (size_t)min(gn, N - 1) * Kp + min(k, Kp - 16),
                   gn < N && k < Kp ? 16 : 0);
      }
    }
    cp_commit();
  };
  uint32_t sa, sb;
  auto load_scales = [&](int kt) {
    const int b = kt * (TK / 32) + h, gm = m0 + r, gn = n0 + r;
    sa = (gm < M && b < nb && kt < KT) ? __ldg(as + (size_t)gm * nb + b) : 0x100;
    sb = (gn < N && b < nb && kt < KT) ? __ldg(ws + (size_t)gn * nb + b) : 0x100;
  };
  auto put_scales = [&](int kt) {  // 0x100: padding, contributes 0
    float* S = S0 + (kt & 1) * (SCALES / 4);
    S[2 * r + h] = sa == 0x100 ? 0.f : e8m0(sa);
    S[TM * 2 + 2 * r + h] = sb == 0x100 ? 0.f : e8m0(sb);
  };

  float acc[64], t0[64], t1[64];
#pragma unroll
  for (int i = 0; i < 64; ++i) acc[i] = 0.f;
#pragma unroll
  for (int kt = 0; kt < STAGES - 1; ++kt) issue(kt);
  load_scales(0);
  cp_wait<STAGES - 2>();
  fence_proxy_async();
  put_scales(0);
  load_scales(1);
  __syncthreads();
  for (int kt = 0; kt < KT; ++kt) {
    const uint32_t A = smem_u32(T0 + (kt % STAGES) * 2 * TILE) + wg * 64 * TK, B = A - wg * 64 * TK + TILE;
    wgmma_fence();
    wgmma_fp8_m64n128k32<FA::FP8, FB::FP8>(t0, smem_desc(A, 128, TK * 8), smem_desc(B, 128, TK * 8));
    wgmma_fp8_m64n128k32<FA::FP8, FB::FP8>(t1, smem_desc(A + 256, 128, TK * 8), smem_desc(B + 256, 128, TK * 8));
    wgmma_commit();
    issue(kt + STAGES - 1);  // into the slot of tile kt-1, whose wgmma has completed
    if (kt + 1 < KT) {
      cp_wait<STAGES - 2>();  // tile kt+1 has landed (this thread's copies)
      fence_proxy_async();
      put_scales(kt + 1);
      load_scales(kt + 2);
    }
    wgmma_wait0();
    fence_acc(t0);
    fence_acc(t1);
    const float* SA = S0 + (kt & 1) * (SCALES / 4);
    const float* SB = SA + TM * 2;
#pragma unroll
    for (int i = 0; i < 64; ++i) {
      const int row = 2 * (64 * wg + frag_row(i, tt)), col = 2 * frag_col(i, tt);
      acc[i] = fmaf(t0[i], SA[row] * SB[col], acc[i]);
      acc[i] = fmaf(t1[i], SA[row + 1] * SB[col + 1], acc[i]);
    }
    __syncthreads();
  }
  store_tile<BIAS>(acc, 1.f, bias, y, m0 + 64 * wg, n0, M, N, tt, epi);
}

}  // namespace mxc

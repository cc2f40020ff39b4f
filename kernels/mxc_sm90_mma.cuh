// The FP8 wgmma kernel (qgmma) and the MX activation quantizer; included after the generated
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

// cp.async depth of the FP8 wgmma kernel (qgmma)
constexpr int STAGES = 4;

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
    // no printf: a call in a wgmma kernel makes ptxas serialize its wgmma pipeline (C7510)
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

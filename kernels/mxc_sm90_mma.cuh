// The wgmma kernels and the MX activation quantizer; included after the generated
// `wgmma_*` helpers (mxc.kernels.source), which hold the 64-register inline PTX.
#pragma once

namespace mxc {

// ---------------------------------------------------------------- wgmma: bf16 activations x decoded weights
// 256 threads = 2 warpgroups; a 128x128 output tile; K in steps of TK=64, two shared-memory
// stages: the next tile is loaded into registers while the tensor cores run on this one.
template <class F, bool BIAS>
__device__ __forceinline__ void wgmma_wo(const float* __restrict__ x, const uint8_t* __restrict__ w,
                                         const uint8_t* __restrict__ s, const float* __restrict__ tsp,
                                         const float* __restrict__ bias, float* __restrict__ y, int M, int N, int K, int epi) {
  extern __shared__ __align__(128) uint8_t smem[];
  constexpr int BS = F::BS, BYTES = BS * F::BITS / 8, NBH = 32 / BS;  // blocks per half-row of 32
  constexpr int STAGE = (TM + TN) * TK * 2;
  const int t = threadIdx.x, wg = t >> 7, r = t >> 1, h = t & 1;
  const int m0 = blockIdx.y * TM, n0 = blockIdx.x * TN;
  const int nb = (K + BS - 1) / BS, Kp = nb * BS, KT = (Kp + TK - 1) / TK;
  const size_t row_bytes = (size_t)nb * BYTES;
  const bool xvec = (K % 4 == 0) && ((uintptr_t)x % 16) == 0;
  const bool wvec = ((uintptr_t)w % 8) == 0;
  const int gm = m0 + r, gn = n0 + r;

  float a[32];
  Raw<BYTES> wr[NBH];
  uint32_t sc[NBH];

  auto load = [&](int kt) {
    const int k = kt * TK + 32 * h;
#pragma unroll
    for (int i = 0; i < 32; i += 4) {
      const int kk = k + i;
      if (gm < M && xvec && kk + 3 < K) {
        float4 v = __ldg(reinterpret_cast<const float4*>(x + (size_t)gm * K + kk));
        a[i] = v.x; a[i + 1] = v.y; a[i + 2] = v.z; a[i + 3] = v.w;
      } else {
#pragma unroll
        for (int j = 0; j < 4; ++j) a[i + j] = (gm < M && kk + j < K) ? __ldg(x + (size_t)gm * K + kk + j) : 0.f;
      }
    }
#pragma unroll
    for (int q = 0; q < NBH; ++q) {
      const int b = k / BS + q;
      if (gn < N && b < nb) {
        wr[q] = load_bytes<BYTES>(w + gn * row_bytes + (size_t)b * BYTES, wvec);
        sc[q] = __ldg(s + (size_t)gn * nb + b);
      } else {
#pragma unroll
        for (int j = 0; j < (BYTES + 3) / 4; ++j) wr[q].w[j] = 0;
        sc[q] = F::ZERO_SCALE;
      }
    }
  };
  auto store = [&](int stage) {
    uint8_t* A = smem + stage * STAGE;
    uint8_t* B = A + TM * TK * 2;
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      uint4 v = make_uint4(pack_bf16(a[8 * c], a[8 * c + 1]), pack_bf16(a[8 * c + 2], a[8 * c + 3]),
                           pack_bf16(a[8 * c + 4], a[8 * c + 5]), pack_bf16(a[8 * c + 6], a[8 * c + 7]));
      *reinterpret_cast<uint4*>(A + tile_off<2>(r, 32 * h + 8 * c)) = v;
    }
#pragma unroll
    for (int q = 0; q < NBH; ++q) {
      const float sv = F::scale(sc[q]);
      float v[BS];
#pragma unroll
      for (int i = 0; i < BS; ++i) v[i] = F::elem(code_at<F::BITS>(wr[q], i), sc[q]) * sv;
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
  load(0);
  store(0);
  fence_proxy_async();
  __syncthreads();
  for (int kt = 0; kt < KT; ++kt) {
    const int st = kt & 1;
    if (kt + 1 < KT) load(kt + 1);
    const uint32_t A = smem_u32(smem + st * STAGE) + wg * 64 * TK * 2, B = smem_u32(smem + st * STAGE + TM * TK * 2);
    wgmma_fence();
#pragma unroll
    for (int j = 0; j < TK / 16; ++j)
      wgmma_bf16_m64n128k16(acc, smem_desc(A + 256 * j, 128, TK * 16), smem_desc(B + 256 * j, 128, TK * 16));
    wgmma_commit();
    if (kt + 1 < KT) {
      store(st ^ 1);
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

// ---------------------------------------------------------------- qgmma: MXFP8 x MXFP8
// a [M, Kp] / w [N, Kp] FP8 codes with E8M0 scales per 32: per 32-K block one
// wgmma m64n128k32 into a scratch accumulator (scale-d = 0), then acc += t * 2^(sa-127) * 2^(sb-127).
template <class FA, class FB, bool BIAS>
__device__ __forceinline__ void qgmma_mx8(const uint8_t* __restrict__ a, const uint8_t* __restrict__ as,
                                          const uint8_t* __restrict__ w, const uint8_t* __restrict__ ws,
                                          const float* __restrict__ bias, float* __restrict__ y, int M, int N, int K, int epi) {
  extern __shared__ __align__(128) uint8_t smem[];
  constexpr int TILE = TM * TK, STAGE = 2 * TILE + (TM + TN) * 2 * 4;
  const int t = threadIdx.x, wg = t >> 7, r = t >> 1, h = t & 1;
  const int m0 = blockIdx.y * TM, n0 = blockIdx.x * TN;
  const int nb = (K + 31) / 32, Kp = nb * 32, KT = (Kp + TK - 1) / TK;
  const bool vec = (((uintptr_t)a | (uintptr_t)w) % 16) == 0;
  const int gm = m0 + r, gn = n0 + r;
  Raw<32> ra, rb;
  uint32_t sa, sb;

  auto load = [&](int kt) {
    const int b = kt * (TK / 32) + h;
    const bool ka = b < nb;
    if (gm < M && ka) { ra = load_bytes<32>(a + (size_t)gm * Kp + 32 * b, vec); sa = __ldg(as + (size_t)gm * nb + b); }
    else { for (int j = 0; j < 8; ++j) ra.w[j] = 0; sa = 0x100; }
    if (gn < N && ka) { rb = load_bytes<32>(w + (size_t)gn * Kp + 32 * b, vec); sb = __ldg(ws + (size_t)gn * nb + b); }
    else { for (int j = 0; j < 8; ++j) rb.w[j] = 0; sb = 0x100; }
  };
  auto store = [&](int stage) {
    uint8_t* A = smem + stage * STAGE;
    uint8_t* B = A + TILE;
    float* SA = reinterpret_cast<float*>(B + TILE);
    float* SB = SA + TM * 2;
#pragma unroll
    for (int c = 0; c < 2; ++c) {
      *reinterpret_cast<uint4*>(A + tile_off<1>(r, 32 * h + 16 * c)) =
          make_uint4(ra.w[4 * c], ra.w[4 * c + 1], ra.w[4 * c + 2], ra.w[4 * c + 3]);
      *reinterpret_cast<uint4*>(B + tile_off<1>(r, 32 * h + 16 * c)) =
          make_uint4(rb.w[4 * c], rb.w[4 * c + 1], rb.w[4 * c + 2], rb.w[4 * c + 3]);
    }
    SA[2 * r + h] = sa == 0x100 ? 0.f : e8m0(sa);  // 0x100: padding, contributes 0
    SB[2 * r + h] = sb == 0x100 ? 0.f : e8m0(sb);
  };

  float acc[64], tmp[64];
#pragma unroll
  for (int i = 0; i < 64; ++i) acc[i] = 0.f;
  load(0);
  store(0);
  fence_proxy_async();
  __syncthreads();
  const int tt = t & 127;
  for (int kt = 0; kt < KT; ++kt) {
    const int st = kt & 1;
    if (kt + 1 < KT) load(kt + 1);
    uint8_t* base = smem + st * STAGE;
    const uint32_t A = smem_u32(base) + wg * 64 * TK, B = smem_u32(base + TILE);
    const float* SA = reinterpret_cast<const float*>(base + 2 * TILE);
    const float* SB = SA + TM * 2;
#pragma unroll
    for (int j = 0; j < TK / 32; ++j) {
      wgmma_fence();
      wgmma_fp8_m64n128k32<FA::FP8, FB::FP8>(tmp, smem_desc(A + 256 * j, 128, TK * 8), smem_desc(B + 256 * j, 128, TK * 8));
      wgmma_commit();
      wgmma_wait0();
      fence_acc(tmp);
#pragma unroll
      for (int i = 0; i < 64; ++i) {
        const float s2 = SA[2 * (64 * wg + frag_row(i, tt)) + j] * SB[2 * frag_col(i, tt) + j];
        acc[i] = fmaf(tmp[i], s2, acc[i]);
      }
    }
    if (kt + 1 < KT) {
      store(st ^ 1);
      fence_proxy_async();
    }
    __syncthreads();
  }
  store_tile<BIAS>(acc, 1.f, bias, y, m0 + 64 * wg, n0, M, N, tt, epi);
}

}  // namespace mxc

// The two MMA atoms of the block-scaled GEMM skeleton (mxc_bs.cuh). The generated
// `Pair<FA, FB>` (mxc.kernels.blockscaled) gives the sm_100a atom its instruction
// descriptor and kind; everything else is shared.
#pragma once

namespace mxc {
namespace bs {

constexpr int DEC_SBO = 16 * 128;  // bf16 tiles: 16 units per row

#if defined(MXC_SM90)
// ---------------------------------------------------------------- sm_90a: the twin (runs on the H100)
// Both operands decoded to bf16 tiles in shared memory (bf16 activations used in place), then
// wgmma m64n128k16 per warpgroup (rows 64*wg ..), f32 accumulators in registers.
template <class FA, int UA, class FB, int UB>
struct Atom {
  static constexpr bool DECODES = true;
  using A = Op<FA, UA>;
  float acc[64];
  __device__ __forceinline__ void init(uint32_t) {
#pragma unroll
    for (int i = 0; i < 64; ++i) acc[i] = 0.f;
  }
  __device__ __forceinline__ void ready() {}
  __device__ __forceinline__ void step(uint8_t* ta, uint8_t* sa, uint8_t* tb, uint8_t* sb, uint8_t* dec, int kt,
                                       uint32_t release, uint32_t last) {
    (void)kt; (void)last;
    uint8_t* da = A::SCALED ? dec : ta;
    uint8_t* db = dec + Smem<FA, UA, FB, UB>::DEC;
    if constexpr (A::SCALED) decode_tile<FA, UA>(ta, sa, da);
    decode_tile<FB, UB>(tb, sb, db);
    fence_proxy_async();
    __syncthreads();
    const int wg = threadIdx.x >> 7;
    const uint32_t a0 = smem_u32(da) + wg * 8 * DEC_SBO, b0 = smem_u32(db);
    wgmma_fence();
#pragma unroll
    for (int j = 0; j < BK / 16; ++j)
      wgmma_bf16_m64n128k16(acc, smem_desc(a0 + 256 * j, 128, DEC_SBO), smem_desc(b0 + 256 * j, 128, DEC_SBO));
    wgmma_commit();
    wgmma_wait0();
    fence_acc(acc);
    __syncthreads();  // the stage and the bf16 tiles are free
    if (threadIdx.x == 0) mbar_arrive(release);
  }
  template <class P>
  __device__ __forceinline__ void finish(uint32_t, P put) {
    const int t = threadIdx.x & 127, wg = threadIdx.x >> 7;
#pragma unroll
    for (int i = 0; i < 64; ++i) put(acc[i], 64 * wg + frag_row(i, t), frag_col(i, t));
  }
};
#else
// ---------------------------------------------------------------- sm_100a: tcgen05
// Tensor memory: columns [0, 128) the f32 accumulator (row r in lane r), then per stage 8 columns
// of A scales and 8 of W scales (up to two 128x4 chunks each, copied by tcgen05.cp 32x128b.warpx4,
// which replicates a chunk's 32 lanes into the four lane quadrants).
constexpr int TMEM_COLS = 256, SFA_COL = 128, SFB_COL = 128 + 8 * STAGES;

// Shared-memory matrix descriptor (sm_100): start, LBO, SBO in 16-byte units, version 1 (bit 46),
// base offset 0, no swizzle (bits 61-63 = 0).
__device__ __forceinline__ uint64_t umma_desc(uint32_t addr, uint32_t lbo, uint32_t sbo) {
  return smem_desc(addr, lbo, sbo) | (1ull << 46);
}
__device__ __forceinline__ void tc_fence_before() { asm volatile("tcgen05.fence::before_thread_sync;\n" ::: "memory"); }
__device__ __forceinline__ void tc_fence_after() { asm volatile("tcgen05.fence::after_thread_sync;\n" ::: "memory"); }
__device__ __forceinline__ void tc_commit(uint32_t bar) {
  asm volatile("tcgen05.commit.cta_group::1.mbarrier::arrive::one.shared::cluster.b64 [%0];\n" ::"r"(bar) : "memory");
}
// A 128x4 scale chunk (512 bytes: 4 core matrices of 8 rows x 16 bytes) -> 4 tensor-memory columns.
__device__ __forceinline__ void tc_cp_scales(uint32_t taddr, uint32_t chunk) {
  asm volatile("tcgen05.cp.cta_group::1.32x128b.warpx4 [%0], %1;\n" ::"r"(taddr), "l"(umma_desc(chunk, 0, 128))
               : "memory");
}

template <int KIND>
__device__ __forceinline__ void tc_mma(uint32_t d, uint64_t a, uint64_t b, uint32_t idesc, uint32_t sfa, uint32_t sfb,
                                       uint32_t acc) {
  if constexpr (KIND == KIND_MXF8F6F4) {
    asm volatile("{\n .reg .pred p;\n setp.ne.b32 p, %4, 0;\n"
                 " tcgen05.mma.cta_group::1.kind::mxf8f6f4.block_scale.block32 [%0], %1, %2, %3, [%5], [%6], p;\n}\n"
                 ::"r"(d), "l"(a), "l"(b), "r"(idesc), "r"(acc), "r"(sfa), "r"(sfb) : "memory");
  } else if constexpr (KIND == KIND_MXF4) {
    asm volatile("{\n .reg .pred p;\n setp.ne.b32 p, %4, 0;\n"
                 " tcgen05.mma.cta_group::1.kind::mxf4.block_scale.block32 [%0], %1, %2, %3, [%5], [%6], p;\n}\n"
                 ::"r"(d), "l"(a), "l"(b), "r"(idesc), "r"(acc), "r"(sfa), "r"(sfb) : "memory");
  } else if constexpr (KIND == KIND_MXF4NVF4) {
    asm volatile("{\n .reg .pred p;\n setp.ne.b32 p, %4, 0;\n"
                 " tcgen05.mma.cta_group::1.kind::mxf4nvf4.block_scale.block16 [%0], %1, %2, %3, [%5], [%6], p;\n}\n"
                 ::"r"(d), "l"(a), "l"(b), "r"(idesc), "r"(acc), "r"(sfa), "r"(sfb) : "memory");
  } else {  // KIND_F16: bf16 x bf16 (the decode path)
    (void)sfa; (void)sfb;
    asm volatile("{\n .reg .pred p;\n setp.ne.b32 p, %4, 0;\n"
                 " tcgen05.mma.cta_group::1.kind::f16 [%0], %1, %2, %3, p;\n}\n"
                 ::"r"(d), "l"(a), "l"(b), "r"(idesc), "r"(acc) : "memory");
  }
}

template <class FA, int UA, class FB, int UB>
struct Atom {
  using P = Pair<FA, FB>;
  using A = Op<FA, UA>;
  using B = Op<FB, UB>;
  static constexpr bool NATIVE = P::KIND != KIND_F16;
  static constexpr bool DECODES = !NATIVE;
  // MMAs per K tile and the bytes their K advances in each operand's tile (2 units)
  static constexpr int NMMA = BK / P::K, KSTEP = 256;
  uint32_t scratch, tmem;
  __device__ __forceinline__ void init(uint32_t s) {
    scratch = s;  // [0] the decode barrier, [8] the tensor-memory address
    if (threadIdx.x == 0) mbar_init(s, 1);
    if (threadIdx.x < 32) {
      asm volatile("tcgen05.alloc.cta_group::1.sync.aligned.shared::cta.b32 [%0], %1;\n" ::"r"(s + 8), "r"(TMEM_COLS)
                   : "memory");
      asm volatile("tcgen05.relinquish_alloc_permit.cta_group::1.sync.aligned;\n" ::: "memory");
    }
    tc_fence_before();
  }
  __device__ __forceinline__ void ready() {
    tc_fence_after();
    asm volatile("ld.shared.b32 %0, [%1];\n" : "=r"(tmem) : "r"(scratch + 8) : "memory");
  }
  __device__ __forceinline__ void step(uint8_t* ta, uint8_t* sa, uint8_t* tb, uint8_t* sb, uint8_t* dec, int kt,
                                       uint32_t release, uint32_t last) {
    uint32_t a0 = smem_u32(ta), b0 = smem_u32(tb);
    if constexpr (DECODES) {  // the previous tile's MMAs read the bf16 tiles: wait, then decode over them
      if (kt > 0) mbar_wait(scratch, (kt - 1) & 1);
      if constexpr (A::SCALED) {
        decode_tile<FA, UA>(ta, sa, dec);
        a0 = smem_u32(dec);
      }
      decode_tile<FB, UB>(tb, sb, dec + Smem<FA, UA, FB, UB>::DEC);
      b0 = smem_u32(dec + Smem<FA, UA, FB, UB>::DEC);
      fence_proxy_async();
      __syncthreads();
    }
    if (threadIdx.x != 0) return;
    tc_fence_after();
    const int s = kt % STAGES;
    const uint32_t sfa = tmem + SFA_COL + 8 * s, sfb = tmem + SFB_COL + 8 * s;
    if constexpr (NATIVE) {
#pragma unroll
      for (int c = 0; c < A::CH; ++c) tc_cp_scales(sfa + 4 * c, smem_u32(sa) + CHUNK * c);
#pragma unroll
      for (int c = 0; c < B::CH; ++c) tc_cp_scales(sfb + 4 * c, smem_u32(sb) + CHUNK * c);
    }
    constexpr int SA = DECODES && A::SCALED ? DEC_SBO : A::SBO, SB = DECODES ? DEC_SBO : B::SBO;
#pragma unroll
    for (int i = 0; i < NMMA; ++i) {
      // scale columns and byte selectors: 1X (one block per MMA) byte i; 2X bytes 2i, 2i+1;
      // 4X (block16) one whole chunk per MMA
      const uint32_t col = P::VEC == 4 ? 4 * i : 0;
      const uint32_t id = P::VEC == 1 ? i : P::VEC == 2 ? 2 * i : 0;
      const uint32_t idesc = P::IDESC | (id << P::SFA_SHIFT) | (id << P::SFB_SHIFT);
      tc_mma<P::KIND>(tmem, umma_desc(a0 + KSTEP * i, 128, SA), umma_desc(b0 + KSTEP * i, 128, SB), idesc,
                      sfa + col, sfb + col, (kt | i) != 0);
    }
    tc_commit(release);
    if (DECODES) tc_commit(scratch);
    if (last) tc_commit(last);
  }
  template <class Put>
  __device__ __forceinline__ void finish(uint32_t done, Put put) {
    mbar_wait(done, 0);
    tc_fence_after();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, q = warp & 3, h = warp >> 2;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      uint32_t r[16];
      const uint32_t addr = tmem + ((uint32_t)(32 * q) << 16) + 64 * h + 16 * j;
      asm volatile("tcgen05.ld.sync.aligned.32x32b.x16.b32 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, "
                   "%13, %14, %15}, [%16];\n"
                   : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]), "=r"(r[4]), "=r"(r[5]), "=r"(r[6]), "=r"(r[7]),
                     "=r"(r[8]), "=r"(r[9]), "=r"(r[10]), "=r"(r[11]), "=r"(r[12]), "=r"(r[13]), "=r"(r[14]),
                     "=r"(r[15])
                   : "r"(addr));
      asm volatile("tcgen05.wait::ld.sync.aligned;\n" ::: "memory");
#pragma unroll
      for (int i = 0; i < 16; ++i) put(__uint_as_float(r[i]), 32 * q + lane, 64 * h + 16 * j + i);
    }
    tc_fence_before();
    __syncthreads();
    if (threadIdx.x < 32)
      asm volatile("tcgen05.dealloc.cta_group::1.sync.aligned.b32 %0, %1;\n" ::"r"(tmem), "r"(TMEM_COLS) : "memory");
  }
};
#endif

}  // namespace bs
}  // namespace mxc

// RUN: mxc-opt %s --split-input-file -p mxq-legalize-cuda | filecheck %s

// Weight-only at a decode shape (M = 4): the dec kernel for M <= 8, recorded on the op as data.
// CHECK-LABEL: func.func @decode
// CHECK: "mxq.fused_matmul"
// CHECK-SAME: act_format = "none"
// CHECK-SAME: mxq.kernels = [{{.*}}name = "mxc_dec_nvfp4_m8_bias"{{.*}}]
func.func @decode(%x: tensor<4x64xf32>, %b: tensor<8xf32>) -> tensor<4x8xf32> {
  %we = "mxq.param"() {name = "fc.e"} : () -> tensor<8x64xf4E2M1FN>
  %ws = "mxq.param"() {name = "fc.s"} : () -> tensor<8x4xf8E4M3FN>
  %wt = "mxq.param"() {name = "fc.t"} : () -> tensor<f32>
  %y = "mxq.fused_matmul"(%x, %we, %ws, %wt, %b) {act_format = "none", block_size = 16 : i64, epilogue = "relu", layer = "fc", mxq.decision = "nvfp4 weights-only (default)", operandSegmentSizes = array<i32: 1, 1, 1, 1, 1>, w_format = "nvfp4"} : (tensor<4x64xf32>, tensor<8x64xf4E2M1FN>, tensor<8x4xf8E4M3FN>, tensor<f32>, tensor<8xf32>) -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

// A wide layer at a decode shape (M = 16, N = 8192, K = 64): two 16-row weight tiles per dec CTA (256
// CTAs), so each load of the activations serves both; one tile per CTA at N = 8 above.
// CHECK-LABEL: func.func @decode_wide
// CHECK: mxq.kernels = [{{.*}}name = "mxc_dec_nvfp4_m16_r2"{{.*}}r = 2{{.*}}]
func.func @decode_wide(%x: tensor<16x64xf32>) -> tensor<16x8192xf32> {
  %we = "mxq.param"() {name = "fc.e"} : () -> tensor<8192x64xf4E2M1FN>
  %ws = "mxq.param"() {name = "fc.s"} : () -> tensor<8192x4xf8E4M3FN>
  %wt = "mxq.param"() {name = "fc.t"} : () -> tensor<f32>
  %y = "mxq.fused_matmul"(%x, %we, %ws, %wt) {act_format = "none", block_size = 16 : i64, epilogue = "none", layer = "fc", mxq.decision = "nvfp4 weights-only (default)", operandSegmentSizes = array<i32: 1, 1, 1, 1, 0>, w_format = "nvfp4"} : (tensor<16x64xf32>, tensor<8192x64xf4E2M1FN>, tensor<8192x4xf8E4M3FN>, tensor<f32>) -> tensor<16x8192xf32>
  return %y : tensor<16x8192xf32>
}

// -----

// A large layer at a decode shape (M = 4, N = K = 8192): K split 6 ways across CTAs (decs, whose CTAs
// share their activations through shared memory, 24 K tiles of them at 3 CTAs per SM), the partial sums, bias
// and epilogue in dsum.
// CHECK-LABEL: func.func @decode_split
// CHECK: mxq.kernels = [{{.*}}cluster = false{{.*}}kind = "decs"{{.*}}kt = 24{{.*}}name = "mxc_decs_mxfp4_m8_s6_k24"{{.*}}s = 6{{.*}}, {{.*}}kind = "dsum"{{.*}}name = "mxc_dsum_s6_bias"{{.*}}]
// CHECK-SAME: mxq.path = "decode, K split across CTAs: weights to bf16 in registers, mma.sync (M <= 16)"
func.func @decode_split(%x: tensor<4x8192xf32>, %b: tensor<8192xf32>) -> tensor<4x8192xf32> {
  %we = "mxq.param"() {name = "fc.e"} : () -> tensor<8192x8192xf4E2M1FN>
  %ws = "mxq.param"() {name = "fc.s"} : () -> tensor<8192x256xf8E8M0FNU>
  %y = "mxq.fused_matmul"(%x, %we, %ws, %b) {act_format = "none", block_size = 32 : i64, epilogue = "silu", layer = "fc", mxq.decision = "mxfp4 weights-only (default)", operandSegmentSizes = array<i32: 1, 1, 1, 0, 1>, w_format = "mxfp4"} : (tensor<4x8192xf32>, tensor<8192x8192xf4E2M1FN>, tensor<8192x256xf8E8M0FNU>, tensor<8192xf32>) -> tensor<4x8192xf32>
  return %y : tensor<4x8192xf32>
}

// -----

// Prefill shape (M = 16 x 128 = 2048): rdec as from M = 17, at 256 rows of x per CTA (one K tile: no split);
// weight options (offline) do not matter.
// CHECK-LABEL: func.func @prefill
// CHECK: mxq.kernels = [{{.*}}name = "mxc_tilea_r256p"{{.*}}, {{.*}}name = "mxc_rdec_mxfp4_n256_s1"{{.*}}]
// CHECK-SAME: mxq.path = "decode: weights to bf16 in registers, warp-specialized wgmma with A from registers (HGMMA)"
func.func @prefill(%x: tensor<16x128x64xf32>) -> tensor<16x128x8xf32> {
  %we = "mxq.param"() {name = "fc.e"} : () -> tensor<8x64xf4E2M1FN>
  %ws = "mxq.param"() {name = "fc.s"} : () -> tensor<8x2xf8E8M0FNU>
  %y = "mxq.fused_matmul"(%x, %we, %ws) {act_format = "none", block_size = 32 : i64, epilogue = "none", layer = "fc", mxq.decision = "mxfp4{scale_rule=rceil} weights-only (default)", operandSegmentSizes = array<i32: 1, 1, 1, 0, 0>, w_format = "mxfp4{scale_rule=rceil}"} : (tensor<16x128x64xf32>, tensor<8x64xf4E2M1FN>, tensor<8x2xf8E8M0FNU>) -> tensor<16x128x8xf32>
  return %y : tensor<16x128x8xf32>
}

// -----

// Between decode and prefill (M = 64): bf16 activation tiles of 64 rows (K permuted), then rdec (each warp
// decodes its 16 weight rows in registers for wgmma; one K split for this small layer).
// CHECK-LABEL: func.func @between
// CHECK: mxq.kernels = [{{.*}}name = "mxc_tilea_r64p"{{.*}}, {{.*}}name = "mxc_rdec_mxfp4_n64_s1"{{.*}}]
// CHECK-SAME: mxq.path = "decode: weights to bf16 in registers, warp-specialized wgmma with A from registers (HGMMA)"
func.func @between(%x: tensor<64x64xf32>) -> tensor<64x8xf32> {
  %we = "mxq.param"() {name = "fc.e"} : () -> tensor<8x64xf4E2M1FN>
  %ws = "mxq.param"() {name = "fc.s"} : () -> tensor<8x2xf8E8M0FNU>
  %y = "mxq.fused_matmul"(%x, %we, %ws) {act_format = "none", block_size = 32 : i64, epilogue = "none", layer = "fc", mxq.decision = "mxfp4 weights-only (default)", operandSegmentSizes = array<i32: 1, 1, 1, 0, 0>, w_format = "mxfp4"} : (tensor<64x64xf32>, tensor<8x64xf4E2M1FN>, tensor<8x2xf8E8M0FNU>) -> tensor<64x8xf32>
  return %y : tensor<64x8xf32>
}

// -----

// MXFP8 x MXFP8: the activations MX-quantized into bf16 tiles (exact), then the weight-only kernel.
// CHECK-LABEL: func.func @fp8
// CHECK: act_format = "mxfp8"
// CHECK-SAME: mxq.kernels = [{{.*}}name = "mxc_tileq_mxfp8_r16p"{{.*}}, {{.*}}name = "mxc_rdec_mxfp8_n16_s1"{{.*}}]
// CHECK-SAME: mxq.path = "mxfp8 activations quantized, held as bf16 tiles (exact); weights to bf16 in registers, warp-specialized wgmma with A from registers (HGMMA)"
func.func @fp8(%x: tensor<4x64xf32>) -> tensor<4x8xf32> {
  %we = "mxq.param"() {name = "fc.e"} : () -> tensor<8x64xf8E4M3FN>
  %ws = "mxq.param"() {name = "fc.s"} : () -> tensor<8x2xf8E8M0FNU>
  %y = "mxq.fused_matmul"(%x, %we, %ws) {act_format = "mxfp8", block_size = 32 : i64, epilogue = "none", layer = "fc", mxq.decision = "mxfp8 (default)", operandSegmentSizes = array<i32: 1, 1, 1, 0, 0>, w_format = "mxfp8"} : (tensor<4x64xf32>, tensor<8x64xf8E4M3FN>, tensor<8x2xf8E8M0FNU>) -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

// MXFP4 x MXFP4 on Hopper: the block-scaled skeleton's twin (activations quantized to tiles, then
// both operands decoded to bf16 for wgmma).
// CHECK-LABEL: func.func @fp4_acts
// CHECK: act_format = "mxfp4"
// CHECK-SAME: mxq.kernels = [{{.*}}name = "mxc_bsq_mxfp4_u32"{{.*}}, {{.*}}name = "mxc_bsmma_mxfp4_mxfp4"{{.*}}]
// CHECK-SAME: mxq.path = "twin of kind::mxf4: decoded to bf16, wgmma"
func.func @fp4_acts(%x: tensor<4x64xf32>) -> tensor<4x8xf32> {
  %we = "mxq.param"() {name = "fc.e"} : () -> tensor<8x64xf4E2M1FN>
  %ws = "mxq.param"() {name = "fc.s"} : () -> tensor<8x2xf8E8M0FNU>
  %y = "mxq.fused_matmul"(%x, %we, %ws) {act_format = "mxfp4", block_size = 32 : i64, epilogue = "none", layer = "fc", mxq.decision = "mxfp4 (default)", operandSegmentSizes = array<i32: 1, 1, 1, 0, 0>, w_format = "mxfp4"} : (tensor<4x64xf32>, tensor<8x64xf4E2M1FN>, tensor<8x2xf8E8M0FNU>) -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

// MXINT8 activations have no tensor-core kind: weights stay MXINT8, activations high precision, the
// decision says why.
// CHECK-LABEL: func.func @int8_acts
// CHECK: act_format = "none"
// CHECK-SAME: mxq.decision = "mxint8 (default); activations high precision on cuda-sm90: mxint8 activations x mxint8 weights have no cuda-sm90 kernel
// CHECK-SAME: mxq.kernels = [{{.*}}name = "mxc_dec_mxint8_m8"{{.*}}]
func.func @int8_acts(%x: tensor<4x64xf32>) -> tensor<4x8xf32> {
  %we = "mxq.param"() {name = "fc.e"} : () -> tensor<8x64xi8>
  %ws = "mxq.param"() {name = "fc.s"} : () -> tensor<8x2xf8E8M0FNU>
  %y = "mxq.fused_matmul"(%x, %we, %ws) {act_format = "mxint8", block_size = 32 : i64, epilogue = "none", layer = "fc", mxq.decision = "mxint8 (default)", operandSegmentSizes = array<i32: 1, 1, 1, 0, 0>, w_format = "mxint8"} : (tensor<4x64xf32>, tensor<8x64xi8>, tensor<8x2xf8E8M0FNU>) -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

// Stochastic rounding of activations is not in the kernel's quantizer: high precision too.
// CHECK-LABEL: func.func @fp8_stochastic
// CHECK: act_format = "none"
// CHECK-SAME: implements scale_rule=floor, rounding=rne
func.func @fp8_stochastic(%x: tensor<4x64xf32>) -> tensor<4x8xf32> {
  %we = "mxq.param"() {name = "fc.e"} : () -> tensor<8x64xf8E4M3FN>
  %ws = "mxq.param"() {name = "fc.s"} : () -> tensor<8x2xf8E8M0FNU>
  %y = "mxq.fused_matmul"(%x, %we, %ws) {act_format = "mxfp8{rounding=stochastic,seed=1}", block_size = 32 : i64, epilogue = "none", layer = "fc", mxq.decision = "mxfp8 (default)", operandSegmentSizes = array<i32: 1, 1, 1, 0, 0>, w_format = "mxfp8{rounding=stochastic,seed=1}"} : (tensor<4x64xf32>, tensor<8x64xf8E4M3FN>, tensor<8x2xf8E8M0FNU>) -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

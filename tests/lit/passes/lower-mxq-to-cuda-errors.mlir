// RUN: not mxc-opt %s -p lower-mxq-to-cuda 2>&1 | filecheck %s

// The kernel recorded on the op must be the one its formats and shape take (M = 4: the m4 gemv).
// CHECK: layer fc: mxq.kernel says 'mxc_gemv_mxfp4_m16' but its formats and shape take 'mxc_gemv_mxfp4_m4'
func.func @stale(%x: tensor<4x64xf32>) -> tensor<4x8xf32> {
  %we = "mxq.param"() {name = "fc.e"} : () -> tensor<8x64xf4E2M1FN>
  %ws = "mxq.param"() {name = "fc.s"} : () -> tensor<8x2xf8E8M0FNU>
  %y = "mxq.fused_matmul"(%x, %we, %ws) {act_format = "none", block_size = 32 : i64, epilogue = "none", layer = "fc", mxq.decision = "mxfp4", mxq.kernel = "mxc_gemv_mxfp4_m16", operandSegmentSizes = array<i32: 1, 1, 1, 0, 0>, w_format = "mxfp4"} : (tensor<4x64xf32>, tensor<8x64xf4E2M1FN>, tensor<8x2xf8E8M0FNU>) -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

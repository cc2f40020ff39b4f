// RUN: mxc-opt %s -p mxq-legalize-cuda,lower-mxq-to-cuda | filecheck %s

// A module with two entry points that share a weight (--generate's prefill and decode): each
// function gets its own mxq.param ops (an SSA value is used in its own function only), both naming
// the one re-packed weight (`fc1.e.f16x64e2`, not a second copy `fc1.e.f16x64e2.1`).

// CHECK-LABEL: func.func @prefill
// CHECK: %[[E:.*]] = "mxq.param"() {name = "fc1.e.f16x64e2"} : () -> tensor<512xi8>
// CHECK: "flow.dispatch"({{.*}}, %[[E]], {{.*}}) {entry_points = [@mxc_kernels::@mxc_dec_nvfp4_m8_bias]
func.func @prefill(%x: tensor<4x64xf32>, %b: tensor<8xf32>) -> tensor<4x8xf32> {
  %we = "mxq.param"() {name = "fc1.e"} : () -> tensor<8x64xf4E2M1FN>
  %ws = "mxq.param"() {name = "fc1.s"} : () -> tensor<8x4xf8E4M3FN>
  %wt = "mxq.param"() {name = "fc1.t"} : () -> tensor<f32>
  %h = "mxq.fused_matmul"(%x, %we, %ws, %wt, %b) {act_format = "none", block_size = 16 : i64, epilogue = "none", layer = "prefill:fc1", mxq.decision = "nvfp4 weights-only", operandSegmentSizes = array<i32: 1, 1, 1, 1, 1>, w_format = "nvfp4"} : (tensor<4x64xf32>, tensor<8x64xf4E2M1FN>, tensor<8x4xf8E4M3FN>, tensor<f32>, tensor<8xf32>) -> tensor<4x8xf32>
  return %h : tensor<4x8xf32>
}

// CHECK-LABEL: func.func @decode
// CHECK: %[[E2:.*]] = "mxq.param"() {name = "fc1.e.f16x64e2"} : () -> tensor<512xi8>
// CHECK: "flow.dispatch"({{.*}}, %[[E2]], {{.*}}) {entry_points = [@mxc_kernels::@mxc_dec
// CHECK-NOT: f16x64e2.1
func.func @decode(%x: tensor<1x64xf32>, %b: tensor<8xf32>) -> tensor<1x8xf32> {
  %we = "mxq.param"() {name = "fc1.e"} : () -> tensor<8x64xf4E2M1FN>
  %ws = "mxq.param"() {name = "fc1.s"} : () -> tensor<8x4xf8E4M3FN>
  %wt = "mxq.param"() {name = "fc1.t"} : () -> tensor<f32>
  %h = "mxq.fused_matmul"(%x, %we, %ws, %wt, %b) {act_format = "none", block_size = 16 : i64, epilogue = "none", layer = "decode:fc1", mxq.decision = "nvfp4 weights-only", operandSegmentSizes = array<i32: 1, 1, 1, 1, 1>, w_format = "nvfp4"} : (tensor<1x64xf32>, tensor<8x64xf4E2M1FN>, tensor<8x4xf8E4M3FN>, tensor<f32>, tensor<8xf32>) -> tensor<1x8xf32>
  return %h : tensor<1x8xf32>
}

// RUN: mxc-opt %s -p mxq-quantize-weights | filecheck %s

// Constant weights are quantized offline into parameters; run-time quantizes stay.
// CHECK-LABEL: func.func @weights
// CHECK: %[[E:.*]] = "mxq.param"() {mxq.layer = "fc", mxq.nonfinite_blocks = 0 : i64, mxq.source = "inline constant", mxq.sqnr_db = {{.*}}, name = "fc.nvfp4.elements"} : () -> tensor<8x80xf4E2M1FN>
// CHECK: %[[S:.*]] = "mxq.param"() {name = "fc.nvfp4.scales"} : () -> tensor<8x5xf8E4M3FN>
// CHECK: %[[T:.*]] = "mxq.param"() {name = "fc.nvfp4.tensor_scale"} : () -> tensor<f32>
// CHECK: "mxq.dequantize"(%[[E]], %[[S]], %[[T]])
// CHECK: "mxq.quantize"(%arg0)
// CHECK-NOT: arith.constant
func.func @weights(%x: tensor<4x70xf32>) -> tensor<4x8xf32> {
  %w = arith.constant dense<0.75> : tensor<8x70xf32>
  %e, %s, %t = "mxq.quantize"(%w) {format = "nvfp4", block_size = 16 : i64, axis = 1 : i64, resultSegmentSizes = array<i32: 1, 1, 1>} : (tensor<8x70xf32>) -> (tensor<8x80xf4E2M1FN>, tensor<8x5xf8E4M3FN>, tensor<f32>)
  %wd = "mxq.dequantize"(%e, %s, %t) {format = "nvfp4", block_size = 16 : i64, k = 70 : i64, operandSegmentSizes = array<i32: 1, 1, 1>} : (tensor<8x80xf4E2M1FN>, tensor<8x5xf8E4M3FN>, tensor<f32>) -> tensor<8x70xf32>
  %xe, %xs, %xt = "mxq.quantize"(%x) {format = "nvfp4", block_size = 16 : i64, axis = 1 : i64, resultSegmentSizes = array<i32: 1, 1, 1>} : (tensor<4x70xf32>) -> (tensor<4x80xf4E2M1FN>, tensor<4x5xf8E4M3FN>, tensor<f32>)
  %xd = "mxq.dequantize"(%xe, %xs, %xt) {format = "nvfp4", block_size = 16 : i64, k = 70 : i64, operandSegmentSizes = array<i32: 1, 1, 1>} : (tensor<4x80xf4E2M1FN>, tensor<4x5xf8E4M3FN>, tensor<f32>) -> tensor<4x70xf32>
  %y = "mxq.matmul"(%xd, %wd) {layer = "fc", operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x70xf32>, tensor<8x70xf32>) -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// RUN: mxc-opt %s --split-input-file | mxc-opt --split-input-file | filecheck %s
// Round trip: every mxq op parses, verifies and prints back.

// CHECK-LABEL: func.func @quantize_mxfp4
// CHECK: "mxq.quantize"(%{{.*}}) {axis = 1 : i64, block_size = 32 : i64, format = "mxfp4", resultSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x70xf32>) -> (tensor<4x96xf4E2M1FN>, tensor<4x3xf8E8M0FNU>)
func.func @quantize_mxfp4(%x: tensor<4x70xf32>) -> tensor<4x96xf4E2M1FN> {
  %e, %s = "mxq.quantize"(%x) {format = "mxfp4", block_size = 32 : i64, axis = 1 : i64, resultSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x70xf32>) -> (tensor<4x96xf4E2M1FN>, tensor<4x3xf8E8M0FNU>)
  return %e : tensor<4x96xf4E2M1FN>
}

// -----

// CHECK-LABEL: func.func @quantize_nvfp4
// CHECK: %[[Q:.*]]:3 = "mxq.quantize"
// CHECK-SAME: -> (tensor<2x32xf4E2M1FN>, tensor<2x2xf8E4M3FN>, tensor<f32>)
// CHECK: "mxq.dequantize"(%[[Q]]#0, %[[Q]]#1, %[[Q]]#2)
func.func @quantize_nvfp4(%x: tensor<2x32xf32>) -> tensor<2x32xf32> {
  %e, %s, %t = "mxq.quantize"(%x) {format = "nvfp4", block_size = 16 : i64, axis = 1 : i64, resultSegmentSizes = array<i32: 1, 1, 1>} : (tensor<2x32xf32>) -> (tensor<2x32xf4E2M1FN>, tensor<2x2xf8E4M3FN>, tensor<f32>)
  %d = "mxq.dequantize"(%e, %s, %t) {format = "nvfp4", block_size = 16 : i64, k = 32 : i64, operandSegmentSizes = array<i32: 1, 1, 1>} : (tensor<2x32xf4E2M1FN>, tensor<2x2xf8E4M3FN>, tensor<f32>) -> tensor<2x32xf32>
  return %d : tensor<2x32xf32>
}

// -----

// CHECK-LABEL: func.func @scaled_matmul_mixed
// CHECK: "mxq.scaled_matmul"
// CHECK-SAME: a_format = "mxfp8"
// CHECK-SAME: b_format = "mxfp4"
func.func @scaled_matmul_mixed(%a: tensor<4x64xf8E4M3FN>, %sa: tensor<4x2xf8E8M0FNU>, %b: tensor<8x64xf4E2M1FN>, %sb: tensor<8x2xf8E8M0FNU>) -> tensor<4x8xf32> {
  %r = "mxq.scaled_matmul"(%a, %sa, %b, %sb) {a_format = "mxfp8", b_format = "mxfp4", block_size = 32 : i64} : (tensor<4x64xf8E4M3FN>, tensor<4x2xf8E8M0FNU>, tensor<8x64xf4E2M1FN>, tensor<8x2xf8E8M0FNU>) -> tensor<4x8xf32>
  return %r : tensor<4x8xf32>
}

// -----

// CHECK-LABEL: func.func @fused_matmul
// CHECK: "mxq.fused_matmul"
// CHECK-SAME: epilogue = "relu"
// CHECK-SAME: layer = "fc1"
func.func @fused_matmul(%x: tensor<2x3x64xf32>, %b: tensor<8xf32>) -> tensor<2x3x8xf32> {
  %w = "mxq.param"() {name = "fc1.mxfp8.elements"} : () -> tensor<8x64xf8E4M3FN>
  %s = "mxq.param"() {name = "fc1.mxfp8.scales"} : () -> tensor<8x2xf8E8M0FNU>
  %r = "mxq.fused_matmul"(%x, %w, %s, %b) {layer = "fc1", act_format = "mxfp8", w_format = "mxfp8", block_size = 32 : i64, epilogue = "relu", operandSegmentSizes = array<i32: 1, 1, 1, 0, 1>} : (tensor<2x3x64xf32>, tensor<8x64xf8E4M3FN>, tensor<8x2xf8E8M0FNU>, tensor<8xf32>) -> tensor<2x3x8xf32>
  return %r : tensor<2x3x8xf32>
}

// -----

// CHECK-LABEL: func.func @matmul
// CHECK: "mxq.matmul"
func.func @matmul(%x: tensor<4x64xf32>, %w: tensor<8x64xf32>) -> tensor<4x8xf32> {
  %r = "mxq.matmul"(%x, %w) {layer = "fc", operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x64xf32>, tensor<8x64xf32>) -> tensor<4x8xf32>
  return %r : tensor<4x8xf32>
}

// -----

// The dialect's discardable attributes and another dialect's prefixed ones are accepted on mxq ops.
// CHECK-LABEL: func.func @discardable_attributes
// CHECK: "mxq.param"() {mxq.nonfinite_blocks = 0 : i64, mxq.sqnr_db = 2.500000e+01 : f64, name = "fc.mxfp8.elements"}
// CHECK: "mxq.matmul"
// CHECK-SAME: iree.note = "kept"
// CHECK-SAME: mxq.decision = "policy default"
func.func @discardable_attributes(%x: tensor<4x64xf32>) -> tensor<4x8xf32> {
  %e = "mxq.param"() {name = "fc.mxfp8.elements", mxq.sqnr_db = 25.0 : f64, mxq.nonfinite_blocks = 0 : i64} : () -> tensor<8x64xf8E4M3FN>
  %w = "mxq.param"() {name = "fc.weight"} : () -> tensor<8x64xf32>
  %r = "mxq.matmul"(%x, %w) {layer = "fc", mxq.decision = "policy default", iree.note = "kept", operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x64xf32>, tensor<8x64xf32>) -> tensor<4x8xf32>
  return %r : tensor<4x8xf32>
}

// -----

// Dynamic leading (token) dimensions of activations (model.py's get_dynamic_shapes()).
// CHECK-LABEL: func.func @dynamic_tokens
// CHECK: "mxq.quantize"
// CHECK-SAME: (tensor<?x70xf32>) -> (tensor<?x96xf4E2M1FN>, tensor<?x3xf8E8M0FNU>)
// CHECK: "mxq.fused_matmul"
// CHECK-SAME: (tensor<?x?x64xf32>, tensor<8x64xf8E4M3FN>, tensor<8x2xf8E8M0FNU>) -> tensor<?x?x8xf32>
// CHECK: "mxq.matmul"
// CHECK-SAME: (tensor<?x64xf32>, tensor<8x64xf32>) -> tensor<?x8xf32>
func.func @dynamic_tokens(%x: tensor<?x70xf32>, %y: tensor<?x?x64xf32>, %z: tensor<?x64xf32>, %w: tensor<8x64xf32>) -> tensor<?x?x8xf32> {
  %e, %s = "mxq.quantize"(%x) {format = "mxfp4", block_size = 32 : i64, axis = 1 : i64, resultSegmentSizes = array<i32: 1, 1, 0>} : (tensor<?x70xf32>) -> (tensor<?x96xf4E2M1FN>, tensor<?x3xf8E8M0FNU>)
  %we = "mxq.param"() {name = "fc1.mxfp8.elements"} : () -> tensor<8x64xf8E4M3FN>
  %ws = "mxq.param"() {name = "fc1.mxfp8.scales"} : () -> tensor<8x2xf8E8M0FNU>
  %r = "mxq.fused_matmul"(%y, %we, %ws) {layer = "fc1", act_format = "mxfp8", w_format = "mxfp8", block_size = 32 : i64, epilogue = "none", operandSegmentSizes = array<i32: 1, 1, 1, 0, 0>} : (tensor<?x?x64xf32>, tensor<8x64xf8E4M3FN>, tensor<8x2xf8E8M0FNU>) -> tensor<?x?x8xf32>
  %m = "mxq.matmul"(%z, %w) {layer = "fc", operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<?x64xf32>, tensor<8x64xf32>) -> tensor<?x8xf32>
  return %r : tensor<?x?x8xf32>
}

// -----

// CHECK-LABEL: func.func @pack_unpack_nvfp4
// CHECK: %[[B:.*]] = "mxq.pack"(%{{.*}}, %{{.*}}, %{{.*}}) {block_size = 16 : i64, format = "nvfp4", k = 64 : i64
// CHECK-SAME: -> tensor<1x2x?x40xi8>
// CHECK: "mxq.unpack"(%[[B]])
// CHECK-SAME: -> (tensor<1x2x?x64xf4E2M1FN>, tensor<1x2x?x4xf8E4M3FN>, tensor<1x2x?x1xf32>)
func.func @pack_unpack_nvfp4(%e: tensor<1x2x?x64xf4E2M1FN>, %s: tensor<1x2x?x4xf8E4M3FN>, %t: tensor<f32>) -> tensor<1x2x?x1xf32> {
  %b = "mxq.pack"(%e, %s, %t) {format = "nvfp4", block_size = 16 : i64, k = 64 : i64, operandSegmentSizes = array<i32: 1, 1, 1>} : (tensor<1x2x?x64xf4E2M1FN>, tensor<1x2x?x4xf8E4M3FN>, tensor<f32>) -> tensor<1x2x?x40xi8>
  %e2, %s2, %t2 = "mxq.unpack"(%b) {format = "nvfp4", block_size = 16 : i64, k = 64 : i64, resultSegmentSizes = array<i32: 1, 1, 1>} : (tensor<1x2x?x40xi8>) -> (tensor<1x2x?x64xf4E2M1FN>, tensor<1x2x?x4xf8E4M3FN>, tensor<1x2x?x1xf32>)
  return %t2 : tensor<1x2x?x1xf32>
}

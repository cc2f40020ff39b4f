// RUN: mxc-opt %s --split-input-file --verify-diagnostics

func.func @unknown_format(%x: tensor<4x64xf32>) {
  // expected-error @+1 {{unknown format 'mxfp5': valid formats are fp4_ue5m3, if4, mxfp4, mxfp6_e2m3, mxfp6_e3m2, mxfp8, mxfp8_e5m2, mxint8, nvfp4, nvfp4_4over6, nvint4}}
  %e, %s = "mxq.quantize"(%x) {format = "mxfp5", block_size = 32 : i64, axis = 1 : i64, resultSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x64xf32>) -> (tensor<4x64xf4E2M1FN>, tensor<4x2xf8E8M0FNU>)
  return
}

// -----

func.func @wrong_block_size(%x: tensor<4x64xf32>) {
  // expected-error @+1 {{format 'mxfp4' has block size 32, not 16}}
  %e, %s = "mxq.quantize"(%x) {format = "mxfp4", block_size = 16 : i64, axis = 1 : i64, resultSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x64xf32>) -> (tensor<4x64xf4E2M1FN>, tensor<4x4xf8E8M0FNU>)
  return
}

// -----

func.func @unpadded_elements(%x: tensor<4x70xf32>) {
  // expected-error @+1 {{elements must have shape [4, 96] (K=70 padded to the block size 32), got [4, 70]}}
  %e, %s = "mxq.quantize"(%x) {format = "mxfp4", block_size = 32 : i64, axis = 1 : i64, resultSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x70xf32>) -> (tensor<4x70xf4E2M1FN>, tensor<4x3xf8E8M0FNU>)
  return
}

// -----

func.func @wrong_element_type(%x: tensor<4x64xf32>) {
  // expected-error @+1 {{format 'mxfp8' stores f8E4M3FN elements, got f4E2M1FN}}
  %e, %s = "mxq.quantize"(%x) {format = "mxfp8", block_size = 32 : i64, axis = 1 : i64, resultSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x64xf32>) -> (tensor<4x64xf4E2M1FN>, tensor<4x2xf8E8M0FNU>)
  return
}

// -----

func.func @wrong_scale_count(%x: tensor<4x64xf32>) {
  // expected-error @+1 {{scales must have shape [4, 2] (one per block of 32), got [4, 3]}}
  %e, %s = "mxq.quantize"(%x) {format = "mxfp4", block_size = 32 : i64, axis = 1 : i64, resultSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x64xf32>) -> (tensor<4x64xf4E2M1FN>, tensor<4x3xf8E8M0FNU>)
  return
}

// -----

func.func @wrong_scale_type(%x: tensor<4x32xf32>) {
  // expected-error @+1 {{format 'nvfp4' uses f8E4M3FN scales, got f8E8M0FNU}}
  %e, %s, %t = "mxq.quantize"(%x) {format = "nvfp4", block_size = 16 : i64, axis = 1 : i64, resultSegmentSizes = array<i32: 1, 1, 1>} : (tensor<4x32xf32>) -> (tensor<4x32xf4E2M1FN>, tensor<4x2xf8E8M0FNU>, tensor<f32>)
  return
}

// -----

func.func @nvfp4_needs_tensor_scale(%x: tensor<4x32xf32>) {
  // expected-error @+1 {{format 'nvfp4' needs a tensor_scale operand/result}}
  %e, %s = "mxq.quantize"(%x) {format = "nvfp4", block_size = 16 : i64, axis = 1 : i64, resultSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x32xf32>) -> (tensor<4x32xf4E2M1FN>, tensor<4x2xf8E4M3FN>)
  return
}

// -----

func.func @mx_has_no_tensor_scale(%x: tensor<4x32xf32>) {
  // expected-error @+1 {{format 'mxfp4' has no tensor scale}}
  %e, %s, %t = "mxq.quantize"(%x) {format = "mxfp4", block_size = 32 : i64, axis = 1 : i64, resultSegmentSizes = array<i32: 1, 1, 1>} : (tensor<4x32xf32>) -> (tensor<4x32xf4E2M1FN>, tensor<4x1xf8E8M0FNU>, tensor<f32>)
  return
}

// -----

func.func @not_innermost_axis(%x: tensor<64x4xf32>) {
  // expected-error @+1 {{axis must be the innermost axis (1); transpose first}}
  %e, %s = "mxq.quantize"(%x) {format = "mxfp4", block_size = 32 : i64, axis = 0 : i64, resultSegmentSizes = array<i32: 1, 1, 0>} : (tensor<64x4xf32>) -> (tensor<64x32xf4E2M1FN>, tensor<64x1xf8E8M0FNU>)
  return
}

// -----

func.func @dequantize_wrong_k(%e: tensor<4x64xf4E2M1FN>, %s: tensor<4x2xf8E8M0FNU>) {
  // expected-error @+1 {{result must have 60 elements along the last axis}}
  %d = "mxq.dequantize"(%e, %s) {format = "mxfp4", block_size = 32 : i64, k = 60 : i64, operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x64xf4E2M1FN>, tensor<4x2xf8E8M0FNU>) -> tensor<4x64xf32>
  return
}

// -----

func.func @scaled_matmul_mixed_block_sizes(%a: tensor<4x64xf4E2M1FN>, %sa: tensor<4x4xf8E4M3FN>, %b: tensor<8x64xf4E2M1FN>, %sb: tensor<8x2xf8E8M0FNU>) {
  // expected-error @+1 {{format 'nvfp4' has block size 16, not 32}}
  %r = "mxq.scaled_matmul"(%a, %sa, %b, %sb) {a_format = "nvfp4", b_format = "mxfp4", block_size = 32 : i64} : (tensor<4x64xf4E2M1FN>, tensor<4x4xf8E4M3FN>, tensor<8x64xf4E2M1FN>, tensor<8x2xf8E8M0FNU>) -> tensor<4x8xf32>
  return
}

// -----

func.func @scaled_matmul_k_mismatch(%a: tensor<4x64xf8E4M3FN>, %sa: tensor<4x2xf8E8M0FNU>, %b: tensor<8x32xf4E2M1FN>, %sb: tensor<8x1xf8E8M0FNU>) {
  // expected-error @+1 {{elements must have shape [8, 64]}}
  %r = "mxq.scaled_matmul"(%a, %sa, %b, %sb) {a_format = "mxfp8", b_format = "mxfp4", block_size = 32 : i64} : (tensor<4x64xf8E4M3FN>, tensor<4x2xf8E8M0FNU>, tensor<8x32xf4E2M1FN>, tensor<8x1xf8E8M0FNU>) -> tensor<4x8xf32>
  return
}

// -----

func.func @fused_bad_epilogue(%x: tensor<4x64xf32>, %w: tensor<8x64xf8E4M3FN>, %s: tensor<8x2xf8E8M0FNU>) {
  // expected-error @+1 {{epilogue must be one of none, relu, gelu, silu}}
  %r = "mxq.fused_matmul"(%x, %w, %s) {layer = "fc", act_format = "none", w_format = "mxfp8", block_size = 32 : i64, epilogue = "tanh", operandSegmentSizes = array<i32: 1, 1, 1, 0, 0>} : (tensor<4x64xf32>, tensor<8x64xf8E4M3FN>, tensor<8x2xf8E8M0FNU>) -> tensor<4x8xf32>
  return
}

// -----

func.func @fused_bad_bias(%x: tensor<4x64xf32>, %w: tensor<8x64xf8E4M3FN>, %s: tensor<8x2xf8E8M0FNU>, %b: tensor<4xf32>) {
  // expected-error @+1 {{bias must have shape [8]}}
  %r = "mxq.fused_matmul"(%x, %w, %s, %b) {layer = "fc", act_format = "mxfp8", w_format = "mxfp8", block_size = 32 : i64, epilogue = "none", operandSegmentSizes = array<i32: 1, 1, 1, 0, 1>} : (tensor<4x64xf32>, tensor<8x64xf8E4M3FN>, tensor<8x2xf8E8M0FNU>, tensor<4xf32>) -> tensor<4x8xf32>
  return
}

// -----

func.func @matmul_k_mismatch(%x: tensor<4x64xf32>, %w: tensor<8x32xf32>) {
  // expected-error @+1 {{contraction sizes differ: lhs K=64, rhs K=32}}
  %r = "mxq.matmul"(%x, %w) {layer = "fc", operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x64xf32>, tensor<8x32xf32>) -> tensor<4x8xf32>
  return
}

// -----

func.func @option_not_for_format(%x: tensor<4x64xf32>) {
  // expected-error @+1 {{scale_rule applies to MX formats (E8M0 scales); nvfp4 computes its scales from an FP32 tensor scale}}
  %e, %s, %t = "mxq.quantize"(%x) {format = "nvfp4{scale_rule=rceil}", block_size = 16 : i64, axis = 1 : i64, resultSegmentSizes = array<i32: 1, 1, 1>} : (tensor<4x64xf32>) -> (tensor<4x64xf4E2M1FN>, tensor<4x4xf8E4M3FN>, tensor<f32>)
  return
}

// -----

func.func @unknown_option_value(%x: tensor<4x64xf32>) {
  // expected-error @+1 {{rounding must be one of rne, stochastic, got 'up'}}
  %e, %s = "mxq.quantize"(%x) {format = "mxfp4{rounding=up}", block_size = 32 : i64, axis = 1 : i64, resultSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x64xf32>) -> (tensor<4x64xf4E2M1FN>, tensor<4x2xf8E8M0FNU>)
  return
}

// -----

func.func @hadamard_k_not_divisible(%x: tensor<4x48xf32>) {
  // expected-error @+1 {{hadamard=32 needs K divisible by 32, got K=48}}
  %e, %s = "mxq.quantize"(%x) {format = "mxfp4{hadamard=32}", block_size = 32 : i64, axis = 1 : i64, resultSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x48xf32>) -> (tensor<4x64xf4E2M1FN>, tensor<4x2xf8E8M0FNU>)
  return
}

// -----

func.func @if4_stores_i4_codes(%x: tensor<4x32xf32>) {
  // expected-error @+1 {{format 'if4' stores i4 elements, got f4E2M1FN}}
  %e, %s, %t = "mxq.quantize"(%x) {format = "if4", block_size = 16 : i64, axis = 1 : i64, resultSegmentSizes = array<i32: 1, 1, 1>} : (tensor<4x32xf32>) -> (tensor<4x32xf4E2M1FN>, tensor<4x2xi8>, tensor<f32>)
  return
}

// -----

func.func @fp6_scale_type(%x: tensor<4x32xf32>) {
  // expected-error @+1 {{format 'mxfp6_e2m3' uses f8E8M0FNU scales, got i8}}
  %e, %s = "mxq.quantize"(%x) {format = "mxfp6_e2m3", block_size = 32 : i64, axis = 1 : i64, resultSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x32xf32>) -> (tensor<4x32xf6E2M3FN>, tensor<4x1xi8>)
  return
}

// -----

func.func @hadamard_mismatch(%x: tensor<4x64xf32>, %w: tensor<8x64xf8E4M3FN>, %s: tensor<8x2xf8E8M0FNU>) {
  // expected-error @+1 {{activations and weights must use the same hadamard rotation}}
  %r = "mxq.fused_matmul"(%x, %w, %s) {layer = "fc", act_format = "mxfp8{hadamard=32}", w_format = "mxfp8", block_size = 32 : i64, epilogue = "none", operandSegmentSizes = array<i32: 1, 1, 1, 0, 0>} : (tensor<4x64xf32>, tensor<8x64xf8E4M3FN>, tensor<8x2xf8E8M0FNU>) -> tensor<4x8xf32>
  return
}

// -----

func.func @matmul_unknown_attribute(%x: tensor<4x64xf32>, %w: tensor<8x64xf32>) {
  // expected-error @+1 {{'mxq.matmul' op unknown attribute 'bogus': mxq.matmul takes layer, operandSegmentSizes, and the dialect's discardable mxq.decision, mxq.layer, mxq.op}}
  %r = "mxq.matmul"(%x, %w) {layer = "fc", bogus = 1 : i64, operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x64xf32>, tensor<8x64xf32>) -> tensor<4x8xf32>
  return
}

// -----

func.func @fused_unknown_mxq_attribute(%x: tensor<4x64xf32>, %w: tensor<8x64xf8E4M3FN>, %s: tensor<8x2xf8E8M0FNU>) {
  // expected-error @+1 {{'mxq.fused_matmul' op unknown attribute 'mxq.epilog': mxq.fused_matmul takes layer, act_format, w_format, block_size, epilogue, operandSegmentSizes}}
  %r = "mxq.fused_matmul"(%x, %w, %s) {layer = "fc", act_format = "none", w_format = "mxfp8", block_size = 32 : i64, epilogue = "none", mxq.epilog = "relu", operandSegmentSizes = array<i32: 1, 1, 1, 0, 0>} : (tensor<4x64xf32>, tensor<8x64xf8E4M3FN>, tensor<8x2xf8E8M0FNU>) -> tensor<4x8xf32>
  return
}

// -----

func.func @param_unknown_attribute() {
  // expected-error @+1 {{'mxq.param' op unknown attribute 'value': mxq.param takes name, and the dialect's discardable}}
  %w = "mxq.param"() {name = "fc.weight", value = 1.0 : f32} : () -> tensor<8x64xf32>
  return
}

// -----

func.func @matmul_dynamic_weight(%x: tensor<?x64xf32>, %w: tensor<?x64xf32>) {
  // expected-error @+1 {{'mxq.matmul' op operand 'rhs' has a dynamic shape (tensor<?x64xf32>): a weight, its scales and a bias are static}}
  %r = "mxq.matmul"(%x, %w) {layer = "fc", operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<?x64xf32>, tensor<?x64xf32>) -> tensor<?x?xf32>
  return
}

// -----

func.func @matmul_dynamic_k(%x: tensor<4x?xf32>, %w: tensor<8x64xf32>) {
  // expected-error @+1 {{'mxq.matmul' op operand 'lhs' has a dynamic last dimension (tensor<4x?xf32>): the contraction axis and the blocks along it must be static}}
  %r = "mxq.matmul"(%x, %w) {layer = "fc", operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x?xf32>, tensor<8x64xf32>) -> tensor<4x8xf32>
  return
}

// -----

func.func @fused_matmul_dynamic_result_mismatch(%x: tensor<?x64xf32>, %w: tensor<8x64xf4E2M1FN>, %s: tensor<8x2xf8E8M0FNU>) {
  // expected-error @+1 {{'mxq.fused_matmul' op result must have shape}}
  %r = "mxq.fused_matmul"(%x, %w, %s) {layer = "fc", act_format = "none", w_format = "mxfp4", block_size = 32 : i64, epilogue = "none", operandSegmentSizes = array<i32: 1, 1, 1, 0, 0>} : (tensor<?x64xf32>, tensor<8x64xf4E2M1FN>, tensor<8x2xf8E8M0FNU>) -> tensor<4x8xf32>
  return
}

// -----

func.func @quantize_dynamic_result(%x: tensor<4x64xf32>) {
  // expected-error @+1 {{'mxq.quantize' op result 'scales' has a dynamic last dimension (tensor<4x?xf8E8M0FNU>)}}
  %e, %s = "mxq.quantize"(%x) {format = "mxfp4", block_size = 32 : i64, axis = 1 : i64, resultSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x64xf32>) -> (tensor<4x64xf4E2M1FN>, tensor<4x?xf8E8M0FNU>)
  return
}

// -----

func.func @param_unranked() {
  // expected-error @+1 {{'mxq.param' op result 'result' must be a ranked tensor, got tensor<*xf32>}}
  %w = "mxq.param"() {name = "fc.weight"} : () -> tensor<*xf32>
  return
}

// -----

func.func @pack_wrong_row_bytes(%e: tensor<4x64xf8E4M3FN>, %s: tensor<4x2xf8E8M0FNU>) {
  // expected-error @+1 {{result must be rows of 66 i8 bytes ('mxfp8', K=64), got tensor<4x64xi8>}}
  %b = "mxq.pack"(%e, %s) {format = "mxfp8", block_size = 32 : i64, k = 64 : i64, operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x64xf8E4M3FN>, tensor<4x2xf8E8M0FNU>) -> tensor<4x64xi8>
  return
}

// -----

func.func @unpack_one_tensor_scale(%b: tensor<4x40xi8>) {
  // expected-error @+1 {{tensor_scale must be one per row, [..., 1]}}
  %e, %s, %t = "mxq.unpack"(%b) {format = "nvfp4", block_size = 16 : i64, k = 64 : i64, resultSegmentSizes = array<i32: 1, 1, 1>} : (tensor<4x40xi8>) -> (tensor<4x64xf4E2M1FN>, tensor<4x4xf8E4M3FN>, tensor<f32>)
  return
}

// -----

func.func @dequantize_tensor_scale_per_column(%e: tensor<4x64xf4E2M1FN>, %s: tensor<4x4xf8E4M3FN>, %t: tensor<64xf32>) {
  // expected-error @+1 {{tensor_scale must be tensor<f32> or one per row, tensor<4x1xf32>, got tensor<64xf32>}}
  %d = "mxq.dequantize"(%e, %s, %t) {format = "nvfp4", block_size = 16 : i64, k = 64 : i64, operandSegmentSizes = array<i32: 1, 1, 1>} : (tensor<4x64xf4E2M1FN>, tensor<4x4xf8E4M3FN>, tensor<64xf32>) -> tensor<4x64xf32>
  return
}

// RUN: mxc-opt %s -p 'lower-mxq-to-linalg{act-dtype=bf16}' | filecheck %s
// RUN: mxc-opt %s -p lower-mxq-to-linalg | filecheck %s --check-prefix=F32

// act-dtype=bf16 (mxc compile --act-dtype bf16): a weight-only layer's activations are rounded to bf16
// (arith.truncf, to nearest even) and extended back before the contraction, as cuda-sm90's kernels
// multiply them; a layer with quantized activations quantizes the float32 values, unrounded.
// CHECK-LABEL: func.func @mlp
// CHECK: %[[B:.*]] = arith.truncf %arg0 : tensor<4x64xf32> to tensor<4x64xbf16>
// CHECK: %[[X:.*]] = arith.extf %[[B]] : tensor<4x64xbf16> to tensor<4x64xf32>
// CHECK: linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "reduction"]} ins(%[[X]], 
// CHECK-NOT: arith.truncf {{.*}} to tensor<4x64xbf16>
// CHECK: return
// F32-LABEL: func.func @mlp
// F32-NOT: bf16
func.func @mlp(%x: tensor<4x64xf32>, %b: tensor<8xf32>) -> tensor<4x8xf32> {
  %we = "mxq.param"() {name = "fc1.e"} : () -> tensor<8x64xf4E2M1FN>
  %ws = "mxq.param"() {name = "fc1.s"} : () -> tensor<8x4xf8E4M3FN>
  %wt = "mxq.param"() {name = "fc1.t"} : () -> tensor<f32>
  %h = "mxq.fused_matmul"(%x, %we, %ws, %wt, %b) {act_format = "none", block_size = 16 : i64, epilogue = "relu", layer = "fc1", mxq.decision = "nvfp4 weights-only", operandSegmentSizes = array<i32: 1, 1, 1, 1, 1>, w_format = "nvfp4"} : (tensor<4x64xf32>, tensor<8x64xf4E2M1FN>, tensor<8x4xf8E4M3FN>, tensor<f32>, tensor<8xf32>) -> tensor<4x8xf32>
  %he = "tensor.empty"() : () -> tensor<4x64xf32>
  %h64 = "tensor.insert_slice"(%h, %he) <{operandSegmentSizes = array<i32: 1, 1, 0, 0, 0>, static_offsets = array<i64: 0, 0>, static_sizes = array<i64: 4, 8>, static_strides = array<i64: 1, 1>}> : (tensor<4x8xf32>, tensor<4x64xf32>) -> tensor<4x64xf32>
  %ve = "mxq.param"() {name = "fc2.e"} : () -> tensor<8x64xf8E4M3FN>
  %vs = "mxq.param"() {name = "fc2.s"} : () -> tensor<8x2xf8E8M0FNU>
  %y = "mxq.fused_matmul"(%h64, %ve, %vs) {act_format = "mxfp8", block_size = 32 : i64, epilogue = "none", layer = "fc2", mxq.decision = "mxfp8", operandSegmentSizes = array<i32: 1, 1, 1, 0, 0>, w_format = "mxfp8"} : (tensor<4x64xf32>, tensor<8x64xf8E4M3FN>, tensor<8x2xf8E8M0FNU>) -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

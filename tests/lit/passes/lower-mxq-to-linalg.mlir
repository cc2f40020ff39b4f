// RUN: mxc-opt %s --split-input-file -p lower-mxq-to-linalg | filecheck %s
// RUN: mxc-opt %s --split-input-file -p 'lower-mxq-to-linalg{contraction=scaled-generic}' | filecheck %s --check-prefix=CANON
// RUN: not mxc-opt %s -p 'lower-mxq-to-linalg{contraction=tiled}' 2>&1 | filecheck %s --check-prefix=BADOPT

// An option value is checked against the option's type when the pipeline is parsed.
// BADOPT: mxc-opt: error: lower-mxq-to-linalg: option 'contraction' must be one of decomposed, scaled-generic, amx, fma, dpbf16, got 'tiled'

// MX quantize: block amax (NaN-propagating maximumf), E8M0 code from the exponent bits,
// elements rounded by math.roundeven before an exact truncf.
// CHECK-LABEL: func.func @quantize_mxfp4
// CHECK: tensor.insert_slice %arg0 into %{{.*}}[0, 0] [4, 70] [1, 1] : tensor<4x70xf32> into tensor<4x96xf32>
// CHECK: tensor.expand_shape {{.*}} into tensor<4x3x32xf32>
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]
// CHECK: arith.maximumf
// CHECK: linalg.generic
// CHECK: arith.shrui
// CHECK: arith.bitcast %{{.*}} : i8 to f8E8M0FNU
// CHECK: linalg.generic
// CHECK: math.roundeven
// CHECK: math.copysign
// CHECK: arith.truncf %{{.*}} : f32 to f4E2M1FN
// CHECK: tensor.collapse_shape {{.*}} into tensor<4x96xf4E2M1FN>
// CHECK-NOT: mxq.quantize
func.func @quantize_mxfp4(%x: tensor<4x70xf32>) -> (tensor<4x96xf4E2M1FN>, tensor<4x3xf8E8M0FNU>) {
  %e, %s = "mxq.quantize"(%x) {format = "mxfp4", block_size = 32 : i64, axis = 1 : i64, resultSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x70xf32>) -> (tensor<4x96xf4E2M1FN>, tensor<4x3xf8E8M0FNU>)
  return %e, %s : tensor<4x96xf4E2M1FN>, tensor<4x3xf8E8M0FNU>
}

// -----

// NVFP4 quantize: a whole-tensor amax over finite values, S_enc = 2688 / amax, UE4M3 block scales.
// CHECK-LABEL: func.func @quantize_nvfp4
// CHECK: linalg.generic {{.*}} iterator_types = ["reduction", "reduction"]
// CHECK: arith.constant 2.688000e+03 : f32
// CHECK: arith.truncf %{{.*}} : f32 to f4E2M1FN
// CHECK: arith.truncf %{{.*}} : f32 to f8E4M3FN
func.func @quantize_nvfp4(%x: tensor<2x32xf32>) -> (tensor<2x32xf4E2M1FN>, tensor<2x2xf8E4M3FN>, tensor<f32>) {
  %e, %s, %t = "mxq.quantize"(%x) {format = "nvfp4", block_size = 16 : i64, axis = 1 : i64, resultSegmentSizes = array<i32: 1, 1, 1>} : (tensor<2x32xf32>) -> (tensor<2x32xf4E2M1FN>, tensor<2x2xf8E4M3FN>, tensor<f32>)
  return %e, %s, %t : tensor<2x32xf4E2M1FN>, tensor<2x2xf8E4M3FN>, tensor<f32>
}

// -----

// Fused: quantize x, dequantize both operands, f32 contraction, bias + relu epilogue.
// CHECK-LABEL: func.func @fused
// CHECK: arith.truncf %{{.*}} : f32 to f8E4M3FN
// CHECK: arith.extf %{{.*}} : f8E4M3FN to f32
// CHECK: linalg.generic {indexing_maps = [#{{.*}}, #{{.*}}, #{{.*}}], iterator_types = ["parallel", "parallel", "reduction"]}
// CHECK: arith.addf
// CHECK: arith.maximumf
// CHECK-NOT: mxq.fused_matmul
// CANON-LABEL: func.func @fused
// CANON: linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction", "reduction"]
// CANON: arith.scaling_extf %{{.*}}, %{{.*}} : f8E4M3FN, f8E8M0FNU to f32
// CANON: arith.scaling_extf %{{.*}}, %{{.*}} : f8E4M3FN, f8E8M0FNU to f32
// CANON: arith.mulf
// CANON: arith.addf
func.func @fused(%x: tensor<4x64xf32>, %b: tensor<8xf32>) -> tensor<4x8xf32> {
  %w = "mxq.param"() {name = "fc.e"} : () -> tensor<8x64xf8E4M3FN>
  %s = "mxq.param"() {name = "fc.s"} : () -> tensor<8x2xf8E8M0FNU>
  %r = "mxq.fused_matmul"(%x, %w, %s, %b) {layer = "fc", act_format = "mxfp8", w_format = "mxfp8", block_size = 32 : i64, epilogue = "relu", operandSegmentSizes = array<i32: 1, 1, 1, 0, 1>} : (tensor<4x64xf32>, tensor<8x64xf8E4M3FN>, tensor<8x2xf8E8M0FNU>, tensor<8xf32>) -> tensor<4x8xf32>
  return %r : tensor<4x8xf32>
}

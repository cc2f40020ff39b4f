// RUN: mxc-opt %s --split-input-file -p lower-mxq-to-linalg | filecheck %s

// One function per format family and option: the lowering steps that make each
// one bit-exact with mxc.numerics (tests/pytest/test_lowering_bits.py runs them).

// E5M2 elements: emax 15 in the FLOOR rule, an exact truncf to f8E5M2.
// CHECK-LABEL: func.func @quantize_mxfp8_e5m2
// CHECK: arith.constant 15 : i32
// CHECK: arith.truncf %{{.*}} : f32 to f8E5M2
func.func @quantize_mxfp8_e5m2(%x: tensor<4x32xf32>) -> (tensor<4x32xf8E5M2>, tensor<4x1xf8E8M0FNU>) {
  %e, %s = "mxq.quantize"(%x) {format = "mxfp8_e5m2", block_size = 32 : i64, axis = 1 : i64, resultSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x32xf32>) -> (tensor<4x32xf8E5M2>, tensor<4x1xf8E8M0FNU>)
  return %e, %s : tensor<4x32xf8E5M2>, tensor<4x1xf8E8M0FNU>
}

// -----

// FP6: IREE stores no f6 type, so codes are encoded with integer ops into i8;
// only the function boundary keeps a cast to the dialect's f6 type.
// CHECK-LABEL: func.func @quantize_mxfp6_e2m3
// CHECK: arith.trunci %{{.*}} : i32 to i8
// CHECK: tensor.collapse_shape {{.*}} into tensor<4x32xi8>
// CHECK: builtin.unrealized_conversion_cast {{.*}} : tensor<4x32xi8> to tensor<4x32xf6E2M3FN>
func.func @quantize_mxfp6_e2m3(%x: tensor<4x32xf32>) -> (tensor<4x32xf6E2M3FN>, tensor<4x1xf8E8M0FNU>) {
  %e, %s = "mxq.quantize"(%x) {format = "mxfp6_e2m3", block_size = 32 : i64, axis = 1 : i64, resultSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x32xf32>) -> (tensor<4x32xf6E2M3FN>, tensor<4x1xf8E8M0FNU>)
  return %e, %s : tensor<4x32xf6E2M3FN>, tensor<4x1xf8E8M0FNU>
}

// -----

// MXINT8: q = rne(v * 64) clamped to 127, as a two's complement i8.
// CHECK-LABEL: func.func @quantize_mxint8
// CHECK: arith.constant 6.400000e+01 : f32
// CHECK: math.roundeven
// CHECK: arith.fptosi %{{.*}} : f32 to i32
// CHECK: arith.trunci %{{.*}} : i32 to i8
func.func @quantize_mxint8(%x: tensor<4x32xf32>) -> (tensor<4x32xi8>, tensor<4x1xf8E8M0FNU>) {
  %e, %s = "mxq.quantize"(%x) {format = "mxint8", block_size = 32 : i64, axis = 1 : i64, resultSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x32xf32>) -> (tensor<4x32xi8>, tensor<4x1xf8E8M0FNU>)
  return %e, %s : tensor<4x32xi8>, tensor<4x1xf8E8M0FNU>
}

// -----

// RCEIL: e = ceil(log2(amax * 1/448)): the float32 product, then exponent + (mantissa != 0).
// CHECK-LABEL: func.func @quantize_mxfp8_rceil
// CHECK: arith.constant 0.00223214296 : f32
// CHECK: arith.constant 8388607 : i32
// CHECK: arith.extui %{{.*}} : i1 to i32
func.func @quantize_mxfp8_rceil(%x: tensor<4x32xf32>) -> (tensor<4x32xf8E4M3FN>, tensor<4x1xf8E8M0FNU>) {
  %e, %s = "mxq.quantize"(%x) {format = "mxfp8{scale_rule=rceil}", block_size = 32 : i64, axis = 1 : i64, resultSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x32xf32>) -> (tensor<4x32xf8E4M3FN>, tensor<4x1xf8E8M0FNU>)
  return %e, %s : tensor<4x32xf8E4M3FN>, tensor<4x1xf8E8M0FNU>
}

// -----

// EVEN: round amax's mantissa to E2M1's 1 bit (add 2^21, clear the low 22 bits), then FLOOR.
// CHECK-LABEL: func.func @quantize_mxfp4_even
// CHECK: arith.constant 2097152 : i32
// CHECK: arith.constant -4194304 : i32
func.func @quantize_mxfp4_even(%x: tensor<4x32xf32>) -> (tensor<4x32xf4E2M1FN>, tensor<4x1xf8E8M0FNU>) {
  %e, %s = "mxq.quantize"(%x) {format = "mxfp4{scale_rule=even}", block_size = 32 : i64, axis = 1 : i64, resultSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x32xf32>) -> (tensor<4x32xf4E2M1FN>, tensor<4x1xf8E8M0FNU>)
  return %e, %s : tensor<4x32xf4E2M1FN>, tensor<4x1xf8E8M0FNU>
}

// -----

// Stochastic rounding: u from the murmur3 finalizer of the flat element index
// (linalg.index), floor + (u < frac) instead of roundeven.
// CHECK-LABEL: func.func @quantize_mxfp4_stochastic
// CHECK: linalg.index 2 : index
// CHECK: arith.constant -2048144789 : i32
// CHECK: arith.muli
// CHECK: math.floor
// CHECK-NOT: math.roundeven
// CHECK: return
func.func @quantize_mxfp4_stochastic(%x: tensor<4x32xf32>) -> (tensor<4x32xf4E2M1FN>, tensor<4x1xf8E8M0FNU>) {
  %e, %s = "mxq.quantize"(%x) {format = "mxfp4{rounding=stochastic,seed=7}", block_size = 32 : i64, axis = 1 : i64, resultSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x32xf32>) -> (tensor<4x32xf4E2M1FN>, tensor<4x1xf8E8M0FNU>)
  return %e, %s : tensor<4x32xf4E2M1FN>, tensor<4x1xf8E8M0FNU>
}

// -----

// Hadamard 16: four butterfly stages (pairs read through constant-index maps), then 1/4.
// CHECK-DAG: #[[LO:.*]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, 0, d4)>
// CHECK-DAG: #[[HI:.*]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, 1, d4)>
// CHECK-LABEL: func.func @quantize_mxfp4_hadamard
// CHECK-COUNT-4: linalg.generic {indexing_maps = [#[[LO]], #[[HI]], #{{.*}}]
// CHECK: arith.constant 2.500000e-01 : f32
func.func @quantize_mxfp4_hadamard(%x: tensor<4x32xf32>) -> (tensor<4x32xf4E2M1FN>, tensor<4x1xf8E8M0FNU>) {
  %e, %s = "mxq.quantize"(%x) {format = "mxfp4{hadamard=16}", block_size = 32 : i64, axis = 1 : i64, resultSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x32xf32>) -> (tensor<4x32xf4E2M1FN>, tensor<4x1xf8E8M0FNU>)
  return %e, %s : tensor<4x32xf4E2M1FN>, tensor<4x1xf8E8M0FNU>
}

// -----

// Four Over Six: S_enc = 256 * 6 / amax; map-6 and map-4 (amax / 4) scales; a reduction
// with two error accumulators; map-4 only when strictly better (cmpf olt).
// CHECK-LABEL: func.func @quantize_nvfp4_4over6
// CHECK: arith.constant 1.536000e+03 : f32
// CHECK: arith.constant 4.000000e+00 : f32
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]
// CHECK: arith.cmpf olt
func.func @quantize_nvfp4_4over6(%x: tensor<2x32xf32>) -> (tensor<2x32xf4E2M1FN>, tensor<2x2xf8E4M3FN>, tensor<f32>) {
  %e, %s, %t = "mxq.quantize"(%x) {format = "nvfp4_4over6", block_size = 16 : i64, axis = 1 : i64, resultSegmentSizes = array<i32: 1, 1, 1>} : (tensor<2x32xf32>) -> (tensor<2x32xf4E2M1FN>, tensor<2x2xf8E4M3FN>, tensor<f32>)
  return %e, %s, %t : tensor<2x32xf4E2M1FN>, tensor<2x2xf8E4M3FN>, tensor<f32>
}

// -----

// IF4: the INT candidate (x 7/6, clamp 7), i4 codes, the INT flag OR-ed into bit 7 of an i8 scale.
// CHECK-LABEL: func.func @quantize_if4
// CHECK: arith.constant 1.16666663 : f32
// CHECK: arith.trunci %{{.*}} : i32 to i4
// CHECK: arith.constant 128 : i32
// CHECK: arith.ori
// CHECK: arith.trunci %{{.*}} : i32 to i8
func.func @quantize_if4(%x: tensor<2x32xf32>) -> (tensor<2x32xi4>, tensor<2x2xi8>, tensor<f32>) {
  %e, %s, %t = "mxq.quantize"(%x) {format = "if4", block_size = 16 : i64, axis = 1 : i64, resultSegmentSizes = array<i32: 1, 1, 1>} : (tensor<2x32xf32>) -> (tensor<2x32xi4>, tensor<2x2xi8>, tensor<f32>)
  return %e, %s, %t : tensor<2x32xi4>, tensor<2x2xi8>, tensor<f32>
}

// -----

// NVINT4: S_enc = 448 * 7 / amax, INT4 codes.
// CHECK-LABEL: func.func @quantize_nvint4
// CHECK: arith.constant 3.136000e+03 : f32
// CHECK: arith.trunci %{{.*}} : i32 to i4
func.func @quantize_nvint4(%x: tensor<2x32xf32>) -> (tensor<2x32xi4>, tensor<2x2xf8E4M3FN>, tensor<f32>) {
  %e, %s, %t = "mxq.quantize"(%x) {format = "nvint4", block_size = 16 : i64, axis = 1 : i64, resultSegmentSizes = array<i32: 1, 1, 1>} : (tensor<2x32xf32>) -> (tensor<2x32xi4>, tensor<2x2xf8E4M3FN>, tensor<f32>)
  return %e, %s, %t : tensor<2x32xi4>, tensor<2x2xf8E4M3FN>, tensor<f32>
}

// -----

// UE5M3 scales: S_enc = 114688 * 6 / amax; the scale is encoded with integer ops (bias 15) into i8.
// CHECK-LABEL: func.func @quantize_fp4_ue5m3
// CHECK: arith.constant 6.881280e+05 : f32
// CHECK: arith.truncf %{{.*}} : f32 to f4E2M1FN
// CHECK: arith.trunci %{{.*}} : i32 to i8
func.func @quantize_fp4_ue5m3(%x: tensor<2x32xf32>) -> (tensor<2x32xf4E2M1FN>, tensor<2x2xi8>, tensor<f32>) {
  %e, %s, %t = "mxq.quantize"(%x) {format = "fp4_ue5m3", block_size = 16 : i64, axis = 1 : i64, resultSegmentSizes = array<i32: 1, 1, 1>} : (tensor<2x32xf32>) -> (tensor<2x32xf4E2M1FN>, tensor<2x2xi8>, tensor<f32>)
  return %e, %s, %t : tensor<2x32xf4E2M1FN>, tensor<2x2xi8>, tensor<f32>
}

// -----

// An FP6 weight: the f6 param becomes an i8 param of its packed bytes (3 per 4 codes)
// and a generic that unpacks them; MXFP8 activations x MXFP6 weights (mixed formats).
// CHECK-LABEL: func.func @fused_mxfp8_x_mxfp6
// CHECK: %[[P:.*]] = "mxq.param"() {name = "fc.e"} : () -> tensor<8x48xi8>
// CHECK: tensor.expand_shape %[[P]] {{.*}} into tensor<8x16x3xi8>
// CHECK: arith.constant 6 : i32
// CHECK: arith.constant 63 : i32
// CHECK-NOT: f6E3M2FN
// CHECK: return
func.func @fused_mxfp8_x_mxfp6(%x: tensor<4x64xf32>) -> tensor<4x8xf32> {
  %w = "mxq.param"() {name = "fc.e"} : () -> tensor<8x64xf6E3M2FN>
  %s = "mxq.param"() {name = "fc.s"} : () -> tensor<8x2xf8E8M0FNU>
  %r = "mxq.fused_matmul"(%x, %w, %s) {layer = "fc", act_format = "mxfp8", w_format = "mxfp6_e3m2", block_size = 32 : i64, epilogue = "none", operandSegmentSizes = array<i32: 1, 1, 1, 0, 0>} : (tensor<4x64xf32>, tensor<8x64xf6E3M2FN>, tensor<8x2xf8E8M0FNU>) -> tensor<4x8xf32>
  return %r : tensor<4x8xf32>
}

// -----

// Two entry points reading the same FP6 param (--generate's prefill and decode): each function unpacks
// its own copy (an SSA value cannot cross from one function to the other).
// CHECK-LABEL: func.func @prefill
// CHECK: %[[P:.*]] = "mxq.param"() {name = "fc.e"} : () -> tensor<8x48xi8>
// CHECK: tensor.expand_shape %[[P]] {{.*}} into tensor<8x16x3xi8>
// CHECK-LABEL: func.func @decode
// CHECK: %[[Q:.*]] = "mxq.param"() {name = "fc.e"} : () -> tensor<8x48xi8>
// CHECK: tensor.expand_shape %[[Q]] {{.*}} into tensor<8x16x3xi8>
func.func @prefill(%x: tensor<4x64xf32>) -> tensor<4x8xf32> {
  %w = "mxq.param"() {name = "fc.e"} : () -> tensor<8x64xf6E3M2FN>
  %s = "mxq.param"() {name = "fc.s"} : () -> tensor<8x2xf8E8M0FNU>
  %r = "mxq.fused_matmul"(%x, %w, %s) {layer = "prefill:fc", act_format = "none", w_format = "mxfp6_e3m2", block_size = 32 : i64, epilogue = "none", operandSegmentSizes = array<i32: 1, 1, 1, 0, 0>} : (tensor<4x64xf32>, tensor<8x64xf6E3M2FN>, tensor<8x2xf8E8M0FNU>) -> tensor<4x8xf32>
  return %r : tensor<4x8xf32>
}
func.func @decode(%x: tensor<1x64xf32>) -> tensor<1x8xf32> {
  %w = "mxq.param"() {name = "fc.e"} : () -> tensor<8x64xf6E3M2FN>
  %s = "mxq.param"() {name = "fc.s"} : () -> tensor<8x2xf8E8M0FNU>
  %r = "mxq.fused_matmul"(%x, %w, %s) {layer = "decode:fc", act_format = "none", w_format = "mxfp6_e3m2", block_size = 32 : i64, epilogue = "none", operandSegmentSizes = array<i32: 1, 1, 1, 0, 0>} : (tensor<1x64xf32>, tensor<8x64xf6E3M2FN>, tensor<8x2xf8E8M0FNU>) -> tensor<1x8xf32>
  return %r : tensor<1x8xf32>
}

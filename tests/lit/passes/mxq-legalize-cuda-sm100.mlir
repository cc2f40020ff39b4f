// RUN: mxc-opt %s --split-input-file -p 'mxq-legalize-cuda{target=cuda-sm100}' | filecheck %s

// MXFP4 x MXFP4: quantize the activations into tiles (packed FP4, units of 32), then the
// block-scaled tcgen05 kernel of kind::mxf4.
// CHECK-LABEL: func.func @mxf4
// CHECK: act_format = "mxfp4"
// CHECK-SAME: mxq.kernels = [{{.*}}name = "mxc_bsq_mxfp4_u32"{{.*}}, {{.*}}name = "mxc_bsmma_mxfp4_mxfp4"{{.*}}]
// CHECK-SAME: mxq.path = "native: tcgen05.mma kind::mxf4.block_scale"
func.func @mxf4(%x: tensor<256x64xf32>) -> tensor<256x8xf32> {
  %we = "mxq.param"() {name = "fc.e"} : () -> tensor<8x64xf4E2M1FN>
  %ws = "mxq.param"() {name = "fc.s"} : () -> tensor<8x2xf8E8M0FNU>
  %y = "mxq.fused_matmul"(%x, %we, %ws) {act_format = "mxfp4", block_size = 32 : i64, epilogue = "none", layer = "fc", mxq.decision = "mxfp4 (default)", operandSegmentSizes = array<i32: 1, 1, 1, 0, 0>, w_format = "mxfp4"} : (tensor<256x64xf32>, tensor<8x64xf4E2M1FN>, tensor<8x2xf8E8M0FNU>) -> tensor<256x8xf32>
  return %y : tensor<256x8xf32>
}

// -----

// MXFP8 activations x MXFP4 weights: a mixed pair of kind::mxf8f6f4 (FP4 unpacked, units of 16).
// CHECK-LABEL: func.func @mxf8f6f4
// CHECK: mxq.kernels = [{{.*}}name = "mxc_bsq_mxfp8_u16"{{.*}}, {{.*}}name = "mxc_bsmma_mxfp8_mxfp4_bias"{{.*}}]
// CHECK-SAME: mxq.path = "native: tcgen05.mma kind::mxf8f6f4.block_scale"
func.func @mxf8f6f4(%x: tensor<4x64xf32>, %b: tensor<8xf32>) -> tensor<4x8xf32> {
  %we = "mxq.param"() {name = "fc.e"} : () -> tensor<8x64xf4E2M1FN>
  %ws = "mxq.param"() {name = "fc.s"} : () -> tensor<8x2xf8E8M0FNU>
  %y = "mxq.fused_matmul"(%x, %we, %ws, %b) {act_format = "mxfp8", block_size = 32 : i64, epilogue = "gelu", layer = "fc", mxq.decision = "mxfp4, activations mxfp8", operandSegmentSizes = array<i32: 1, 1, 1, 0, 1>, w_format = "mxfp4"} : (tensor<4x64xf32>, tensor<8x64xf4E2M1FN>, tensor<8x2xf8E8M0FNU>, tensor<8xf32>) -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

// NVFP4 (Four Over Six on the wire) with NVFP4 activations: the activations' tensor scale (amax),
// the quantizer, then kind::mxf4nvf4 with UE4M3 block-16 scales.
// CHECK-LABEL: func.func @mxf4nvf4
// CHECK: mxq.kernels = [{{.*}}name = "mxc_amax_nvfp4"{{.*}}, {{.*}}name = "mxc_bsq_nvfp4_u32"{{.*}}, {{.*}}name = "mxc_bsmma_nvfp4_nvfp4_4over6"{{.*}}]
// CHECK-SAME: mxq.path = "native: tcgen05.mma kind::mxf4nvf4.block_scale"
func.func @mxf4nvf4(%x: tensor<4x64xf32>) -> tensor<4x8xf32> {
  %we = "mxq.param"() {name = "fc.e"} : () -> tensor<8x64xf4E2M1FN>
  %ws = "mxq.param"() {name = "fc.s"} : () -> tensor<8x4xf8E4M3FN>
  %wt = "mxq.param"() {name = "fc.t"} : () -> tensor<f32>
  %y = "mxq.fused_matmul"(%x, %we, %ws, %wt) {act_format = "nvfp4", block_size = 16 : i64, epilogue = "none", layer = "fc", mxq.decision = "nvfp4_4over6, activations nvfp4", operandSegmentSizes = array<i32: 1, 1, 1, 1, 0>, w_format = "nvfp4_4over6"} : (tensor<4x64xf32>, tensor<8x64xf4E2M1FN>, tensor<8x4xf8E4M3FN>, tensor<f32>) -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

// Four Over Six activations too: the quantizer picks map-4 or map-6 per block; on the wire it is NVFP4.
// CHECK-LABEL: func.func @four_over_six
// CHECK: mxq.kernels = [{{.*}}name = "mxc_amax_nvfp4_4over6"{{.*}}, {{.*}}name = "mxc_bsq_nvfp4_4over6_u32"{{.*}}, {{.*}}name = "mxc_bsmma_nvfp4_4over6_nvfp4_4over6"{{.*}}]
// CHECK-SAME: mxq.path = "native: tcgen05.mma kind::mxf4nvf4.block_scale"
func.func @four_over_six(%x: tensor<4x64xf32>) -> tensor<4x8xf32> {
  %we = "mxq.param"() {name = "fc.e"} : () -> tensor<8x64xf4E2M1FN>
  %ws = "mxq.param"() {name = "fc.s"} : () -> tensor<8x4xf8E4M3FN>
  %wt = "mxq.param"() {name = "fc.t"} : () -> tensor<f32>
  %y = "mxq.fused_matmul"(%x, %we, %ws, %wt) {act_format = "nvfp4_4over6", block_size = 16 : i64, epilogue = "none", layer = "fc", mxq.decision = "nvfp4_4over6 (default)", operandSegmentSizes = array<i32: 1, 1, 1, 1, 0>, w_format = "nvfp4_4over6"} : (tensor<4x64xf32>, tensor<8x64xf4E2M1FN>, tensor<8x4xf8E4M3FN>, tensor<f32>) -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

// IF4 has no tcgen05 kind: the decode path. Activations stay high precision (a warning says why);
// at prefill the weights are decoded to bf16 tiles for kind::f16; at decode shapes, gemv.
// CHECK-LABEL: func.func @if4
// CHECK: act_format = "none"
// CHECK-SAME: mxq.decision = "if4 (default); activations high precision on cuda-sm100: if4 activations x if4 weights have no block-scaled tcgen05 kind
// CHECK-SAME: mxq.kernels = [{{.*}}name = "mxc_bsq_bf16"{{.*}}, {{.*}}name = "mxc_bsdec_if4"{{.*}}]
// CHECK-SAME: mxq.path = "decode: weights to bf16 in shared memory, tcgen05.mma kind::f16"
// CHECK: mxq.kernels = [{{.*}}name = "mxc_gemv_if4_m1"{{.*}}]
// CHECK-SAME: mxq.path = "decode: weights in registers, f32 FMA (M <= 16)"
func.func @if4(%x: tensor<200x64xf32>, %x1: tensor<1x64xf32>) -> (tensor<200x8xf32>, tensor<1x8xf32>) {
  %we = "mxq.param"() {name = "fc.e"} : () -> tensor<8x64xi4>
  %ws = "mxq.param"() {name = "fc.s"} : () -> tensor<8x4xi8>
  %wt = "mxq.param"() {name = "fc.t"} : () -> tensor<f32>
  %y = "mxq.fused_matmul"(%x, %we, %ws, %wt) {act_format = "if4", block_size = 16 : i64, epilogue = "none", layer = "fc", mxq.decision = "if4 (default)", operandSegmentSizes = array<i32: 1, 1, 1, 1, 0>, w_format = "if4"} : (tensor<200x64xf32>, tensor<8x64xi4>, tensor<8x4xi8>, tensor<f32>) -> tensor<200x8xf32>
  %y1 = "mxq.fused_matmul"(%x1, %we, %ws, %wt) {act_format = "none", block_size = 16 : i64, epilogue = "none", layer = "fc", mxq.decision = "if4 weights-only", operandSegmentSizes = array<i32: 1, 1, 1, 1, 0>, w_format = "if4"} : (tensor<1x64xf32>, tensor<8x64xi4>, tensor<8x4xi8>, tensor<f32>) -> tensor<1x8xf32>
  return %y, %y1 : tensor<200x8xf32>, tensor<1x8xf32>
}

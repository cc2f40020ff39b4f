// RUN: mxc-opt %s -p 'lower-mxq-to-linalg{contraction=fma}' | filecheck %s

// contraction=fma (mxc compile --contraction fma, the default on x86 CPUs with AVX2 and FMA, no AMX, no AVX512-BF16):
// the decomposed form's float32 operands, contracted by a kernel mxc writes (hal.executable.source
// @mxc_fma, memref + vector ops): micro-tiles of 4 rows x 24 columns held in 12 vector<8xf32>
// accumulators, per K step three loads of the packed weight, four broadcasts of the activations and
// twelve fused multiply-adds. One export per shape (M padded to 4, N to the panel width); every format,
// IF4 too. A narrow layer (N = 8 here) takes panels of 8 columns instead of padding N to 24 (_p8: one load,
// four broadcasts, four FMAs per K step).
// CHECK: "hal.executable.source"() <{sym_name = "mxc_fma", sym_visibility = "private"}>
// CHECK: "hal.executable.export"() {{.*}}sym_name = "mxc_fma_4x8x64_p8"
// CHECK: "hal.executable.export"() {{.*}}sym_name = "mxc_fma_4x72x64"
// CHECK: func.func @mxc_fma_4x8x64_p8()
// CHECK: scf.for {{.*}} iter_args({{.*}}) -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK-COUNT-1: vector.load {{.*}} : memref<512xf32>, vector<8xf32>
// CHECK-COUNT-4: vector.fma
// CHECK-NOT: vector.fma
// CHECK-COUNT-4: vector.store
// CHECK: func.func @mxc_fma_4x72x64()
// CHECK: scf.for
// CHECK: scf.for
// CHECK: scf.for {{.*}} iter_args({{.*}}) -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK-COUNT-3: vector.load {{.*}} : memref<4608xf32>, vector<8xf32>
// CHECK: memref.load
// CHECK: vector.broadcast {{.*}} : f32 to vector<8xf32>
// CHECK-COUNT-3: vector.fma
// CHECK: vector.broadcast
// CHECK-COUNT-3: vector.fma
// CHECK: vector.broadcast
// CHECK-COUNT-3: vector.fma
// CHECK: vector.broadcast
// CHECK-COUNT-3: vector.fma
// CHECK-NOT: vector.fma
// CHECK-COUNT-12: vector.store
// K = 64 is one K block: no second copy of the micro-tile loop.
// CHECK-NOT: vector.fma
// CHECK: return

// NVFP4 weight-only: the weights decoded to float32 (tensor scale included, as `decomposed` does) and
// packed in panels [N/8, K, 8] by one generic (hoisted to load time for a constant weight); the float32
// activations go in as they are; the dispatch's [4, 8] result is the output.
// CHECK-LABEL: func.func @mlp
// CHECK: linalg.generic {{.*}} ins({{.*}} : tensor<1x8x64xf32>) outs({{.*}} : tensor<1x64x8xf32>)
// CHECK: "flow.dispatch"({{.*}}) {entry_points = [@mxc_fma::@mxc_fma_4x8x64_p8]{{.*}} : (tensor<256xf32>, tensor<512xf32>) -> tensor<32xf32>
// MXFP8 x MXFP8: the activations quantized and decoded to float32, then the same kernel.
// CHECK: -> tensor<4x2x32xf8E4M3FN>
// CHECK: "flow.dispatch"({{.*}}) {entry_points = [@mxc_fma::@mxc_fma_4x8x64_p8]
// IF4 (not exact in bf16, so not on AMX) takes the FMA kernel as well.
// CHECK: "flow.dispatch"({{.*}}) {entry_points = [@mxc_fma::@mxc_fma_4x8x64_p8]
// CHECK-NOT: iterator_types = ["parallel", "parallel", "reduction"]
// CHECK: return
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
  %ye = "tensor.empty"() : () -> tensor<4x64xf32>
  %y64 = "tensor.insert_slice"(%y, %ye) <{operandSegmentSizes = array<i32: 1, 1, 0, 0, 0>, static_offsets = array<i64: 0, 0>, static_sizes = array<i64: 4, 8>, static_strides = array<i64: 1, 1>}> : (tensor<4x8xf32>, tensor<4x64xf32>) -> tensor<4x64xf32>
  %ie = "mxq.param"() {name = "fc3.e"} : () -> tensor<8x64xi4>
  %is = "mxq.param"() {name = "fc3.s"} : () -> tensor<8x4xi8>
  %it = "mxq.param"() {name = "fc3.t"} : () -> tensor<f32>
  %z = "mxq.fused_matmul"(%y64, %ie, %is, %it) {act_format = "none", block_size = 16 : i64, epilogue = "none", layer = "fc3", mxq.decision = "if4 weights-only", operandSegmentSizes = array<i32: 1, 1, 1, 1, 0>, w_format = "if4"} : (tensor<4x64xf32>, tensor<8x64xi4>, tensor<8x4xi8>, tensor<f32>) -> tensor<4x8xf32>
  return %z : tensor<4x8xf32>
}

// A float32 matmul (a layer kept in high precision): the 24-column kernel, N = 50 padded to 72.
// CHECK-LABEL: func.func @head
// CHECK: -> tensor<3x64x24xf32>
// CHECK: "flow.dispatch"({{.*}}) {entry_points = [@mxc_fma::@mxc_fma_4x72x64]{{.*}} : (tensor<256xf32>, tensor<4608xf32>) -> tensor<288xf32>
// CHECK: tensor.extract_slice {{.*}} to tensor<4x50xf32>
func.func @head(%x: tensor<4x64xf32>) -> tensor<4x50xf32> {
  %w = "mxq.param"() {name = "head.weight"} : () -> tensor<50x64xf32>
  %y = "mxq.matmul"(%x, %w) {layer = "head", mxq.decision = "none: kept in high precision", operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x64xf32>, tensor<50x64xf32>) -> tensor<4x50xf32>
  return %y : tensor<4x50xf32>
}

// RUN: mxc-opt %s -p 'lower-mxq-to-linalg{contraction=dpbf16}' | filecheck %s

// contraction=dpbf16 (mxc compile --contraction dpbf16, the default on x86 CPUs with AVX512-BF16 but no AMX):
// the FMA kernel of contraction=fma, except where both operands are exact in bf16: there its bf16 dot
// form (_bf16), K taken in pairs of bf16 held in 32-bit words: per K step the packed weight's words loaded
// and viewed as 16 bf16, the activations' pair broadcast likewise, and one vdpbf16ps per accumulator
// (LLVM's llvm.x86.avx512bf16.dpbf16ps.256: acc += a[2k+1] b[2k+1] + a[2k] b[2k]).
// CHECK: "hal.executable.source"() <{sym_name = "mxc_fma", sym_visibility = "private"}>
// CHECK: "hal.executable.export"() {{.*}}sym_name = "mxc_fma_4x8x64_p8"
// CHECK: "hal.executable.export"() {{.*}}sym_name = "mxc_fma_4x8x64_p8_bf16"
// CHECK: func.func @mxc_fma_4x8x64_p8()
// CHECK-COUNT-4: vector.fma
// CHECK: func.func @mxc_fma_4x8x64_p8_bf16()
// CHECK: memref.extract_aligned_pointer_as_index {{.*}} : memref<128xi32>
// CHECK: memref.extract_aligned_pointer_as_index {{.*}} : memref<256xi32>
// CHECK: scf.for {{.*}} iter_args({{.*}}) -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK: vector.load {{.*}} : memref<256xi32>, vector<8xi32>
// CHECK-NEXT: vector.bitcast {{.*}} : vector<8xi32> to vector<16xbf16>
// CHECK: memref.load {{.*}} : memref<128xi32>
// CHECK-NEXT: vector.broadcast {{.*}} : i32 to vector<8xi32>
// CHECK-NEXT: vector.bitcast {{.*}} : vector<8xi32> to vector<16xbf16>
// CHECK-NEXT: llvm.call_intrinsic "llvm.x86.avx512bf16.dpbf16ps.256"({{.*}}) : (vector<8xf32>, vector<16xbf16>, vector<16xbf16>) -> vector<8xf32>
// CHECK-COUNT-3: llvm.call_intrinsic "llvm.x86.avx512bf16.dpbf16ps.256"
// CHECK-NOT: llvm.call_intrinsic
// CHECK-COUNT-4: vector.store
// An 8-row micro-tile (@rows below): 8 x 1 accumulators, 8 dot products per K step.
// CHECK: func.func @mxc_fma_16x8x64_p8_r8_bf16()
// CHECK-COUNT-8: llvm.call_intrinsic "llvm.x86.avx512bf16.dpbf16ps.256"
// CHECK-NOT: llvm.call_intrinsic
// CHECK-COUNT-8: vector.store
// CHECK: func.func @mxc_fma_4x72x64()

// NVFP4 weight-only: float32 activations are not exact in bf16, so the float32 FMA kernel, as with fma.
// CHECK-LABEL: func.func @mlp
// CHECK: "flow.dispatch"({{.*}}) {entry_points = [@mxc_fma::@mxc_fma_4x8x64_p8]{{.*}} : (tensor<256xf32>, tensor<512xf32>) -> tensor<32xf32>
// MXFP8 x MXFP8: the weight decoded and packed as bf16 pairs [N/8, K/2, 8, 2] (hoisted to load time), the
// activations quantized, decoded and converted to bf16 (exact), then the bf16 dot kernel.
// CHECK: -> tensor<4x2x32xf8E4M3FN>
// CHECK: linalg.generic {{.*}} ins({{.*}} : tensor<1x8x32x2xf32>) outs({{.*}} : tensor<1x32x8x2xbf16>)
// CHECK: linalg.generic {{.*}} ins({{.*}} : tensor<4x64xf32>) outs({{.*}} : tensor<4x64xbf16>)
// CHECK: "flow.dispatch"({{.*}}) {entry_points = [@mxc_fma::@mxc_fma_4x8x64_p8_bf16]{{.*}} : (tensor<256xbf16>, tensor<512xbf16>) -> tensor<32xf32>
// IF4 (not exact in bf16) keeps the float32 kernel.
// CHECK: "flow.dispatch"({{.*}}) {entry_points = [@mxc_fma::@mxc_fma_4x8x64_p8]
// CHECK-NOT: _bf16
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

// A float32 matmul (a layer kept in high precision): the float32 kernel.
// CHECK-LABEL: func.func @head
// CHECK: "flow.dispatch"({{.*}}) {entry_points = [@mxc_fma::@mxc_fma_4x72x64]{{.*}} : (tensor<256xf32>, tensor<4608xf32>) -> tensor<288xf32>
func.func @head(%x: tensor<4x64xf32>) -> tensor<4x50xf32> {
  %w = "mxq.param"() {name = "head.weight"} : () -> tensor<50x64xf32>
  %y = "mxq.matmul"(%x, %w) {layer = "head", mxq.decision = "none: kept in high precision", operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x64xf32>, tensor<50x64xf32>) -> tensor<4x50xf32>
  return %y : tensor<4x50xf32>
}

// More than 4 rows: the dot kernel's micro-tiles hold 8 rows (24 accumulators, `_r8`), M = 12 padded to 16.
// CHECK-LABEL: func.func @rows
// CHECK: "flow.dispatch"({{.*}}) {entry_points = [@mxc_fma::@mxc_fma_16x8x64_p8_r8_bf16]{{.*}} : (tensor<1024xbf16>, tensor<512xbf16>) -> tensor<128xf32>
// CHECK: tensor.extract_slice {{.*}} to tensor<12x8xf32>
func.func @rows(%x: tensor<12x64xf32>) -> tensor<12x8xf32> {
  %ve = "mxq.param"() {name = "r.e"} : () -> tensor<8x64xf8E4M3FN>
  %vs = "mxq.param"() {name = "r.s"} : () -> tensor<8x2xf8E8M0FNU>
  %y = "mxq.fused_matmul"(%x, %ve, %vs) {act_format = "mxfp8", block_size = 32 : i64, epilogue = "none", layer = "r", mxq.decision = "mxfp8", operandSegmentSizes = array<i32: 1, 1, 1, 0, 0>, w_format = "mxfp8"} : (tensor<12x64xf32>, tensor<8x64xf8E4M3FN>, tensor<8x2xf8E8M0FNU>) -> tensor<12x8xf32>
  return %y : tensor<12x8xf32>
}

// A scaled matmul of two run-time operands in a format exact in bf16 (MXFP8 x MXFP8): the dot kernel.
// CHECK-LABEL: func.func @scaled
// CHECK: "flow.dispatch"({{.*}}) {entry_points = [@mxc_fma::@mxc_fma_4x8x64_p8_bf16]
func.func @scaled(%a: tensor<4x64xf32>, %b: tensor<8x64xf32>) -> tensor<4x8xf32> {
  %0:2 = "mxq.quantize"(%a) {axis = 1 : i64, block_size = 32 : i64, format = "mxfp8", resultSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x64xf32>) -> (tensor<4x64xf8E4M3FN>, tensor<4x2xf8E8M0FNU>)
  %1:2 = "mxq.quantize"(%b) {axis = 1 : i64, block_size = 32 : i64, format = "mxfp8", resultSegmentSizes = array<i32: 1, 1, 0>} : (tensor<8x64xf32>) -> (tensor<8x64xf8E4M3FN>, tensor<8x2xf8E8M0FNU>)
  %2 = "mxq.scaled_matmul"(%0#0, %0#1, %1#0, %1#1) {a_format = "mxfp8", b_format = "mxfp8", block_size = 32 : i64, mxq.decision = "mxfp8 (default)", mxq.layer = "mm"} : (tensor<4x64xf8E4M3FN>, tensor<4x2xf8E8M0FNU>, tensor<8x64xf8E4M3FN>, tensor<8x2xf8E8M0FNU>) -> tensor<4x8xf32>
  return %2 : tensor<4x8xf32>
}

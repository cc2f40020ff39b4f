// RUN: mxc-opt %s -p 'lower-mxq-to-linalg{contraction=amx}' | filecheck %s

// contraction=amx (mxc compile --contraction amx): a fused matmul whose dequantized operands are exact
// in bf16 runs as one dispatch of an AMX kernel that mxc writes (hal.executable.source @mxc_amx, LLVM's
// AMX intrinsics); M, N and K are zero-padded to multiples of 32 and the operands stored as 1 KB tiles.
// The kernels: one export per shape and part count (3 parts: float32 activations split in bf16).
// CHECK: "hal.executable.source"() <{sym_name = "mxc_amx", sym_visibility = "private"}>
// CHECK: "hal.executable.export"() {{.*}}sym_name = "mxc_amx_32x32x64_p3"
// CHECK: "hal.executable.export"() {{.*}}sym_name = "mxc_amx_32x32x64_p1"
// CHECK: "hal.executable.export"() {{.*}}sym_name = "mxc_amx_32x64x64_p3x3"
// CHECK: func.func @mxc_amx_32x32x64_p3()
// CHECK: llvm.call_intrinsic "llvm.x86.ldtilecfg"
// CHECK: scf.for
// Per K step: B's two tiles, then per part A's two tiles and the four tile multiplies.
// CHECK-COUNT-2: llvm.call_intrinsic "llvm.x86.tileloadd64"
// CHECK-COUNT-2: llvm.call_intrinsic "llvm.x86.tileloadd64"
// CHECK-COUNT-4: llvm.call_intrinsic "llvm.x86.tdpbf16ps"
// CHECK-COUNT-2: llvm.call_intrinsic "llvm.x86.tileloadd64"
// CHECK-COUNT-4: llvm.call_intrinsic "llvm.x86.tdpbf16ps"
// CHECK-COUNT-2: llvm.call_intrinsic "llvm.x86.tileloadd64"
// CHECK-COUNT-4: llvm.call_intrinsic "llvm.x86.tdpbf16ps"
// CHECK-NOT: llvm.x86.tdpbf16ps
// CHECK: llvm.call_intrinsic "llvm.x86.tilestored64"
// CHECK: llvm.call_intrinsic "llvm.x86.tilerelease"

// NVFP4 weight-only: the weights decoded without the tensor scale, rounded to bf16 (exact) in AMX's
// B tiles [N/16, K/32, 16, 16, 2]; the activations split into three bf16 parts (rounded to nearest on
// the bits, the low 16 bits cleared: -65536), each tiled [M/16, K/32, 16, 32] by one generic (a fused
// producer runs once per element), one binding each; the tensor scale multiplies the output.
// CHECK-LABEL: func.func @mlp
// CHECK: -> tensor<2x2x16x16x2xbf16>
// CHECK: arith.constant -65536 : i32
// CHECK: -> (tensor<2x2x16x32xbf16>, tensor<2x2x16x32xbf16>, tensor<2x2x16x32xbf16>)
// CHECK: "flow.dispatch"({{.*}}) {entry_points = [@mxc_amx::@mxc_amx_32x32x64_p3]{{.*}} : (tensor<2048xbf16>, tensor<2048xbf16>, tensor<2048xbf16>, tensor<2048xbf16>) -> tensor<1024xf32>
// CHECK: tensor.extract_slice {{.*}} to tensor<4x8xf32>
// CHECK: arith.mulf
// MXFP8 x MXFP8: the dequantized activations are bf16 values, one part.
// CHECK: -> tensor<2x2x16x32xbf16>
// CHECK: "flow.dispatch"({{.*}}) {entry_points = [@mxc_amx::@mxc_amx_32x32x64_p1]
// IF4 (INT blocks mean code x 6/7 x scale, not a bf16 value): the float32 contraction.
// CHECK-NOT: flow.dispatch
// CHECK: linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "reduction"]
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

// A float32 matmul (a layer kept in high precision): both operands split in three bf16 parts, the six
// products i + j <= 2 (kernel p3x3).
// CHECK-LABEL: func.func @head
// CHECK: -> (tensor<2x2x16x32xbf16>, tensor<2x2x16x32xbf16>, tensor<2x2x16x32xbf16>)
// CHECK: -> (tensor<4x2x16x16x2xbf16>, tensor<4x2x16x16x2xbf16>, tensor<4x2x16x16x2xbf16>)
// CHECK: "flow.dispatch"({{.*}}) {entry_points = [@mxc_amx::@mxc_amx_32x64x64_p3x3]{{.*}} : (tensor<2048xbf16>, tensor<2048xbf16>, tensor<2048xbf16>, tensor<4096xbf16>, tensor<4096xbf16>, tensor<4096xbf16>) -> tensor<2048xf32>
// CHECK: tensor.extract_slice {{.*}} to tensor<4x50xf32>
func.func @head(%x: tensor<4x64xf32>) -> tensor<4x50xf32> {
  %w = "mxq.param"() {name = "head.weight"} : () -> tensor<50x64xf32>
  %y = "mxq.matmul"(%x, %w) {layer = "head", mxq.decision = "none: kept in high precision", operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x64xf32>, tensor<50x64xf32>) -> tensor<4x50xf32>
  return %y : tensor<4x50xf32>
}

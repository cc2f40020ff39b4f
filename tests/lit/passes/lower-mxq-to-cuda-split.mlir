// RUN: mxc-opt %s -p mxq-legalize-cuda,lower-mxq-to-cuda | filecheck %s

// A large weight-only layer at a decode shape (M = 4, N = K = 8192) runs as two dispatches: decs, with
// K split 4 ways across CTAs (grid: ceil(N / 128) row groups x ceil(M / 8) x 4 splits, its CTA's
// activations in 55296 bytes of workgroup memory), writes the partial sums [4, M, N]; dsum (one thread
// per output) adds them in order with the bias and the epilogue (silu = 3) into the layer's output.
// CHECK: "hal.executable.source"() ({
// CHECK: %[[X:.*]] = arith.ceildivui %arg2, %c128 : index
// CHECK: %[[Y:.*]] = arith.ceildivui %arg1, %c8 : index
// CHECK: "hal.return"(%[[X]], %[[Y]], %c4)
// CHECK: sym_name = "mxc_decs_mxfp4_m8_s4", sym_visibility = "public", workgroup_local_memory = 55296 : index
// CHECK: %[[MN:.*]] = arith.muli %arg1, %arg2 : index
// CHECK: arith.ceildivui %[[MN]], %c256 : index
// CHECK: sym_name = "mxc_dsum_s4_bias"

// CHECK-LABEL: func.func @decode_split
// CHECK: %[[P:.*]] = "flow.dispatch"({{.*}}, %arg0, %{{.*}}, %{{.*}}) {entry_points = [@mxc_kernels::@mxc_decs_mxfp4_m8_s4]{{.*}} -> tensor<4x4x8192xf32>
// CHECK: "flow.dispatch"({{.*}}, %c3_i32, %[[P]], %arg1) {entry_points = [@mxc_kernels::@mxc_dsum_s4_bias]{{.*}} -> tensor<4x8192xf32>
func.func @decode_split(%x: tensor<4x8192xf32>, %b: tensor<8192xf32>) -> tensor<4x8192xf32> {
  %we = "mxq.param"() {name = "fc.e"} : () -> tensor<8192x8192xf4E2M1FN>
  %ws = "mxq.param"() {name = "fc.s"} : () -> tensor<8192x256xf8E8M0FNU>
  %y = "mxq.fused_matmul"(%x, %we, %ws, %b) {act_format = "none", block_size = 32 : i64, epilogue = "silu", layer = "fc", mxq.decision = "mxfp4 weights-only (default)", operandSegmentSizes = array<i32: 1, 1, 1, 0, 1>, w_format = "mxfp4"} : (tensor<4x8192xf32>, tensor<8192x8192xf4E2M1FN>, tensor<8192x256xf8E8M0FNU>, tensor<8192xf32>) -> tensor<4x8192xf32>
  return %y : tensor<4x8192xf32>
}

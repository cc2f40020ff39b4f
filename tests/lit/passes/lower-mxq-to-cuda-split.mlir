// RUN: mxc-opt %s -p mxq-legalize-cuda,lower-mxq-to-cuda | filecheck %s

// Large weight-only layers at decode shapes, K split across CTAs (decs).
// M = 16, N = 14336, K = 4096: 2 splits, one dispatch: the two CTAs of a row group are a thread-block cluster
// that sums their partials in shared memory and writes the layer's output with the bias and the epilogue
// (silu = 3, the last i32 constant); grid ceil(N / 128) row groups x ceil(M / 16) x 2 splits, the CTA's
// activations in 110592 bytes of workgroup memory.
// M = 4, N = K = 8192: 4 splits (clusters of 4 do not all fit at once), two dispatches: decs writes the
// partial sums [4, M, N], dsum (one thread per output) adds them in order with the bias and the epilogue.
// CHECK: "hal.executable.source"() ({
// CHECK: %[[X:.*]] = arith.ceildivui %arg2, %c128 : index
// CHECK: %[[Y:.*]] = arith.ceildivui %arg1, %c16 : index
// CHECK: "hal.return"(%[[X]], %[[Y]], %c2)
// CHECK: sym_name = "mxc_decs_mxfp4_m16_s2_c_bias", sym_visibility = "public", workgroup_local_memory = 110592 : index
// CHECK: "hal.return"(%{{.*}}, %{{.*}}, %c4)
// CHECK: sym_name = "mxc_decs_mxfp4_m8_s4", sym_visibility = "public", workgroup_local_memory = 55296 : index
// CHECK: %[[MN:.*]] = arith.muli %arg1, %arg2 : index
// CHECK: arith.ceildivui %[[MN]], %c256 : index
// CHECK: sym_name = "mxc_dsum_s4_bias"

// CHECK-LABEL: func.func @decode_split_cluster
// CHECK: "flow.dispatch"({{.*}}, %c3_i32, %arg0, %{{.*}}, %{{.*}}, %arg1) {entry_points = [@mxc_kernels::@mxc_decs_mxfp4_m16_s2_c_bias]{{.*}} -> tensor<16x14336xf32>
// CHECK-NOT: flow.dispatch
// CHECK: return
func.func @decode_split_cluster(%x: tensor<16x4096xf32>, %b: tensor<14336xf32>) -> tensor<16x14336xf32> {
  %we = "mxq.param"() {name = "fc.e"} : () -> tensor<14336x4096xf4E2M1FN>
  %ws = "mxq.param"() {name = "fc.s"} : () -> tensor<14336x128xf8E8M0FNU>
  %y = "mxq.fused_matmul"(%x, %we, %ws, %b) {act_format = "none", block_size = 32 : i64, epilogue = "silu", layer = "fc", mxq.decision = "mxfp4 weights-only (default)", operandSegmentSizes = array<i32: 1, 1, 1, 0, 1>, w_format = "mxfp4"} : (tensor<16x4096xf32>, tensor<14336x4096xf4E2M1FN>, tensor<14336x128xf8E8M0FNU>, tensor<14336xf32>) -> tensor<16x14336xf32>
  return %y : tensor<16x14336xf32>
}

// CHECK-LABEL: func.func @decode_split
// CHECK: %[[P:.*]] = "flow.dispatch"({{.*}}, %arg0, %{{.*}}, %{{.*}}) {entry_points = [@mxc_kernels::@mxc_decs_mxfp4_m8_s4]{{.*}} -> tensor<4x4x8192xf32>
// CHECK: "flow.dispatch"({{.*}}, %c3_i32, %[[P]], %arg1) {entry_points = [@mxc_kernels::@mxc_dsum_s4_bias]{{.*}} -> tensor<4x8192xf32>
func.func @decode_split(%x: tensor<4x8192xf32>, %b: tensor<8192xf32>) -> tensor<4x8192xf32> {
  %we = "mxq.param"() {name = "fc2.e"} : () -> tensor<8192x8192xf4E2M1FN>
  %ws = "mxq.param"() {name = "fc2.s"} : () -> tensor<8192x256xf8E8M0FNU>
  %y = "mxq.fused_matmul"(%x, %we, %ws, %b) {act_format = "none", block_size = 32 : i64, epilogue = "silu", layer = "fc2", mxq.decision = "mxfp4 weights-only (default)", operandSegmentSizes = array<i32: 1, 1, 1, 0, 1>, w_format = "mxfp4"} : (tensor<4x8192xf32>, tensor<8192x8192xf4E2M1FN>, tensor<8192x256xf8E8M0FNU>, tensor<8192xf32>) -> tensor<4x8192xf32>
  return %y : tensor<4x8192xf32>
}

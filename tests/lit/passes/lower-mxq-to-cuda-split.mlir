// RUN: mxc-opt %s -p mxq-legalize-cuda,lower-mxq-to-cuda | filecheck %s

// Large weight-only layers at decode shapes, K split across CTAs (decs), the split that fills one wave best.
// M = 16, N = 32768, K = 2048: no split (256 CTAs of 128 rows at 2 per SM), one dispatch: decs as a cluster of
// one CTA per row group writes the layer's output with the bias and the epilogue (silu = 3, the last i32
// constant); grid ceil(N / 128) x ceil(M / 16) x 1, the CTA's 32 K tiles of activations in 48 tiles' 110592
// bytes of workgroup memory.
// M = 4, N = K = 8192: 6 splits of 22 K tiles (384 CTAs at 3 per SM: 24 K tiles, 27648 bytes at 8 rows of
// x), two dispatches: decs writes the partial sums [6, M, N], dsum (one thread per output) adds them in order
// with the bias and the epilogue.
// CHECK: "hal.executable.source"() ({
// CHECK: %[[X:.*]] = arith.ceildivui %arg2, %c128 : index
// CHECK: %[[Y:.*]] = arith.ceildivui %arg1, %c16 : index
// CHECK: "hal.return"(%[[X]], %[[Y]], %c1)
// CHECK: sym_name = "mxc_decs_mxfp4_m16_s1_c_bias", sym_visibility = "public", workgroup_local_memory = 110592 : index
// CHECK: "hal.return"(%{{.*}}, %{{.*}}, %c6)
// CHECK: sym_name = "mxc_decs_mxfp4_m8_s6_k24", sym_visibility = "public", workgroup_local_memory = 27648 : index
// CHECK: %[[MN:.*]] = arith.muli %arg1, %arg2 : index
// CHECK: arith.ceildivui %[[MN]], %c256 : index
// CHECK: sym_name = "mxc_dsum_s6_bias"

// CHECK-LABEL: func.func @decode_split_cluster
// CHECK: "flow.dispatch"({{.*}}, %c3_i32, %arg0, %{{.*}}, %{{.*}}, %arg1) {entry_points = [@mxc_kernels::@mxc_decs_mxfp4_m16_s1_c_bias]{{.*}} -> tensor<16x32768xf32>
// CHECK-NOT: flow.dispatch
// CHECK: return
func.func @decode_split_cluster(%x: tensor<16x2048xf32>, %b: tensor<32768xf32>) -> tensor<16x32768xf32> {
  %we = "mxq.param"() {name = "fc.e"} : () -> tensor<32768x2048xf4E2M1FN>
  %ws = "mxq.param"() {name = "fc.s"} : () -> tensor<32768x64xf8E8M0FNU>
  %y = "mxq.fused_matmul"(%x, %we, %ws, %b) {act_format = "none", block_size = 32 : i64, epilogue = "silu", layer = "fc", mxq.decision = "mxfp4 weights-only (default)", operandSegmentSizes = array<i32: 1, 1, 1, 0, 1>, w_format = "mxfp4"} : (tensor<16x2048xf32>, tensor<32768x2048xf4E2M1FN>, tensor<32768x64xf8E8M0FNU>, tensor<32768xf32>) -> tensor<16x32768xf32>
  return %y : tensor<16x32768xf32>
}

// CHECK-LABEL: func.func @decode_split
// CHECK: %[[P:.*]] = "flow.dispatch"({{.*}}, %arg0, %{{.*}}, %{{.*}}) {entry_points = [@mxc_kernels::@mxc_decs_mxfp4_m8_s6_k24]{{.*}} -> tensor<6x4x8192xf32>
// CHECK: "flow.dispatch"({{.*}}, %c3_i32, %[[P]], %arg1) {entry_points = [@mxc_kernels::@mxc_dsum_s6_bias]{{.*}} -> tensor<4x8192xf32>
func.func @decode_split(%x: tensor<4x8192xf32>, %b: tensor<8192xf32>) -> tensor<4x8192xf32> {
  %we = "mxq.param"() {name = "fc2.e"} : () -> tensor<8192x8192xf4E2M1FN>
  %ws = "mxq.param"() {name = "fc2.s"} : () -> tensor<8192x256xf8E8M0FNU>
  %y = "mxq.fused_matmul"(%x, %we, %ws, %b) {act_format = "none", block_size = 32 : i64, epilogue = "silu", layer = "fc2", mxq.decision = "mxfp4 weights-only (default)", operandSegmentSizes = array<i32: 1, 1, 1, 0, 1>, w_format = "mxfp4"} : (tensor<4x8192xf32>, tensor<8192x8192xf4E2M1FN>, tensor<8192x256xf8E8M0FNU>, tensor<8192xf32>) -> tensor<4x8192xf32>
  return %y : tensor<4x8192xf32>
}

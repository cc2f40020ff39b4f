// RUN: mxc-opt %s -p mxq-legalize-cuda,lower-mxq-to-cuda | filecheck %s

// A weight-only layer between decode and prefill shapes (M = 300, N = 600, K = 1000, MXFP4 with bias and
// gelu) runs as three dispatches: tilea (x to bf16 tiles of 256 rows x 64 K, K permuted as the fragment
// tiles permute it: one thread per 8 values, ceil(M / 256) x ceil(K / 64) x 2048 of them), rdec (one CTA of
// 384 threads per 128 weight rows, 256 rows of x and K split: ceil(N / 128) x ceil(M / 256) x 4, the
// weights in fragment tiles grouped by 8, each warp decoding its 16 rows in registers for wgmma) writing
// the 4 splits' partial sums, dsum adding them with the bias and the epilogue.
// CHECK: "hal.executable.source"() ({
// CHECK: %[[RM:.*]] = arith.ceildivui %arg1, %c256 : index
// CHECK: %[[RK:.*]] = arith.ceildivui %arg3, %c64 : index
// CHECK: %[[RT:.*]] = arith.muli %[[RM]], %[[RK]] : index
// CHECK: %[[RC:.*]] = arith.muli %[[RT]], %c2048 : index
// CHECK: %[[RG:.*]] = arith.ceildivui %[[RC]], %c256 : index
// CHECK: "hal.return"(%[[RG]], %c1, %c1)
// CHECK: sym_name = "mxc_tilea_r256p", sym_visibility = "public", workgroup_size = [256 : index, 1 : index, 1 : index]
// CHECK: %[[N:.*]] = arith.ceildivui %arg2, %c128 : index
// CHECK: %[[M:.*]] = arith.ceildivui %arg1, %c256 : index
// CHECK: "hal.return"(%[[N]], %[[M]], %c4)
// CHECK: sym_name = "mxc_rdec_mxfp4_n256_s4", sym_visibility = "public", workgroup_local_memory = {{[0-9]+}} : index, workgroup_size = [384 : index, 1 : index, 1 : index]
// CHECK: sym_name = "mxc_dsum_s4_bias"

// CHECK-LABEL: func.func @between
// 600 rows padded to 640 (5 groups of 8 row tiles) x 1024 K: 5 x 16 x 8 tiles of 512 bytes, 64 x 2 x 2 scales.
// CHECK-DAG: %[[E:.*]] = "mxq.param"() {name = "fc.e.f16x64e2g8"} : () -> tensor<327680xi8>
// CHECK-DAG: %[[S:.*]] = "mxq.param"() {name = "fc.s.f16x64e2g8"} : () -> tensor<20480xi8>
// CHECK: %[[A:.*]] = "flow.dispatch"({{.*}}, %arg0) {entry_points = [@mxc_kernels::@mxc_tilea_r256p]{{.*}} -> tensor<512x1024xbf16>
// CHECK: %[[P:.*]] = "flow.dispatch"({{.*}}, %[[A]], %[[E]], %[[S]]) {entry_points = [@mxc_kernels::@mxc_rdec_mxfp4_n256_s4]{{.*}} -> tensor<4x300x600xf32>
// CHECK: "flow.dispatch"({{.*}}, %[[P]], %arg1) {entry_points = [@mxc_kernels::@mxc_dsum_s4_bias]{{.*}} -> tensor<300x600xf32>
// CHECK-NOT: mxq.fused_matmul
func.func @between(%x: tensor<300x1000xf32>, %b: tensor<600xf32>) -> tensor<300x600xf32> {
  %we = "mxq.param"() {name = "fc.e"} : () -> tensor<600x1024xf4E2M1FN>
  %ws = "mxq.param"() {name = "fc.s"} : () -> tensor<600x32xf8E8M0FNU>
  %y = "mxq.fused_matmul"(%x, %we, %ws, %b) {act_format = "none", block_size = 32 : i64, epilogue = "gelu", layer = "fc", mxq.decision = "mxfp4 weights-only (default)", operandSegmentSizes = array<i32: 1, 1, 1, 0, 1>, w_format = "mxfp4"} : (tensor<300x1000xf32>, tensor<600x1024xf4E2M1FN>, tensor<600x32xf8E8M0FNU>, tensor<600xf32>) -> tensor<300x600xf32>
  return %y : tensor<300x600xf32>
}

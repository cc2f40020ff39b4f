// RUN: mxc-opt %s -p mxq-legalize-cuda,lower-mxq-to-cuda | filecheck %s

// A weight-only layer at a prefill shape (M = 2100 >= PREFILL_MIN_M, N = 600, K = 1000, NVFP4 with bias
// and gelu) runs as three dispatches: tilea (x to bf16 tiles of 128 rows x 64 K: one thread per 8
// values, ceil(M / 128) x ceil(K / 64) x 1024 of them), wdec (the weights decoded once, one thread per 32 4-bit codes, to bf16 tiles of
// 256 rows x 64 K in a workspace), hgemm (persistent: CTAs of 384 threads, one per 128 x 256 output tile up
// to 132, 196672 bytes of workgroup memory: 4 slots of both tiles and 8 mbarriers) reading both, the tensor
// scale and the bias.
// CHECK: "hal.executable.source"() ({
// CHECK: %[[MT:.*]] = arith.ceildivui %arg1, %c128 : index
// CHECK: %[[KT:.*]] = arith.ceildivui %arg3, %c64 : index
// CHECK: %[[T:.*]] = arith.muli %[[MT]], %[[KT]] : index
// CHECK: %[[C:.*]] = arith.muli %[[T]], %c1024 : index
// CHECK: %[[G:.*]] = arith.ceildivui %[[C]], %c256 : index
// CHECK: "hal.return"(%[[G]], %c1, %c1)
// CHECK: sym_name = "mxc_tilea", sym_visibility = "public", workgroup_size = [256 : index, 1 : index, 1 : index]
// CHECK: %[[NT:.*]] = arith.ceildivui %arg2, %c256 : index
// CHECK: arith.muli %{{.*}}, %c512 : index
// CHECK: sym_name = "mxc_wdec_nvfp4"
// CHECK: %[[HM:.*]] = arith.ceildivui %arg1, %c128 : index
// CHECK: %[[HN:.*]] = arith.ceildivui %arg2, %c256 : index
// CHECK: %[[H:.*]] = arith.muli %[[HM]], %[[HN]] : index
// CHECK: %[[HG:.*]] = arith.minui %[[H]], %c132 : index
// CHECK: "hal.return"(%[[HG]], %c1, %c1)
// CHECK: sym_name = "mxc_hgemm_ts_bias", sym_visibility = "public", workgroup_local_memory = 196672 : index, workgroup_size = [384 : index, 1 : index, 1 : index]

// CHECK-LABEL: func.func @prefill
// CHECK-DAG: %[[E:.*]] = "mxq.param"() {name = "fc.e"} : () -> tensor<600x504xi8>
// CHECK-DAG: %[[S:.*]] = "mxq.param"() {name = "fc.s"} : () -> tensor<600x63xi8>
// CHECK-DAG: %[[TS:.*]] = "mxq.param"() {name = "fc.t"} : () -> tensor<f32>
// CHECK: %[[A:.*]] = "flow.dispatch"({{.*}}, %arg0) {entry_points = [@mxc_kernels::@mxc_tilea]{{.*}} -> tensor<2176x1024xbf16>
// CHECK: %[[WB:.*]] = "flow.dispatch"({{.*}}, %[[E]], %[[S]]) {entry_points = [@mxc_kernels::@mxc_wdec_nvfp4]{{.*}} -> tensor<768x1024xbf16>
// CHECK: "flow.dispatch"({{.*}}, %c2_i32, %[[A]], %[[WB]], %[[TS]], %arg1) {entry_points = [@mxc_kernels::@mxc_hgemm_ts_bias]{{.*}} -> tensor<2100x600xf32>
// CHECK-NOT: mxq.fused_matmul
func.func @prefill(%x: tensor<2100x1000xf32>, %b: tensor<600xf32>) -> tensor<2100x600xf32> {
  %we = "mxq.param"() {name = "fc.e"} : () -> tensor<600x1008xf4E2M1FN>
  %ws = "mxq.param"() {name = "fc.s"} : () -> tensor<600x63xf8E4M3FN>
  %ts = "mxq.param"() {name = "fc.t"} : () -> tensor<f32>
  %y = "mxq.fused_matmul"(%x, %we, %ws, %ts, %b) {act_format = "none", block_size = 16 : i64, epilogue = "gelu", layer = "fc", mxq.decision = "nvfp4 weights-only (default)", operandSegmentSizes = array<i32: 1, 1, 1, 1, 1>, w_format = "nvfp4"} : (tensor<2100x1000xf32>, tensor<600x1008xf4E2M1FN>, tensor<600x63xf8E4M3FN>, tensor<f32>, tensor<600xf32>) -> tensor<2100x600xf32>
  return %y : tensor<2100x600xf32>
}

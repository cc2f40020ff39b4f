// RUN: mxc-opt %s -p 'mxq-legalize-cuda{target=cuda-sm100},lower-mxq-to-cuda{target=cuda-sm100}' | filecheck %s

// cuda-sm100: the sm_100a cubin under the generic CUDA key; the block-scaled GEMM declares its
// shared memory (3 stages of 128 x 128 tiles + 128x4 scale chunks, no bf16 tiles: the tensor
// cores read the codes), the decode path adds two bf16 tiles.
// CHECK: "hal.executable.source"() ({
// CHECK: "hal.return"(%c128, %c1, %c1)
// CHECK: sym_name = "mxc_amax_nvfp4", sym_visibility = "public", workgroup_size = [512 : index, 1 : index, 1 : index]
// bsq: one thread per 16-element block of the tiles, M and K padded to 128.
// CHECK: %[[MT:.*]] = arith.ceildivui %arg1, %c128 : index
// CHECK: %[[MP:.*]] = arith.muli %[[MT]], %c128 : index
// CHECK: %[[KT:.*]] = arith.ceildivui %arg3, %c128 : index
// CHECK: %[[KP:.*]] = arith.muli %[[KT]], %c128 : index
// CHECK: %[[ROW:.*]] = arith.divui %[[KP]], %c16 : index
// CHECK: %[[ITEMS:.*]] = arith.muli %[[MP]], %[[ROW]] : index
// CHECK: arith.ceildivui %[[ITEMS]], %c256 : index
// CHECK: sym_name = "mxc_bsq_nvfp4_u32"
// CHECK: sym_name = "mxc_bsmma_nvfp4_nvfp4_4over6_bias", sym_visibility = "public", workgroup_local_memory = 55424 : index
// CHECK: sym_name = "mxc_bsq_bf16"
// CHECK: sym_name = "mxc_bsdec_mxfp6_e2m3", sym_visibility = "public", workgroup_local_memory = 214656 : index
// CHECK: }) {objects = #hal.executable.objects<{#hal.executable.target<"cuda", "cuda-nvptx-fb"> = [#hal.executable.object<{path = "{{.*}}.cubin"}>]}>, sym_name = "mxc_kernels"

// The weights, re-packed: codes in tiles (FP4 packed: 128 x 128 / 2 bytes per tile), scales in
// 128x4 chunks (512 bytes per 128 rows x 64 K of NVFP4); the tensor scale as stored.
// CHECK-LABEL: func.func @layers
// CHECK-DAG: %[[E:.*]] = "mxq.param"() {name = "fc1.e.t32"} : () -> tensor<8192xi8>
// CHECK-DAG: %[[S:.*]] = "mxq.param"() {name = "fc1.s.t32"} : () -> tensor<1024xi8>
// CHECK-DAG: %[[T:.*]] = "mxq.param"() {name = "fc1.t"} : () -> tensor<f32>
// The activations: amax -> 128 partial maxima (their readers reduce them to the tensor scale);
// the quantizer writes tiles of codes and scales.
// CHECK: %[[TS:.*]] = "flow.dispatch"({{.*}}, %arg0) {entry_points = [@mxc_kernels::@mxc_amax_nvfp4]{{.*}} -> tensor<128xf32>
// CHECK: %[[A:.*]]:2 = "flow.dispatch"({{.*}}, %arg0, %[[TS]]) {entry_points = [@mxc_kernels::@mxc_bsq_nvfp4_u32]{{.*}} -> (tensor<8192xi8>, tensor<1024xi8>)
// CHECK: %[[H:.*]] = "flow.dispatch"({{.*}}, %[[A]]#0, %[[A]]#1, %[[TS]], %[[E]], %[[S]], %[[T]], %arg1) {entry_points = [@mxc_kernels::@mxc_bsmma_nvfp4_nvfp4_4over6_bias]{{.*}} -> tensor<4x8xf32>
// Weight-only MXFP6 at M = 256 (above gemv's 16): bf16 tiles, then the decode path.
// CHECK: %[[E2:.*]] = "mxq.param"() {name = "fc2.e.t16"} : () -> tensor<16384xi8>
// CHECK: %[[XB:.*]] = "flow.dispatch"({{.*}}) {entry_points = [@mxc_kernels::@mxc_bsq_bf16]{{.*}} -> tensor<65536xi8>
// CHECK: "flow.dispatch"({{.*}}, %[[XB]], %[[E2]], {{.*}}) {entry_points = [@mxc_kernels::@mxc_bsdec_mxfp6_e2m3]
// CHECK-NOT: mxq.fused_matmul
func.func @layers(%x: tensor<4x64xf32>, %b: tensor<8xf32>, %x2: tensor<256x64xf32>) -> (tensor<4x8xf32>, tensor<256x8xf32>) {
  %we = "mxq.param"() {name = "fc1.e"} : () -> tensor<8x64xf4E2M1FN>
  %ws = "mxq.param"() {name = "fc1.s"} : () -> tensor<8x4xf8E4M3FN>
  %wt = "mxq.param"() {name = "fc1.t"} : () -> tensor<f32>
  %h = "mxq.fused_matmul"(%x, %we, %ws, %wt, %b) {act_format = "nvfp4", block_size = 16 : i64, epilogue = "relu", layer = "fc1", mxq.decision = "nvfp4_4over6, activations nvfp4", operandSegmentSizes = array<i32: 1, 1, 1, 1, 1>, w_format = "nvfp4_4over6"} : (tensor<4x64xf32>, tensor<8x64xf4E2M1FN>, tensor<8x4xf8E4M3FN>, tensor<f32>, tensor<8xf32>) -> tensor<4x8xf32>
  %ve = "mxq.param"() {name = "fc2.e"} : () -> tensor<8x64xf6E2M3FN>
  %vs = "mxq.param"() {name = "fc2.s"} : () -> tensor<8x2xf8E8M0FNU>
  %y = "mxq.fused_matmul"(%x2, %ve, %vs) {act_format = "none", block_size = 32 : i64, epilogue = "none", layer = "fc2", mxq.decision = "mxfp6_e2m3 weights-only", operandSegmentSizes = array<i32: 1, 1, 1, 0, 0>, w_format = "mxfp6_e2m3"} : (tensor<256x64xf32>, tensor<8x64xf6E2M3FN>, tensor<8x2xf8E8M0FNU>) -> tensor<256x8xf32>
  return %h, %y : tensor<4x8xf32>, tensor<256x8xf32>
}

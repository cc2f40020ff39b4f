// RUN: mxc-opt %s -p mxq-legalize-cuda,lower-mxq-to-cuda | filecheck %s

// One hal.executable.source declares the kernels (object: the assembled sm_90a cubin, under the
// generic CUDA target key); each export's workgroup count is Kernel.grid over the workload
// (%arg1, %arg2, %arg3) = (M, N, K), built with arith ops. Each layer becomes flow.dispatch:
// workload [M, N, K], the i32 constants M, N, K, epilogue, then the buffers (weights as their
// stored i8 bytes, or re-packed into the layout the kernel reads). The module carries no side attributes.
// CHECK-NOT: mxc.kernel_library
// CHECK: "hal.executable.source"() ({
// dec: 16 weight rows x 8 rows of x per CTA: (ceil(N / 16), ceil(M / 8)) CTAs.
// CHECK: %[[C16:.*]] = arith.constant 16 : index
// CHECK: %[[X:.*]] = arith.ceildivui %arg2, %[[C16]] : index
// CHECK: %[[Y:.*]] = arith.ceildivui %arg1, %c8 : index
// CHECK: "hal.return"(%[[X]], %[[Y]], %c1)
// CHECK: }) {layout = #hal.pipeline.layout<constants = 4, bindings = [#hal.pipeline.binding<storage_buffer, ReadOnly>, #hal.pipeline.binding<storage_buffer, ReadOnly>, #hal.pipeline.binding<storage_buffer, ReadOnly>, #hal.pipeline.binding<storage_buffer, ReadOnly>, #hal.pipeline.binding<storage_buffer, ReadOnly>, #hal.pipeline.binding<storage_buffer>]>, ordinal = 0 : index, sym_name = "mxc_dec_nvfp4_m8_bias", sym_visibility = "public", workgroup_size = [256 : index, 1 : index, 1 : index]}
// tileq: the MXFP8 activations as bf16 tiles of 16 rows x 64 K (K permuted): one thread per row of a tile,
// ceil(M / 16) x ceil(K / 64) x 16 of them.
// CHECK: %[[TM:.*]] = arith.ceildivui %arg1, %c16 : index
// CHECK: %[[TK:.*]] = arith.ceildivui %arg3, %c64 : index
// CHECK: %[[TT:.*]] = arith.muli %[[TM]], %[[TK]] : index
// CHECK: %[[TR:.*]] = arith.muli %[[TT]], %c16 : index
// CHECK: %[[TG:.*]] = arith.ceildivui %[[TR]], %c256 : index
// CHECK: "hal.return"(%[[TG]], %c1, %c1)
// CHECK: }) {layout = #hal.pipeline.layout<constants = 2, {{.*}} sym_name = "mxc_tileq_mxfp8_r16p"
// rdec: 128 weight rows x 16 rows of x per CTA, one K split; 12 stages of 10496 bytes (activations 2048,
// FP8 codes 8192, scales 256) and their two mbarriers.
// CHECK: %[[RN:.*]] = arith.ceildivui %arg2, %c128 : index
// CHECK: %[[RM:.*]] = arith.ceildivui %arg1, %c16 : index
// CHECK: "hal.return"(%[[RN]], %[[RM]], %c1)
// CHECK: }) {layout = {{.*}} sym_name = "mxc_rdec_mxfp8_n16_s1", sym_visibility = "public", workgroup_local_memory = 126144 : index, workgroup_size = [384 : index, 1 : index, 1 : index]}
// CHECK: }) {objects = #hal.executable.objects<{#hal.executable.target<"cuda", "cuda-nvptx-fb"> = [#hal.executable.object<{path = "{{.*}}.cubin"}>]}>, sym_name = "mxc_kernels", sym_visibility = "private"}

// CHECK-LABEL: func.func @mlp
// dec's weights: one 16 x 64 fragment tile (512 bytes of bit-scattered E2M1 codes, 16 x 4 scales).
// CHECK-DAG: %[[E:.*]] = "mxq.param"() {name = "fc1.e.f16x64e2"} : () -> tensor<512xi8>
// CHECK-DAG: %[[S:.*]] = "mxq.param"() {name = "fc1.s.f16x64e2"} : () -> tensor<64xi8>
// CHECK: %[[Y:.*]] = "flow.dispatch"(%{{.*}}, %{{.*}}, %{{.*}}, %c4_i32, %c8_i32, %c64_i32, %c1_i32, %arg0, %[[E]], %[[S]], %{{.*}}, %{{.*}}) {entry_points = [@mxc_kernels::@mxc_dec_nvfp4_m8_bias], operandSegmentSizes = array<i32: 3, 9, 0, 0>, tied_operands = [-1 : index]} : (index, index, index, i32, i32, i32, i32, tensor<4x64xf32>, tensor<512xi8>, tensor<64xi8>, tensor<f32>, tensor<8xf32>) -> tensor<4x8xf32>
// rdec's weights: the fragment tiles grouped by 8 (8 x 1024 bytes of FP8 codes, 8 x 32 scales: N padded to 128).
// CHECK-DAG: %[[E2:.*]] = "mxq.param"() {name = "fc2.e.f16x64g8"} : () -> tensor<8192xi8>
// CHECK-DAG: %[[S2:.*]] = "mxq.param"() {name = "fc2.s.f16x64g8"} : () -> tensor<256xi8>
// CHECK: %[[A:.*]] = "flow.dispatch"({{.*}}) {entry_points = [@mxc_kernels::@mxc_tileq_mxfp8_r16p]{{.*}} -> tensor<16x64xbf16>
// CHECK: "flow.dispatch"({{.*}}, %[[A]], %[[E2]], %[[S2]]) {entry_points = [@mxc_kernels::@mxc_rdec_mxfp8_n16_s1]{{.*}} -> tensor<4x8xf32>
// CHECK-NOT: mxq.fused_matmul
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
  return %y : tensor<4x8xf32>
}

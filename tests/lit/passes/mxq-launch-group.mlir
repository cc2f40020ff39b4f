// RUN: mxc-opt %s --split-input-file -p mxq-legalize-cuda | filecheck %s --check-prefix=GROUP
// RUN: mxc-opt %s --split-input-file -p 'mxq-legalize-cuda{group=false}' | filecheck %s --check-prefix=NOGROUP
// RUN: mxc-opt %s --split-input-file -p mxq-legalize-cuda,lower-mxq-to-cuda | filecheck %s --check-prefix=LOWER

// The decode step's projections that read one activation (q/k/v: the importer casts the torch value
// once per use) with one weight format at M = 1: one `dec1b` launch for both, over their weights side by
// side along N (8 + 16 rows), then each layer's columns times its own NV tensor scale, plus its bias,
// through its epilogue (so the layers record the shared kernel, without a bias). The MXFP4 layer reading the
// same input has another format: a launch of its own.

// GROUP-LABEL: func.func @qkv
// GROUP: "mxq.fused_matmul"{{.*}}layer = "q"{{.*}}mxq.launch_group = "q"{{.*}}mxq.path = "{{.*}}; one launch for the 2 layers reading this input"
// GROUP: "mxq.fused_matmul"{{.*}}layer = "k"{{.*}}mxq.kernels = [{{.*}}bias = false{{.*}}name = "mxc_dec1b_nvfp4_w16t2s4c1"{{.*}}mxq.launch_group = "q"
// GROUP: "mxq.fused_matmul"{{.*}}layer = "o"
// GROUP-NOT: mxq.launch_group
// GROUP-SAME: w_format = "mxfp4"
// NOGROUP-LABEL: func.func @qkv
// NOGROUP-NOT: mxq.launch_group

// LOWER-LABEL: func.func @qkv
// LOWER-DAG: %[[W:.*]] = "mxq.param"() {name = "q.e+k.e.f16x64e2"} : () -> tensor<1024xi8>
// LOWER-DAG: %[[S:.*]] = "mxq.param"() {name = "q.s+k.s.f16x64e2"}
// LOWER: %[[ONE:.*]] = linalg.fill {{.*}} -> tensor<f32>
// LOWER: %[[Y:.*]] = "flow.dispatch"({{.*}}, %[[W]], %[[S]], %[[ONE]]) {entry_points = [@mxc_kernels::@mxc_dec1b_nvfp4_w16t2s4c1]
// LOWER-SAME: -> tensor<1x24xf32>
// LOWER: %[[Q:.*]] = tensor.extract_slice %[[Y]][0, 0] [1, 8] [1, 1]
// LOWER: linalg.generic {{.*}} ins(%[[Q]], %{{.*}} : tensor<1x8xf32>, tensor<f32>)
// LOWER: arith.mulf
// LOWER-NOT: arith.addf
// LOWER: linalg.yield
// LOWER: %[[K:.*]] = tensor.extract_slice %[[Y]][0, 8] [1, 16] [1, 1]
// LOWER: linalg.generic {{.*}} ins(%[[K]], %{{.*}}, %{{.*}} : tensor<1x16xf32>, tensor<f32>, tensor<16xf32>)
// LOWER: arith.mulf
// LOWER: arith.addf
// LOWER: math.exp
// LOWER: arith.divf
// LOWER: "flow.dispatch"{{.*}}@mxc_dec1b_mxfp4_w16t2s4c1
// LOWER-NOT: "flow.dispatch"{{.*}}@mxc_dec1b_nvfp4
func.func @qkv(%t: !torch.vtensor<[1,64],f32>, %b: tensor<16xf32>) -> (tensor<1x8xf32>, tensor<1x16xf32>, tensor<1x8xf32>) {
  %x1 = "torch_c.to_builtin_tensor"(%t) : (!torch.vtensor<[1,64],f32>) -> tensor<1x64xf32>
  %qe = "mxq.param"() {name = "q.e"} : () -> tensor<8x64xf4E2M1FN>
  %qs = "mxq.param"() {name = "q.s"} : () -> tensor<8x4xf8E4M3FN>
  %qt = "mxq.param"() {name = "q.t"} : () -> tensor<f32>
  %q = "mxq.fused_matmul"(%x1, %qe, %qs, %qt) {act_format = "none", block_size = 16 : i64, epilogue = "none", layer = "q", mxq.decision = "nvfp4 weights-only", operandSegmentSizes = array<i32: 1, 1, 1, 1, 0>, w_format = "nvfp4"} : (tensor<1x64xf32>, tensor<8x64xf4E2M1FN>, tensor<8x4xf8E4M3FN>, tensor<f32>) -> tensor<1x8xf32>
  %x2 = "torch_c.to_builtin_tensor"(%t) : (!torch.vtensor<[1,64],f32>) -> tensor<1x64xf32>
  %ke = "mxq.param"() {name = "k.e"} : () -> tensor<16x64xf4E2M1FN>
  %ks = "mxq.param"() {name = "k.s"} : () -> tensor<16x4xf8E4M3FN>
  %kt = "mxq.param"() {name = "k.t"} : () -> tensor<f32>
  %k = "mxq.fused_matmul"(%x2, %ke, %ks, %kt, %b) {act_format = "none", block_size = 16 : i64, epilogue = "silu", layer = "k", mxq.decision = "nvfp4 weights-only", operandSegmentSizes = array<i32: 1, 1, 1, 1, 1>, w_format = "nvfp4"} : (tensor<1x64xf32>, tensor<16x64xf4E2M1FN>, tensor<16x4xf8E4M3FN>, tensor<f32>, tensor<16xf32>) -> tensor<1x16xf32>
  %x3 = "torch_c.to_builtin_tensor"(%t) : (!torch.vtensor<[1,64],f32>) -> tensor<1x64xf32>
  %oe = "mxq.param"() {name = "o.e"} : () -> tensor<8x64xf4E2M1FN>
  %os = "mxq.param"() {name = "o.s"} : () -> tensor<8x2xf8E8M0FNU>
  %o = "mxq.fused_matmul"(%x3, %oe, %os) {act_format = "none", block_size = 32 : i64, epilogue = "none", layer = "o", mxq.decision = "mxfp4 weights-only", operandSegmentSizes = array<i32: 1, 1, 1, 0, 0>, w_format = "mxfp4"} : (tensor<1x64xf32>, tensor<8x64xf4E2M1FN>, tensor<8x2xf8E8M0FNU>) -> tensor<1x8xf32>
  return %q, %k, %o : tensor<1x8xf32>, tensor<1x16xf32>, tensor<1x8xf32>
}

// -----

// Past M = 1 (the prefill, M = 4 here) each layer keeps its own launch.
// GROUP-LABEL: func.func @prefill
// GROUP-NOT: mxq.launch_group
// LOWER-LABEL: func.func @prefill
// LOWER-COUNT-2: "flow.dispatch"{{.*}}@mxc_dec_nvfp4_m8
func.func @prefill(%x: tensor<4x64xf32>) -> (tensor<4x8xf32>, tensor<4x8xf32>) {
  %qe = "mxq.param"() {name = "q.e"} : () -> tensor<8x64xf4E2M1FN>
  %qs = "mxq.param"() {name = "q.s"} : () -> tensor<8x4xf8E4M3FN>
  %qt = "mxq.param"() {name = "q.t"} : () -> tensor<f32>
  %q = "mxq.fused_matmul"(%x, %qe, %qs, %qt) {act_format = "none", block_size = 16 : i64, epilogue = "none", layer = "q", mxq.decision = "nvfp4 weights-only", operandSegmentSizes = array<i32: 1, 1, 1, 1, 0>, w_format = "nvfp4"} : (tensor<4x64xf32>, tensor<8x64xf4E2M1FN>, tensor<8x4xf8E4M3FN>, tensor<f32>) -> tensor<4x8xf32>
  %ke = "mxq.param"() {name = "k.e"} : () -> tensor<8x64xf4E2M1FN>
  %ks = "mxq.param"() {name = "k.s"} : () -> tensor<8x4xf8E4M3FN>
  %kt = "mxq.param"() {name = "k.t"} : () -> tensor<f32>
  %k = "mxq.fused_matmul"(%x, %ke, %ks, %kt) {act_format = "none", block_size = 16 : i64, epilogue = "none", layer = "k", mxq.decision = "nvfp4 weights-only", operandSegmentSizes = array<i32: 1, 1, 1, 1, 0>, w_format = "nvfp4"} : (tensor<4x64xf32>, tensor<8x64xf4E2M1FN>, tensor<8x4xf8E4M3FN>, tensor<f32>) -> tensor<4x8xf32>
  return %q, %k : tensor<4x8xf32>, tensor<4x8xf32>
}

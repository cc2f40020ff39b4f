// RUN: not mxc-opt %s --split-input-file -p lower-mxq-to-cuda 2>&1 | filecheck %s

// The kernels recorded on the op must compute its formats: an MXFP8 gemv for MXFP4 weights is stale.
// CHECK: layer fc: mxq.kernels names [mxc_gemv_mxfp8_m4], which does not compute mxfp4 weights x none activations on cuda-sm90 (sm_90a); run mxq-legalize-cuda{target=cuda-sm90} again
func.func @stale(%x: tensor<4x64xf32>) -> tensor<4x8xf32> {
  %we = "mxq.param"() {name = "fc.e"} : () -> tensor<8x64xf4E2M1FN>
  %ws = "mxq.param"() {name = "fc.s"} : () -> tensor<8x2xf8E8M0FNU>
  %y = "mxq.fused_matmul"(%x, %we, %ws) {act_format = "none", block_size = 32 : i64, epilogue = "none", layer = "fc", mxq.decision = "mxfp4", mxq.kernels = [{arch = "sm_90a", bias = false, kind = "gemv", mt = 4 : i64, name = "mxc_gemv_mxfp8_m4", w_format = "mxfp8"}], operandSegmentSizes = array<i32: 1, 1, 1, 0, 0>, w_format = "mxfp4"} : (tensor<4x64xf32>, tensor<8x64xf4E2M1FN>, tensor<8x2xf8E8M0FNU>) -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

// A kernel whose fields and name disagree is refused too.
// CHECK: layer fc2: malformed mxq.kernels: kernel 'mxc_gemv_mxfp4_m16' does not match its fields (they name 'mxc_gemv_mxfp4_m4')
func.func @mismatch(%x: tensor<4x64xf32>) -> tensor<4x8xf32> {
  %we = "mxq.param"() {name = "fc.e"} : () -> tensor<8x64xf4E2M1FN>
  %ws = "mxq.param"() {name = "fc.s"} : () -> tensor<8x2xf8E8M0FNU>
  %y = "mxq.fused_matmul"(%x, %we, %ws) {act_format = "none", block_size = 32 : i64, epilogue = "none", layer = "fc2", mxq.decision = "mxfp4", mxq.kernels = [{arch = "sm_90a", bias = false, kind = "gemv", mt = 4 : i64, name = "mxc_gemv_mxfp4_m16", w_format = "mxfp4"}], operandSegmentSizes = array<i32: 1, 1, 1, 0, 0>, w_format = "mxfp4"} : (tensor<4x64xf32>, tensor<8x64xf4E2M1FN>, tensor<8x2xf8E8M0FNU>) -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

// No kernels chosen at all.
// CHECK: layer fc3: no kernels chosen (run mxq-legalize-cuda{target=cuda-sm90} first)
func.func @unlegalized(%x: tensor<4x64xf32>) -> tensor<4x8xf32> {
  %we = "mxq.param"() {name = "fc.e"} : () -> tensor<8x64xf4E2M1FN>
  %ws = "mxq.param"() {name = "fc.s"} : () -> tensor<8x2xf8E8M0FNU>
  %y = "mxq.fused_matmul"(%x, %we, %ws) {act_format = "none", block_size = 32 : i64, epilogue = "none", layer = "fc3", mxq.decision = "mxfp4", operandSegmentSizes = array<i32: 1, 1, 1, 0, 0>, w_format = "mxfp4"} : (tensor<4x64xf32>, tensor<8x64xf4E2M1FN>, tensor<8x2xf8E8M0FNU>) -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

// A launch group whose layers no longer read one input (edited after mxq-legalize-cuda) is refused.
// CHECK: layer b: mxq.launch_group 'a' joins layers that do not share their input, weight format and M = 1 dec kernel; run mxq-legalize-cuda{target=cuda-sm90} again
func.func @stale_group(%x: tensor<1x64xf32>, %x2: tensor<1x64xf32>) -> (tensor<1x8xf32>, tensor<1x8xf32>) {
  %ae = "mxq.param"() {name = "a.e"} : () -> tensor<8x64xf4E2M1FN>
  %as = "mxq.param"() {name = "a.s"} : () -> tensor<8x2xf8E8M0FNU>
  %a = "mxq.fused_matmul"(%x, %ae, %as) {act_format = "none", block_size = 32 : i64, epilogue = "none", layer = "a", mxq.decision = "mxfp4", mxq.kernels = [{arch = "sm_90a", bias = false, kind = "dec", mt = 1 : i64, name = "mxc_dec_mxfp4_m1", r = 1 : i64, w_format = "mxfp4"}], mxq.launch_group = "a", operandSegmentSizes = array<i32: 1, 1, 1, 0, 0>, w_format = "mxfp4"} : (tensor<1x64xf32>, tensor<8x64xf4E2M1FN>, tensor<8x2xf8E8M0FNU>) -> tensor<1x8xf32>
  %be = "mxq.param"() {name = "b.e"} : () -> tensor<8x64xf4E2M1FN>
  %bs = "mxq.param"() {name = "b.s"} : () -> tensor<8x2xf8E8M0FNU>
  %b = "mxq.fused_matmul"(%x2, %be, %bs) {act_format = "none", block_size = 32 : i64, epilogue = "none", layer = "b", mxq.decision = "mxfp4", mxq.kernels = [{arch = "sm_90a", bias = false, kind = "dec", mt = 1 : i64, name = "mxc_dec_mxfp4_m1", r = 1 : i64, w_format = "mxfp4"}], mxq.launch_group = "a", operandSegmentSizes = array<i32: 1, 1, 1, 0, 0>, w_format = "mxfp4"} : (tensor<1x64xf32>, tensor<8x64xf4E2M1FN>, tensor<8x2xf8E8M0FNU>) -> tensor<1x8xf32>
  return %a, %b : tensor<1x8xf32>, tensor<1x8xf32>
}

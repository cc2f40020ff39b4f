// RUN: mxc-opt %s -p 'decompose-attention{amx=true}' | filecheck %s

// amx (the cpu target with --contraction amx): the two matmuls of the decomposed attention run as batched
// AMX dispatches (batch = B x H = 2) of an executable of their own, each operand split in three bf16 parts
// (six products: kernel p3x3); the scores' mask and softmax stay torch ops. q [1,2,40,8] @ k^T: M = 40,
// N = 40, K = 8 padded to 64 x 64 x 32; probs [1,2,40,40] @ v [1,2,40,8]: B read transposed, N = 8 -> 32.
// CHECK: "hal.executable.source"() <{sym_name = "mxc_amx_attention", sym_visibility = "private"}>
// CHECK: sym_name = "mxc_amx_2x64x64x32_p3x3"
// CHECK: sym_name = "mxc_amx_2x64x32x64_p3x3"
// CHECK-LABEL: func.func @causal
// CHECK: torch.aten.mul.Scalar
// CHECK: "torch_c.to_builtin_tensor"
// CHECK: -> (tensor<2x4x1x16x32xbf16>, tensor<2x4x1x16x32xbf16>, tensor<2x4x1x16x32xbf16>)
// CHECK: "flow.dispatch"({{.*}}) {entry_points = [@mxc_amx_attention::@mxc_amx_2x64x64x32_p3x3]
// CHECK: tensor.extract_slice {{.*}} to tensor<2x40x40xf32>
// CHECK: "torch_c.from_builtin_tensor"({{.*}}) -> !torch.vtensor<[1,2,40,40],f32>
// CHECK: torch.aten.softmax.int
// CHECK: "flow.dispatch"({{.*}}) {entry_points = [@mxc_amx_attention::@mxc_amx_2x64x32x64_p3x3]
// CHECK: "torch_c.from_builtin_tensor"({{.*}}) -> !torch.vtensor<[1,2,40,8],f32>
// CHECK-NOT: torch.aten.matmul
// CHECK-NOT: scaled_dot_product_attention
func.func @causal(%q: !torch.vtensor<[1,2,40,8],f32>, %k: !torch.vtensor<[1,2,40,8],f32>, %v: !torch.vtensor<[1,2,40,8],f32>) -> !torch.vtensor<[1,2,40,8],f32> {
  %none = torch.constant.none
  %p = torch.constant.float 0.000000e+00
  %true = torch.constant.bool true
  %false = torch.constant.bool false
  %r = torch.aten.scaled_dot_product_attention %q, %k, %v, %none, %p, %true, %none, %false : !torch.vtensor<[1,2,40,8],f32>, !torch.vtensor<[1,2,40,8],f32>, !torch.vtensor<[1,2,40,8],f32>, !torch.none, !torch.float, !torch.bool, !torch.none, !torch.bool -> !torch.vtensor<[1,2,40,8],f32>
  return %r : !torch.vtensor<[1,2,40,8],f32>
}

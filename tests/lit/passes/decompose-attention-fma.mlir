// RUN: mxc-opt %s -p 'decompose-attention{fma=true}' | filecheck %s

// fma (the cpu target with --contraction fma): the two matmuls of the decomposed attention run as batched
// dispatches (batch = B x H = 2) of mxc's float32 FMA kernel, in an executable of their own; the keys
// (q @ k^T) and the values (read transposed) packed in 24-column panels; the mask and softmax stay torch
// ops. q [1,2,40,8] @ k^T: M = 40, N = 40 -> 48, K = 8; probs @ v [1,2,40,8]: N = 8 -> 24, K = 40.
// CHECK: "hal.executable.source"() <{sym_name = "mxc_fma_attention", sym_visibility = "private"}>
// CHECK: sym_name = "mxc_fma_2x40x48x8"
// CHECK: sym_name = "mxc_fma_2x40x24x40"
// CHECK-LABEL: func.func @causal
// CHECK: torch.aten.mul.Scalar
// CHECK: "torch_c.to_builtin_tensor"
// CHECK: -> tensor<2x2x8x24xf32>
// CHECK: "flow.dispatch"({{.*}}) {entry_points = [@mxc_fma_attention::@mxc_fma_2x40x48x8]
// CHECK: tensor.extract_slice {{.*}} to tensor<2x40x40xf32>
// CHECK: "torch_c.from_builtin_tensor"({{.*}}) -> !torch.vtensor<[1,2,40,40],f32>
// CHECK: torch.aten.softmax.int
// CHECK: -> tensor<2x1x40x24xf32>
// CHECK: "flow.dispatch"({{.*}}) {entry_points = [@mxc_fma_attention::@mxc_fma_2x40x24x40]
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

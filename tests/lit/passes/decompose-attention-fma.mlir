// RUN: mxc-opt %s -p 'decompose-attention{fma=true}' | filecheck %s

// fma (the cpu target with --contraction fma): is_causal attention becomes three dispatches of mxc's FMA
// executable (batch = B x H = 2), no torch op between them. q [1,2,40,8] @ k^T: M = 40, N = 40 -> 48,
// K = 8, with the causal mask's -inf written by the kernel (tiles above the diagonal take no K step;
// _tril); the softmax, each row only up to the diagonal (_tril); probs [2,40,48] @ v (read transposed,
// K padded to 48, N = 8: a panel of 8 columns, _p8), each row tile's K stopped at its last row (_trila).
// CHECK: "hal.executable.source"() <{sym_name = "mxc_fma_attention", sym_visibility = "private"}>
// CHECK: sym_name = "mxc_fma_2x40x48x8_tril"
// CHECK: sym_name = "mxc_fma_softmax_2x40x48_tril"
// CHECK: sym_name = "mxc_fma_2x40x8x48_trila_p8"
// CHECK: func.func @mxc_fma_2x40x48x8_tril()
// CHECK: arith.cmpi sle
// CHECK: arith.select
// CHECK: scf.for %{{.*}} = %{{.*}} to %[[HI:.*]] step
// CHECK: arith.cmpi sgt, {{.*}} : vector<8xi32>
// CHECK: arith.select {{.*}} : vector<8xi1>, vector<8xf32>
// CHECK: func.func @mxc_fma_softmax_2x40x48_tril()
// CHECK: vector.reduction <maxnumf>
// CHECK: math.floor
// CHECK: vector.reduction <add>
// CHECK: func.func @mxc_fma_2x40x8x48_trila_p8()
// CHECK: arith.subi
// CHECK: arith.maxsi
// CHECK: arith.minsi
// CHECK: scf.for
// A scaled_dot_product_attention with is_causal:
// CHECK-LABEL: func.func @causal
// CHECK: torch.aten.mul.Scalar
// CHECK: "flow.dispatch"({{.*}}) {entry_points = [@mxc_fma_attention::@mxc_fma_2x40x48x8_tril]{{.*}} -> tensor<3840xf32>
// CHECK-NOT: torch.aten
// CHECK: "flow.dispatch"({{.*}}) {entry_points = [@mxc_fma_attention::@mxc_fma_softmax_2x40x48_tril]{{.*}} : (tensor<3840xf32>) -> tensor<3840xf32>
// CHECK-NOT: torch.aten
// CHECK: -> tensor<2x1x48x8xf32>
// CHECK: "flow.dispatch"({{.*}}) {entry_points = [@mxc_fma_attention::@mxc_fma_2x40x8x48_trila_p8]{{.*}} -> tensor<640xf32>
// CHECK: "torch_c.from_builtin_tensor"({{.*}}) -> !torch.vtensor<[1,2,40,8],f32>
// CHECK-NOT: torch.aten.softmax
// CHECK-NOT: scaled_dot_product_attention
func.func @causal(%q: !torch.vtensor<[1,2,40,8],f32>, %k: !torch.vtensor<[1,2,40,8],f32>, %v: !torch.vtensor<[1,2,40,8],f32>) -> !torch.vtensor<[1,2,40,8],f32> {
  %none = torch.constant.none
  %p = torch.constant.float 0.000000e+00
  %true = torch.constant.bool true
  %false = torch.constant.bool false
  %r = torch.aten.scaled_dot_product_attention %q, %k, %v, %none, %p, %true, %none, %false : !torch.vtensor<[1,2,40,8],f32>, !torch.vtensor<[1,2,40,8],f32>, !torch.vtensor<[1,2,40,8],f32>, !torch.none, !torch.float, !torch.bool, !torch.none, !torch.bool -> !torch.vtensor<[1,2,40,8],f32>
  return %r : !torch.vtensor<[1,2,40,8],f32>
}

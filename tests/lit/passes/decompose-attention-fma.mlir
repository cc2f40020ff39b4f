// RUN: mxc-opt %s -p 'decompose-attention{fma=true}' | filecheck %s

// fma (the cpu target with --contraction fma or dpbf16): is_causal attention becomes one dispatch of mxc's
// FMA executable (batch = B x H = 2), no torch op around it but the scale: per block of 8 query rows, the
// scores q . k^T (M = 40, N = 40 -> 48, K = 8) with the causal mask's -inf written in (tiles above the
// diagonal take no K step) into a stack buffer of 8 x 48 floats, each row's softmax there (only up to the
// diagonal), and the probabilities times the values (read transposed, K padded to 48, N = 8: panels of 8
// columns, _v8), each row tile's K stopped at its last row. The scores never reach memory.
// CHECK: "hal.executable.source"() <{sym_name = "mxc_fma_attention", sym_visibility = "private"}>
// CHECK: sym_name = "mxc_fma_attn_2x40x48x8x8_tril_v8"
// Past 8 x 1024 floats of scores (4 x 2048 at most: IREE's 32 KB stack limit), the three kernels instead,
// the scores in a tensor: here S = 2056 keys (-> 2064), 8 queries.
// CHECK: sym_name = "mxc_fma_2x8x2064x8_tril"
// CHECK: sym_name = "mxc_fma_softmax_2x8x2064_tril"
// CHECK: sym_name = "mxc_fma_2x8x8x2064_trila_p8"
// CHECK: func.func @mxc_fma_attn_2x40x48x8x8_tril_v8()
// CHECK: memref.alloca() : memref<384xf32>
// CHECK: arith.cmpi sle
// CHECK: arith.select
// CHECK: scf.for %{{.*}} = %{{.*}} to %[[HI:.*]] step
// CHECK: arith.cmpi sgt, {{.*}} : vector<8xi32>
// CHECK: arith.select {{.*}} : vector<8xi1>, vector<8xf32>
// CHECK: vector.store {{.*}} : memref<384xf32>, vector<8xf32>
// CHECK: vector.reduction <maxnumf>
// CHECK: math.floor
// CHECK: vector.reduction <add>
// CHECK: arith.minsi
// CHECK: scf.for
// CHECK: memref.load {{.*}} : memref<384xf32>
// CHECK: vector.fma

// CHECK-LABEL: func.func @causal
// CHECK: torch.aten.mul.Scalar
// CHECK: "flow.dispatch"({{.*}}) {entry_points = [@mxc_fma_attention::@mxc_fma_attn_2x40x48x8x8_tril_v8]{{.*}} -> tensor<640xf32>
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

// CHECK-LABEL: func.func @long
// CHECK: "flow.dispatch"({{.*}}) {entry_points = [@mxc_fma_attention::@mxc_fma_2x8x2064x8_tril]
// CHECK: "flow.dispatch"({{.*}}) {entry_points = [@mxc_fma_attention::@mxc_fma_softmax_2x8x2064_tril]
// CHECK: "flow.dispatch"({{.*}}) {entry_points = [@mxc_fma_attention::@mxc_fma_2x8x8x2064_trila_p8]
func.func @long(%q: !torch.vtensor<[1,2,8,8],f32>, %k: !torch.vtensor<[1,2,2056,8],f32>, %v: !torch.vtensor<[1,2,2056,8],f32>) -> !torch.vtensor<[1,2,8,8],f32> {
  %none = torch.constant.none
  %p = torch.constant.float 0.000000e+00
  %true = torch.constant.bool true
  %false = torch.constant.bool false
  %r = torch.aten.scaled_dot_product_attention %q, %k, %v, %none, %p, %true, %none, %false : !torch.vtensor<[1,2,8,8],f32>, !torch.vtensor<[1,2,2056,8],f32>, !torch.vtensor<[1,2,2056,8],f32>, !torch.none, !torch.float, !torch.bool, !torch.none, !torch.bool -> !torch.vtensor<[1,2,8,8],f32>
  return %r : !torch.vtensor<[1,2,8,8],f32>
}

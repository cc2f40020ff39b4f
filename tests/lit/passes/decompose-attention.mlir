// RUN: mxc-opt %s --split-input-file -p decompose-attention | filecheck %s

// A boolean mask (what transformers passes): q scaled, then an additive bias where(mask, 0, -inf),
// built once for the two attentions that share the mask.
// CHECK-LABEL: func.func @bool_mask
// CHECK: %[[QS:.*]] = torch.aten.mul.Scalar %arg0, %float1.250000e-01{{.*}} : {{.*}} -> !torch.vtensor<[1,2,4,8],f32>
// CHECK: %[[KT:.*]] = torch.aten.transpose.int %arg1, %{{.*}}, %{{.*}} : {{.*}} -> !torch.vtensor<[1,2,8,4],f32>
// CHECK: %[[S:.*]] = torch.aten.matmul %[[QS]], %[[KT]] : {{.*}} -> !torch.vtensor<[1,2,4,4],f32>
// CHECK: %[[NEG:.*]] = torch.constant.float 0xFFF0000000000000
// CHECK: %[[B:.*]] = torch.aten.where.Scalar %arg3, %{{.*}}, %[[NEG]] : {{.*}} -> !torch.vtensor<[1,1,4,4],f32>
// CHECK: %[[ROWS:.*]] = torch.aten.any.dim %arg3, %{{.*}}, %{{.*}} : {{.*}} -> !torch.vtensor<[1,1,4,1],i1>
// CHECK: %[[M:.*]] = torch.aten.add.Tensor %[[S]], %[[B]]
// CHECK: %[[P:.*]] = torch.aten.softmax.int %[[M]]
// CHECK: %[[PG:.*]] = torch.aten.where.ScalarOther %[[ROWS]], %[[P]], %{{.*}} : {{.*}} -> !torch.vtensor<[1,2,4,4],f32>
// CHECK: %[[O:.*]] = torch.aten.matmul %[[PG]], %arg2 : {{.*}} -> !torch.vtensor<[1,2,4,8],f32>
// CHECK-NOT: torch.aten.where.Scalar %
// CHECK-NOT: torch.aten.any.dim
// CHECK: torch.aten.add.Tensor %{{.*}}, %[[B]]
// CHECK: torch.aten.where.ScalarOther %[[ROWS]]
// CHECK: %[[O2:.*]] = torch.aten.matmul
// CHECK-NOT: scaled_dot_product_attention
// CHECK: return %[[O2]]
func.func @bool_mask(%q: !torch.vtensor<[1,2,4,8],f32>, %k: !torch.vtensor<[1,2,4,8],f32>, %v: !torch.vtensor<[1,2,4,8],f32>, %m: !torch.vtensor<[1,1,4,4],i1>) -> !torch.vtensor<[1,2,4,8],f32> {
  %p = torch.constant.float 0.000000e+00
  %false = torch.constant.bool false
  %s = torch.constant.float 1.250000e-01
  %r = torch.aten.scaled_dot_product_attention %q, %k, %v, %m, %p, %false, %s, %false : !torch.vtensor<[1,2,4,8],f32>, !torch.vtensor<[1,2,4,8],f32>, !torch.vtensor<[1,2,4,8],f32>, !torch.vtensor<[1,1,4,4],i1>, !torch.float, !torch.bool, !torch.float, !torch.bool -> !torch.vtensor<[1,2,4,8],f32>
  %r2 = torch.aten.scaled_dot_product_attention %r, %k, %v, %m, %p, %false, %s, %false : !torch.vtensor<[1,2,4,8],f32>, !torch.vtensor<[1,2,4,8],f32>, !torch.vtensor<[1,2,4,8],f32>, !torch.vtensor<[1,1,4,4],i1>, !torch.float, !torch.bool, !torch.float, !torch.bool -> !torch.vtensor<[1,2,4,8],f32>
  return %r2 : !torch.vtensor<[1,2,4,8],f32>
}

// -----

// is_causal, no scale given (1/sqrt(8)): a lower-triangular literal mask.
// CHECK-LABEL: func.func @causal_default_scale
// CHECK: torch.constant.float 0.35355339059327373
// CHECK: torch.aten.mul.Scalar %arg0
// CHECK: torch.vtensor.literal(dense<{{\[}}[true, false, false], [true, true, false], [true, true, true]]> : tensor<3x3xi1>)
// CHECK: torch.aten.where.Scalar
// CHECK: torch.aten.add.Tensor
// CHECK: torch.aten.softmax.int
// CHECK-NOT: torch.aten.where.ScalarOther
// CHECK-NOT: scaled_dot_product_attention
func.func @causal_default_scale(%q: !torch.vtensor<[2,1,3,8],f32>, %k: !torch.vtensor<[2,1,3,8],f32>, %v: !torch.vtensor<[2,1,3,8],f32>) -> !torch.vtensor<[2,1,3,8],f32> {
  %none = torch.constant.none
  %p = torch.constant.float 0.000000e+00
  %true = torch.constant.bool true
  %false = torch.constant.bool false
  %r = torch.aten.scaled_dot_product_attention %q, %k, %v, %none, %p, %true, %none, %false : !torch.vtensor<[2,1,3,8],f32>, !torch.vtensor<[2,1,3,8],f32>, !torch.vtensor<[2,1,3,8],f32>, !torch.none, !torch.float, !torch.bool, !torch.none, !torch.bool -> !torch.vtensor<[2,1,3,8],f32>
  return %r : !torch.vtensor<[2,1,3,8],f32>
}

// -----

// bf16 attention with a float mask: computed in f32 (extensions, the mask added), rounded once to bf16 (code 15).
// CHECK-LABEL: func.func @bf16_float_mask
// CHECK-COUNT-4: torch.aten.to.dtype %{{.*}} -> !torch.vtensor<[{{.*}}],f32>
// CHECK: torch.aten.amax
// CHECK: torch.aten.gt.Scalar
// CHECK: torch.aten.add.Tensor
// CHECK: torch.aten.softmax.int
// CHECK: torch.aten.where.ScalarOther
// CHECK: %[[O:.*]] = torch.aten.matmul
// CHECK: %[[BF:.*]] = torch.constant.int 15
// CHECK: %[[R:.*]] = torch.aten.to.dtype %[[O]], %[[BF]], {{.*}} -> !torch.vtensor<[1,2,4,8],bf16>
// CHECK: return %[[R]]
func.func @bf16_float_mask(%q: !torch.vtensor<[1,2,4,8],bf16>, %k: !torch.vtensor<[1,2,4,8],bf16>, %v: !torch.vtensor<[1,2,4,8],bf16>, %m: !torch.vtensor<[4,4],bf16>) -> !torch.vtensor<[1,2,4,8],bf16> {
  %p = torch.constant.float 0.000000e+00
  %false = torch.constant.bool false
  %none = torch.constant.none
  %r = torch.aten.scaled_dot_product_attention %q, %k, %v, %m, %p, %false, %none, %false : !torch.vtensor<[1,2,4,8],bf16>, !torch.vtensor<[1,2,4,8],bf16>, !torch.vtensor<[1,2,4,8],bf16>, !torch.vtensor<[4,4],bf16>, !torch.float, !torch.bool, !torch.none, !torch.bool -> !torch.vtensor<[1,2,4,8],bf16>
  return %r : !torch.vtensor<[1,2,4,8],bf16>
}

// -----

// Left whole (IREE's attention op computes them): dropout, enable_gqa, a mask with is_causal, f64, dynamic shapes.
// CHECK-LABEL: func.func @kept
// CHECK-COUNT-5: torch.aten.scaled_dot_product_attention
// CHECK-NOT: torch.aten.softmax.int
func.func @kept(%q: !torch.vtensor<[1,4,4,8],f32>, %m: !torch.vtensor<[4,4],i1>, %w: !torch.vtensor<[1,4,4,8],f64>, %d: !torch.vtensor<[1,2,?,8],f32>) -> (!torch.vtensor<[1,4,4,8],f32>, !torch.vtensor<[1,4,4,8],f32>, !torch.vtensor<[1,4,4,8],f32>, !torch.vtensor<[1,4,4,8],f64>, !torch.vtensor<[1,2,?,8],f32>) {
  %none = torch.constant.none
  %p0 = torch.constant.float 0.000000e+00
  %p1 = torch.constant.float 1.000000e-01
  %true = torch.constant.bool true
  %false = torch.constant.bool false
  %a = torch.aten.scaled_dot_product_attention %q, %q, %q, %none, %p1, %false, %none, %false : !torch.vtensor<[1,4,4,8],f32>, !torch.vtensor<[1,4,4,8],f32>, !torch.vtensor<[1,4,4,8],f32>, !torch.none, !torch.float, !torch.bool, !torch.none, !torch.bool -> !torch.vtensor<[1,4,4,8],f32>
  %b = torch.aten.scaled_dot_product_attention %q, %q, %q, %none, %p0, %false, %none, %true : !torch.vtensor<[1,4,4,8],f32>, !torch.vtensor<[1,4,4,8],f32>, !torch.vtensor<[1,4,4,8],f32>, !torch.none, !torch.float, !torch.bool, !torch.none, !torch.bool -> !torch.vtensor<[1,4,4,8],f32>
  %c = torch.aten.scaled_dot_product_attention %q, %q, %q, %m, %p0, %true, %none, %false : !torch.vtensor<[1,4,4,8],f32>, !torch.vtensor<[1,4,4,8],f32>, !torch.vtensor<[1,4,4,8],f32>, !torch.vtensor<[4,4],i1>, !torch.float, !torch.bool, !torch.none, !torch.bool -> !torch.vtensor<[1,4,4,8],f32>
  %e = torch.aten.scaled_dot_product_attention %w, %w, %w, %none, %p0, %false, %none, %false : !torch.vtensor<[1,4,4,8],f64>, !torch.vtensor<[1,4,4,8],f64>, !torch.vtensor<[1,4,4,8],f64>, !torch.none, !torch.float, !torch.bool, !torch.none, !torch.bool -> !torch.vtensor<[1,4,4,8],f64>
  %f = torch.aten.scaled_dot_product_attention %d, %d, %d, %none, %p0, %false, %none, %false : !torch.vtensor<[1,2,?,8],f32>, !torch.vtensor<[1,2,?,8],f32>, !torch.vtensor<[1,2,?,8],f32>, !torch.none, !torch.float, !torch.bool, !torch.none, !torch.bool -> !torch.vtensor<[1,2,?,8],f32>
  return %a, %b, %c, %e, %f : !torch.vtensor<[1,4,4,8],f32>, !torch.vtensor<[1,4,4,8],f32>, !torch.vtensor<[1,4,4,8],f32>, !torch.vtensor<[1,4,4,8],f64>, !torch.vtensor<[1,2,?,8],f32>
}

// -----

// is_causal with fewer queries than keys (L = 2, S = 3): torch's top-left alignment.
// CHECK-LABEL: func.func @causal_short
// CHECK: torch.vtensor.literal(dense<{{\[}}[true, false, false], [true, true, false]]> : tensor<2x3xi1>)
func.func @causal_short(%q: !torch.vtensor<[1,1,2,8],f32>, %k: !torch.vtensor<[1,1,3,8],f32>) -> !torch.vtensor<[1,1,2,8],f32> {
  %none = torch.constant.none
  %p0 = torch.constant.float 0.000000e+00
  %true = torch.constant.bool true
  %false = torch.constant.bool false
  %r = torch.aten.scaled_dot_product_attention %q, %k, %k, %none, %p0, %true, %none, %false : !torch.vtensor<[1,1,2,8],f32>, !torch.vtensor<[1,1,3,8],f32>, !torch.vtensor<[1,1,3,8],f32>, !torch.none, !torch.float, !torch.bool, !torch.none, !torch.bool -> !torch.vtensor<[1,1,2,8],f32>
  return %r : !torch.vtensor<[1,1,2,8],f32>
}

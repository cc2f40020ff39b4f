// RUN: mxc-opt %s --split-input-file -p 'pad-attention-queries{max-queries=63}' | filecheck %s
// RUN: mxc-opt %s --split-input-file -p 'pad-attention-queries' | filecheck %s --check-prefix=UNKNOWN
// RUN: mxc-opt %s --split-input-file -p 'decompose-attention{max-queries=63}' | filecheck %s --check-prefix=DECOMPOSE
// RUN: mxc-opt %s --split-input-file -p 'decompose-attention{max-queries=63 padded-only=true}' | filecheck %s --check-prefix=PADDED

// A prefill's attention: a dynamic query count over a static cache of 64 keys, a boolean mask with a query
// dimension. Queries and mask rows are padded to 64 (the mask's with true: the padded rows see every key),
// the sdpa runs static, its first L rows are kept.
// CHECK-LABEL: func.func @prefill
// CHECK: %[[TWO:.*]] = torch.constant.int 2
// CHECK: %[[L:.*]] = torch.aten.size.int %arg0, %[[TWO]] : !torch.vtensor<[1,4,?,16],f32>, !torch.int -> !torch.int
// CHECK: %[[S:.*]] = torch.constant.int 64
// CHECK: %[[PAD:.*]] = torch.aten.sub.int %[[S]], %[[L]]
// CHECK: %[[AMOUNTS:.*]] = torch.prim.ListConstruct %{{.*}}, %{{.*}}, %{{.*}}, %[[PAD]]
// CHECK: %[[QP:.*]] = torch.aten.constant_pad_nd %arg0, %[[AMOUNTS]], %{{.*}} : {{.*}} -> !torch.vtensor<[1,4,?,16],f32>
// CHECK: %[[Q:.*]] = torch.tensor_static_info_cast %[[QP]] : !torch.vtensor<[1,4,?,16],f32> to !torch.vtensor<[1,4,64,16],f32>
// CHECK: %[[TRUE:.*]] = torch.constant.float 1.000000e+00
// CHECK: %[[MP:.*]] = torch.aten.constant_pad_nd %arg3, %[[AMOUNTS]], %[[TRUE]] : {{.*}} -> !torch.vtensor<[1,1,?,64],i1>
// CHECK: %[[M:.*]] = torch.tensor_static_info_cast %[[MP]] : !torch.vtensor<[1,1,?,64],i1> to !torch.vtensor<[1,1,64,64],i1>
// CHECK: %[[O:.*]] = torch.aten.scaled_dot_product_attention %[[Q]], %arg1, %arg2, %[[M]], {{.*}} -> !torch.vtensor<[1,4,64,16],f32>
// CHECK: %[[Y:.*]] = torch.aten.slice.Tensor %[[O]], %[[TWO]], %{{.*}}, %[[L]], %{{.*}} : {{.*}} -> !torch.vtensor<[1,4,?,16],f32>
// CHECK: return %[[Y]]
// Unknown largest query count: nothing changes.
// UNKNOWN-LABEL: func.func @prefill
// UNKNOWN-NOT: constant_pad_nd
// UNKNOWN: torch.aten.scaled_dot_product_attention %arg0, %arg1, %arg2, %arg3
// decompose-attention{max-queries} pads first, then decomposes the static attention (the CPU target's way).
// DECOMPOSE-LABEL: func.func @prefill
// DECOMPOSE: torch.tensor_static_info_cast
// DECOMPOSE-NOT: scaled_dot_product_attention
// DECOMPOSE: torch.aten.softmax.int {{.*}} -> !torch.vtensor<[1,4,64,64],f32>
// DECOMPOSE: torch.aten.slice.Tensor {{.*}} -> !torch.vtensor<[1,4,?,16],f32>
// DECOMPOSE-LABEL: func.func @left
// padded-only (the CUDA targets): the padded attention decomposed, every other one left to IREE's attention op.
// PADDED-LABEL: func.func @prefill
// PADDED-NOT: scaled_dot_product_attention
// PADDED: torch.aten.softmax.int
// PADDED-LABEL: func.func @left
// PADDED-COUNT-3: torch.aten.scaled_dot_product_attention
func.func @prefill(%q: !torch.vtensor<[1,4,?,16],f32>, %k: !torch.vtensor<[1,4,64,16],f32>, %v: !torch.vtensor<[1,4,64,16],f32>, %mask: !torch.vtensor<[1,1,?,64],i1>) -> !torch.vtensor<[1,4,?,16],f32> {
  %float0 = torch.constant.float 0.000000e+00
  %false = torch.constant.bool false
  %none = torch.constant.none
  %0 = torch.aten.scaled_dot_product_attention %q, %k, %v, %mask, %float0, %false, %none, %false : !torch.vtensor<[1,4,?,16],f32>, !torch.vtensor<[1,4,64,16],f32>, !torch.vtensor<[1,4,64,16],f32>, !torch.vtensor<[1,1,?,64],i1>, !torch.float, !torch.bool, !torch.none, !torch.bool -> !torch.vtensor<[1,4,?,16],f32>
  return %0 : !torch.vtensor<[1,4,?,16],f32>
}

// -----

// Left whole: more queries possible than keys (max-queries 63 > 32 keys), a static query count (decode), and
// dynamic keys.
// CHECK-LABEL: func.func @left
// CHECK-NOT: constant_pad_nd
// CHECK: torch.aten.scaled_dot_product_attention %arg0, %arg1, %arg1
// CHECK: torch.aten.scaled_dot_product_attention %arg2, %arg3, %arg3
// CHECK: torch.aten.scaled_dot_product_attention %arg4, %arg5, %arg5
func.func @left(%q: !torch.vtensor<[1,4,?,16],f32>, %k: !torch.vtensor<[1,4,32,16],f32>, %q1: !torch.vtensor<[1,4,1,16],f32>, %k1: !torch.vtensor<[1,4,64,16],f32>, %qd: !torch.vtensor<[1,4,?,16],f32>, %kd: !torch.vtensor<[1,4,?,16],f32>) -> (!torch.vtensor<[1,4,?,16],f32>, !torch.vtensor<[1,4,1,16],f32>, !torch.vtensor<[1,4,?,16],f32>) {
  %float0 = torch.constant.float 0.000000e+00
  %false = torch.constant.bool false
  %true = torch.constant.bool true
  %none = torch.constant.none
  %0 = torch.aten.scaled_dot_product_attention %q, %k, %k, %none, %float0, %true, %none, %false : !torch.vtensor<[1,4,?,16],f32>, !torch.vtensor<[1,4,32,16],f32>, !torch.vtensor<[1,4,32,16],f32>, !torch.none, !torch.float, !torch.bool, !torch.none, !torch.bool -> !torch.vtensor<[1,4,?,16],f32>
  %1 = torch.aten.scaled_dot_product_attention %q1, %k1, %k1, %none, %float0, %false, %none, %false : !torch.vtensor<[1,4,1,16],f32>, !torch.vtensor<[1,4,64,16],f32>, !torch.vtensor<[1,4,64,16],f32>, !torch.none, !torch.float, !torch.bool, !torch.none, !torch.bool -> !torch.vtensor<[1,4,1,16],f32>
  %2 = torch.aten.scaled_dot_product_attention %qd, %kd, %kd, %none, %float0, %true, %none, %false : !torch.vtensor<[1,4,?,16],f32>, !torch.vtensor<[1,4,?,16],f32>, !torch.vtensor<[1,4,?,16],f32>, !torch.none, !torch.float, !torch.bool, !torch.none, !torch.bool -> !torch.vtensor<[1,4,?,16],f32>
  return %0, %1, %2 : !torch.vtensor<[1,4,?,16],f32>, !torch.vtensor<[1,4,1,16],f32>, !torch.vtensor<[1,4,?,16],f32>
}

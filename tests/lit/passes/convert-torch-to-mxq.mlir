// RUN: mxc-opt %s --split-input-file -p convert-torch-to-mxq | filecheck %s

// CHECK-LABEL: func.func @linear
// CHECK: %[[X:.*]] = "torch_c.to_builtin_tensor"(%arg0) : (!torch.vtensor<[2,3,64],f32>) -> tensor<2x3x64xf32>
// CHECK: %[[W:.*]] = "torch_c.to_builtin_tensor"(%{{.*}}) : (!torch.vtensor<[8,64],f32>) -> tensor<8x64xf32>
// CHECK: %[[B:.*]] = "torch_c.to_builtin_tensor"(%{{.*}}) : (!torch.vtensor<[8],f32>) -> tensor<8xf32>
// CHECK: %[[Y:.*]] = "mxq.matmul"(%[[X]], %[[W]], %[[B]]) {layer = "fc1", operandSegmentSizes = array<i32: 1, 1, 1>}
// CHECK-SAME: -> tensor<2x3x8xf32>
// CHECK: "torch_c.from_builtin_tensor"(%[[Y]])
// CHECK-NOT: torch.aten.linear
func.func @linear(%x: !torch.vtensor<[2,3,64],f32>) -> !torch.vtensor<[2,3,8],f32> {
  %w = torch.vtensor.literal(dense<0.5> : tensor<8x64xf32>) : !torch.vtensor<[8,64],f32>
  %b = torch.vtensor.literal(dense<0.25> : tensor<8xf32>) : !torch.vtensor<[8],f32>
  %y = torch.aten.linear %x, %w, %b : !torch.vtensor<[2,3,64],f32>, !torch.vtensor<[8,64],f32>, !torch.vtensor<[8],f32> -> !torch.vtensor<[2,3,8],f32> loc("fc1")
  return %y : !torch.vtensor<[2,3,8],f32>
}

// -----

// A [K, N] right-hand side is transposed to [N, K] first.
// CHECK-LABEL: func.func @mm
// CHECK: %[[T:.*]] = torch.aten.transpose.int %{{.*}}, %int0, %int1 : !torch.vtensor<[64,8],f32>, !torch.int, !torch.int -> !torch.vtensor<[8,64],f32>
// CHECK: "torch_c.to_builtin_tensor"(%[[T]])
// CHECK: "mxq.matmul"
// CHECK-SAME: layer = "proj"
func.func @mm(%x: !torch.vtensor<[4,64],f32>) -> !torch.vtensor<[4,8],f32> {
  %w = torch.vtensor.literal(dense<0.5> : tensor<64x8xf32>) : !torch.vtensor<[64,8],f32>
  %y = torch.aten.mm %x, %w : !torch.vtensor<[4,64],f32>, !torch.vtensor<[64,8],f32> -> !torch.vtensor<[4,8],f32> loc("proj")
  return %y : !torch.vtensor<[4,8],f32>
}

// -----

// Two matmuls in one module get distinct names; an op with no module path is named by its op.
// CHECK-LABEL: func.func @bmm_names
// CHECK: "mxq.matmul"{{.*}}layer = "attn"
// CHECK-SAME: -> tensor<2x4x4xf32>
// CHECK: "mxq.matmul"{{.*}}layer = "attn#2"
// CHECK: "mxq.matmul"{{.*}}layer = "torch.aten.bmm"
func.func @bmm_names(%q: !torch.vtensor<[2,4,32],f32>, %k: !torch.vtensor<[2,32,4],f32>) -> !torch.vtensor<[2,4,4],f32> {
  %a = torch.aten.bmm %q, %k : !torch.vtensor<[2,4,32],f32>, !torch.vtensor<[2,32,4],f32> -> !torch.vtensor<[2,4,4],f32> loc("attn")
  %b = torch.aten.bmm %q, %k : !torch.vtensor<[2,4,32],f32>, !torch.vtensor<[2,32,4],f32> -> !torch.vtensor<[2,4,4],f32> loc("attn")
  %c = torch.aten.bmm %q, %k : !torch.vtensor<[2,4,32],f32>, !torch.vtensor<[2,32,4],f32> -> !torch.vtensor<[2,4,4],f32>
  return %c : !torch.vtensor<[2,4,4],f32>
}

// -----

// Ops mxc cannot quantize stay in torch with a reason.
// CHECK-LABEL: func.func @unquantizable
// CHECK: torch.aten.mm {{.*}} {mxq.layer = "dyn", mxq.reason = "only static-shaped f32 matmuls are quantized"}
// CHECK: torch.aten.addmm {{.*}} {mxq.layer = "scaled", mxq.reason = "addmm with beta or alpha other than 1"}
func.func @unquantizable(%x: !torch.vtensor<[?,64],f32>, %y: !torch.vtensor<[4,64],f32>) -> !torch.vtensor<[4,8],f32> {
  %w = torch.vtensor.literal(dense<0.5> : tensor<64x8xf32>) : !torch.vtensor<[64,8],f32>
  %b = torch.vtensor.literal(dense<0.5> : tensor<8xf32>) : !torch.vtensor<[8],f32>
  %int2 = torch.constant.int 2
  %int1 = torch.constant.int 1
  %0 = torch.aten.mm %x, %w : !torch.vtensor<[?,64],f32>, !torch.vtensor<[64,8],f32> -> !torch.vtensor<[?,8],f32> loc("dyn")
  %1 = torch.aten.addmm %b, %y, %w, %int2, %int1 : !torch.vtensor<[8],f32>, !torch.vtensor<[4,64],f32>, !torch.vtensor<[64,8],f32>, !torch.int, !torch.int -> !torch.vtensor<[4,8],f32> loc("scaled")
  return %1 : !torch.vtensor<[4,8],f32>
}

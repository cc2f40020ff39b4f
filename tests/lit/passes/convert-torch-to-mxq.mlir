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

// A bf16 matmul: every operand extended to f32 at the mxq boundary, the result truncated back to bf16.
// CHECK-LABEL: func.func @linear_bf16
// CHECK: %[[X:.*]] = "torch_c.to_builtin_tensor"(%arg0) : (!torch.vtensor<[4,64],bf16>) -> tensor<4x64xbf16>
// CHECK: %[[XE:.*]] = arith.extf %[[X]] : tensor<4x64xbf16> to tensor<4x64xf32>
// CHECK: %[[WE:.*]] = arith.extf %{{.*}} : tensor<8x64xbf16> to tensor<8x64xf32>
// CHECK: %[[BE:.*]] = arith.extf %{{.*}} : tensor<8xbf16> to tensor<8xf32>
// CHECK: %[[Y:.*]] = "mxq.matmul"(%[[XE]], %[[WE]], %[[BE]]) {layer = "fc1"
// CHECK-SAME: -> tensor<4x8xf32>
// CHECK: %[[YT:.*]] = arith.truncf %[[Y]] : tensor<4x8xf32> to tensor<4x8xbf16>
// CHECK: "torch_c.from_builtin_tensor"(%[[YT]]) : (tensor<4x8xbf16>) -> !torch.vtensor<[4,8],bf16>
// CHECK-NOT: torch.aten.linear
func.func @linear_bf16(%x: !torch.vtensor<[4,64],bf16>) -> !torch.vtensor<[4,8],bf16> {
  %w = torch.vtensor.literal(dense<0.5> : tensor<8x64xbf16>) : !torch.vtensor<[8,64],bf16>
  %b = torch.vtensor.literal(dense<0.25> : tensor<8xbf16>) : !torch.vtensor<[8],bf16>
  %y = torch.aten.linear %x, %w, %b : !torch.vtensor<[4,64],bf16>, !torch.vtensor<[8,64],bf16>, !torch.vtensor<[8],bf16> -> !torch.vtensor<[4,8],bf16> loc("fc1")
  return %y : !torch.vtensor<[4,8],bf16>
}

// -----

// An f16 [K, N] right-hand side is transposed in f16, then extended.
// CHECK-LABEL: func.func @mm_f16
// CHECK: %[[T:.*]] = torch.aten.transpose.int %{{.*}}, %int0, %int1 : !torch.vtensor<[64,8],f16>, !torch.int, !torch.int -> !torch.vtensor<[8,64],f16>
// CHECK: %[[TB:.*]] = "torch_c.to_builtin_tensor"(%[[T]])
// CHECK: arith.extf %[[TB]] : tensor<8x64xf16> to tensor<8x64xf32>
// CHECK: "mxq.matmul"
// CHECK-SAME: layer = "proj"
// CHECK: arith.truncf %{{.*}} : tensor<4x8xf32> to tensor<4x8xf16>
func.func @mm_f16(%x: !torch.vtensor<[4,64],f16>) -> !torch.vtensor<[4,8],f16> {
  %w = torch.vtensor.literal(dense<0.5> : tensor<64x8xf16>) : !torch.vtensor<[64,8],f16>
  %y = torch.aten.mm %x, %w : !torch.vtensor<[4,64],f16>, !torch.vtensor<[64,8],f16> -> !torch.vtensor<[4,8],f16> loc("proj")
  return %y : !torch.vtensor<[4,8],f16>
}

// -----

// Ops mxc cannot quantize stay in torch with a reason.
// CHECK-LABEL: func.func @unquantizable
// CHECK: torch.aten.mm {{.*}} {mxq.layer = "dyn_k", mxq.reason = "a matmul with a dynamic contraction size or a dynamic right operand stays in high precision
// CHECK: torch.aten.bmm {{.*}} {mxq.layer = "dyn_rhs", mxq.reason = "a matmul with a dynamic contraction size or a dynamic right operand
// CHECK: torch.aten.addmm {{.*}} {mxq.layer = "scaled", mxq.reason = "addmm with beta or alpha other than 1"}
func.func @unquantizable(%x: !torch.vtensor<[4,?],f32>, %wk: !torch.vtensor<[?,8],f32>, %q: !torch.vtensor<[2,?,64],f32>, %k: !torch.vtensor<[2,64,?],f32>, %y: !torch.vtensor<[4,64],f32>) -> !torch.vtensor<[4,8],f32> {
  %w = torch.vtensor.literal(dense<0.5> : tensor<64x8xf32>) : !torch.vtensor<[64,8],f32>
  %b = torch.vtensor.literal(dense<0.5> : tensor<8xf32>) : !torch.vtensor<[8],f32>
  %int2 = torch.constant.int 2
  %int1 = torch.constant.int 1
  %0 = torch.aten.mm %x, %wk : !torch.vtensor<[4,?],f32>, !torch.vtensor<[?,8],f32> -> !torch.vtensor<[4,8],f32> loc("dyn_k")
  %s = torch.aten.bmm %q, %k : !torch.vtensor<[2,?,64],f32>, !torch.vtensor<[2,64,?],f32> -> !torch.vtensor<[2,?,?],f32> loc("dyn_rhs")
  %1 = torch.aten.addmm %b, %y, %w, %int2, %int1 : !torch.vtensor<[8],f32>, !torch.vtensor<[4,64],f32>, !torch.vtensor<[64,8],f32>, !torch.int, !torch.int -> !torch.vtensor<[4,8],f32> loc("scaled")
  return %1 : !torch.vtensor<[4,8],f32>
}

// -----

// Dynamic leading (token) dimensions (model.py's get_dynamic_shapes()) pass through to mxq.matmul.
// CHECK-LABEL: func.func @dynamic_tokens
// CHECK: %[[X:.*]] = "torch_c.to_builtin_tensor"(%arg0) : (!torch.vtensor<[?,64],f32>) -> tensor<?x64xf32>
// CHECK: "mxq.matmul"(%[[X]], %{{.*}}) {layer = "fc"
// CHECK-SAME: (tensor<?x64xf32>, tensor<8x64xf32>) -> tensor<?x8xf32>
// CHECK: "torch_c.from_builtin_tensor"(%{{.*}}) : (tensor<?x8xf32>) -> !torch.vtensor<[?,8],f32>
// CHECK: "mxq.matmul"({{.*}}) {layer = "proj"
// CHECK-SAME: (tensor<?x?x64xf32>, tensor<8x64xf32>, tensor<8xf32>) -> tensor<?x?x8xf32>
func.func @dynamic_tokens(%x: !torch.vtensor<[?,64],f32>, %h: !torch.vtensor<[?,?,64],f32>) -> (!torch.vtensor<[?,8],f32>, !torch.vtensor<[?,?,8],f32>) {
  %w = torch.vtensor.literal(dense<0.5> : tensor<64x8xf32>) : !torch.vtensor<[64,8],f32>
  %w2 = torch.vtensor.literal(dense<0.5> : tensor<8x64xf32>) : !torch.vtensor<[8,64],f32>
  %b = torch.vtensor.literal(dense<0.5> : tensor<8xf32>) : !torch.vtensor<[8],f32>
  %0 = torch.aten.mm %x, %w : !torch.vtensor<[?,64],f32>, !torch.vtensor<[64,8],f32> -> !torch.vtensor<[?,8],f32> loc("fc")
  %1 = torch.aten.linear %h, %w2, %b : !torch.vtensor<[?,?,64],f32>, !torch.vtensor<[8,64],f32>, !torch.vtensor<[8],f32> -> !torch.vtensor<[?,?,8],f32> loc("proj")
  return %0, %1 : !torch.vtensor<[?,8],f32>, !torch.vtensor<[?,?,8],f32>
}

// -----

// conv2d (groups = 1) is a GEMM over K = C_in * kh * kw: im2col of the padded input
// (the input map reads (n, c, ho*2 + i, wo*2 + j)), the weight flattened to [C_out, K], the result back to NCHW.
// CHECK-LABEL: func.func @conv2d
// CHECK: tensor.insert_slice {{.*}} into tensor<1x3x10x10xf32>
// CHECK: linalg.generic {{.*}} ins(%{{.*}} : tensor<1x3x10x10xf32>) outs(%{{.*}} : tensor<1x4x4x3x3x3xf32>)
// CHECK: tensor.collapse_shape {{.*}} into tensor<16x27xf32>
// CHECK: tensor.collapse_shape {{.*}} {{\[}}[0], [1, 2, 3]] : tensor<8x3x3x3xf32> into tensor<8x27xf32>
// CHECK: "mxq.matmul"({{.*}}) {layer = "conv", mxq.op = "conv2d"
// CHECK-SAME: (tensor<16x27xf32>, tensor<8x27xf32>, tensor<8xf32>) -> tensor<16x8xf32>
// CHECK: tensor.expand_shape {{.*}} into tensor<1x4x4x8xf32>
// CHECK: linalg.generic {{.*}} ins(%{{.*}} : tensor<1x4x4x8xf32>) outs(%{{.*}} : tensor<1x8x4x4xf32>)
// CHECK-NOT: torch.aten.conv2d
func.func @conv2d(%x: !torch.vtensor<[1,3,8,8],f32>) -> !torch.vtensor<[1,8,4,4],f32> {
  %w = torch.vtensor.literal(dense<0.5> : tensor<8x3x3x3xf32>) : !torch.vtensor<[8,3,3,3],f32>
  %b = torch.vtensor.literal(dense<0.1> : tensor<8xf32>) : !torch.vtensor<[8],f32>
  %int1 = torch.constant.int 1
  %int2 = torch.constant.int 2
  %stride = torch.prim.ListConstruct %int2, %int2 : (!torch.int, !torch.int) -> !torch.list<int>
  %pad = torch.prim.ListConstruct %int1, %int1 : (!torch.int, !torch.int) -> !torch.list<int>
  %dil = torch.prim.ListConstruct %int1, %int1 : (!torch.int, !torch.int) -> !torch.list<int>
  %y = torch.aten.conv2d %x, %w, %b, %stride, %pad, %dil, %int1 : !torch.vtensor<[1,3,8,8],f32>, !torch.vtensor<[8,3,3,3],f32>, !torch.vtensor<[8],f32>, !torch.list<int>, !torch.list<int>, !torch.list<int>, !torch.int -> !torch.vtensor<[1,8,4,4],f32> loc("conv")
  return %y : !torch.vtensor<[1,8,4,4],f32>
}

// -----

// A grouped (depthwise) conv stays in torch with its reason.
// CHECK-LABEL: func.func @grouped_conv2d
// CHECK: torch.aten.conv2d {{.*}} {mxq.layer = "dw", mxq.reason = "grouped/depthwise conv2d (groups != 1) is not quantized: stays in high precision"}
func.func @grouped_conv2d(%x: !torch.vtensor<[1,4,8,8],f32>) -> !torch.vtensor<[1,4,8,8],f32> {
  %w = torch.vtensor.literal(dense<0.5> : tensor<4x1x3x3xf32>) : !torch.vtensor<[4,1,3,3],f32>
  %none = torch.constant.none
  %int1 = torch.constant.int 1
  %int4 = torch.constant.int 4
  %stride = torch.prim.ListConstruct %int1, %int1 : (!torch.int, !torch.int) -> !torch.list<int>
  %pad = torch.prim.ListConstruct %int1, %int1 : (!torch.int, !torch.int) -> !torch.list<int>
  %y = torch.aten.conv2d %x, %w, %none, %stride, %pad, %stride, %int4 : !torch.vtensor<[1,4,8,8],f32>, !torch.vtensor<[4,1,3,3],f32>, !torch.none, !torch.list<int>, !torch.list<int>, !torch.list<int>, !torch.int -> !torch.vtensor<[1,4,8,8],f32> loc("dw")
  return %y : !torch.vtensor<[1,4,8,8],f32>
}

// -----

// Attention stays in torch, named after its module with ".sdpa": the module (an nn.MultiheadAttention)
// also names its projection's matmul. Two in one module get "#2".
// CHECK-LABEL: func.func @attention_name
// CHECK: "mxq.matmul"{{.*}}layer = "blocks.0.attn"
// CHECK: torch.aten.scaled_dot_product_attention {{.*}}{mxq.layer = "blocks.0.attn.sdpa", mxq.reason = "attention is not quantized yet: stays in high precision"}
// CHECK: torch.aten.scaled_dot_product_attention {{.*}}{mxq.layer = "blocks.0.attn.sdpa#2"
func.func @attention_name(%x: !torch.vtensor<[2,4,8,16],f32>) -> !torch.vtensor<[2,4,8,16],f32> {
  %w = torch.vtensor.literal(dense<0.5> : tensor<16x16xf32>) : !torch.vtensor<[16,16],f32>
  %none = torch.constant.none
  %p = torch.aten.linear %x, %w, %none : !torch.vtensor<[2,4,8,16],f32>, !torch.vtensor<[16,16],f32>, !torch.none -> !torch.vtensor<[2,4,8,16],f32> loc("blocks.0.attn")
  %f0 = torch.constant.float 0.000000e+00
  %false = torch.constant.bool false
  %a = torch.aten.scaled_dot_product_attention %p, %p, %p, %none, %f0, %false, %none, %false : !torch.vtensor<[2,4,8,16],f32>, !torch.vtensor<[2,4,8,16],f32>, !torch.vtensor<[2,4,8,16],f32>, !torch.none, !torch.float, !torch.bool, !torch.none, !torch.bool -> !torch.vtensor<[2,4,8,16],f32> loc("blocks.0.attn")
  %b = torch.aten.scaled_dot_product_attention %a, %a, %a, %none, %f0, %false, %none, %false : !torch.vtensor<[2,4,8,16],f32>, !torch.vtensor<[2,4,8,16],f32>, !torch.vtensor<[2,4,8,16],f32>, !torch.none, !torch.float, !torch.bool, !torch.none, !torch.bool -> !torch.vtensor<[2,4,8,16],f32> loc("blocks.0.attn")
  return %b : !torch.vtensor<[2,4,8,16],f32>
}

// -----

// An embedding lookup stays in torch, marked as a table for the manifest.
// CHECK-LABEL: func.func @embedding_table
// CHECK: torch.aten.embedding {{.*}}{mxq.layer = "wte", mxq.op = "embedding", mxq.reason = "embedding table: a lookup, not a matmul; stays in high precision"}
func.func @embedding_table(%ids: !torch.vtensor<[2,8],si64>) -> !torch.vtensor<[2,8,16],f32> {
  %t = torch.vtensor.literal(dense<0.5> : tensor<64x16xf32>) : !torch.vtensor<[64,16],f32>
  %int-1 = torch.constant.int -1
  %false = torch.constant.bool false
  %e = torch.aten.embedding %t, %ids, %int-1, %false, %false : !torch.vtensor<[64,16],f32>, !torch.vtensor<[2,8],si64>, !torch.int, !torch.bool, !torch.bool -> !torch.vtensor<[2,8,16],f32> loc("wte")
  return %e : !torch.vtensor<[2,8,16],f32>
}

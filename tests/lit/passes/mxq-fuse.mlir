// RUN: mxc-opt %s --split-input-file -p mxq-fuse | filecheck %s

// QDQ activations + offline weights + bias + relu -> one fused op.
// CHECK-LABEL: func.func @fuse_relu
// CHECK: %[[E:.*]] = "mxq.param"() {name = "fc.e"}
// CHECK: %[[S:.*]] = "mxq.param"() {name = "fc.s"}
// CHECK: %[[F:.*]] = "mxq.fused_matmul"(%{{.*}}, %[[E]], %[[S]], %{{.*}}) {act_format = "mxfp8", block_size = 32 : i64, epilogue = "relu", layer = "fc"
// CHECK: %[[R:.*]] = "torch_c.from_builtin_tensor"(%[[F]])
// CHECK-NOT: torch.aten.relu
// CHECK-NOT: mxq.matmul
// CHECK: return %[[R]]
func.func @fuse_relu(%arg: !torch.vtensor<[4,64],f32>, %b: tensor<8xf32>) -> !torch.vtensor<[4,8],f32> {
  %x = "torch_c.to_builtin_tensor"(%arg) : (!torch.vtensor<[4,64],f32>) -> tensor<4x64xf32>
  %we = "mxq.param"() {name = "fc.e"} : () -> tensor<8x64xf8E4M3FN>
  %ws = "mxq.param"() {name = "fc.s"} : () -> tensor<8x2xf8E8M0FNU>
  %wd = "mxq.dequantize"(%we, %ws) {format = "mxfp8", block_size = 32 : i64, k = 64 : i64, operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<8x64xf8E4M3FN>, tensor<8x2xf8E8M0FNU>) -> tensor<8x64xf32>
  %xe, %xs = "mxq.quantize"(%x) {format = "mxfp8", block_size = 32 : i64, axis = 1 : i64, resultSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x64xf32>) -> (tensor<4x64xf8E4M3FN>, tensor<4x2xf8E8M0FNU>)
  %xd = "mxq.dequantize"(%xe, %xs) {format = "mxfp8", block_size = 32 : i64, k = 64 : i64, operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x64xf8E4M3FN>, tensor<4x2xf8E8M0FNU>) -> tensor<4x64xf32>
  %y = "mxq.matmul"(%xd, %wd, %b) {layer = "fc", mxq.decision = "mxfp8 (default)", operandSegmentSizes = array<i32: 1, 1, 1>} : (tensor<4x64xf32>, tensor<8x64xf32>, tensor<8xf32>) -> tensor<4x8xf32>
  %t = "torch_c.from_builtin_tensor"(%y) : (tensor<4x8xf32>) -> !torch.vtensor<[4,8],f32>
  %r = torch.aten.relu %t : !torch.vtensor<[4,8],f32> -> !torch.vtensor<[4,8],f32>
  return %r : !torch.vtensor<[4,8],f32>
}

// -----

// Weight-only: the activation is not quantized, act_format = "none"; no epilogue to fold.
// CHECK-LABEL: func.func @weight_only
// CHECK: "mxq.fused_matmul"(%arg0, %{{.*}}, %{{.*}}, %{{.*}}) {act_format = "none", block_size = 16 : i64, epilogue = "none"
// CHECK-SAME: w_format = "nvfp4"
func.func @weight_only(%x: tensor<4x32xf32>) -> tensor<4x8xf32> {
  %we = "mxq.param"() {name = "fc.e"} : () -> tensor<8x32xf4E2M1FN>
  %ws = "mxq.param"() {name = "fc.s"} : () -> tensor<8x2xf8E4M3FN>
  %wt = "mxq.param"() {name = "fc.t"} : () -> tensor<f32>
  %wd = "mxq.dequantize"(%we, %ws, %wt) {format = "nvfp4", block_size = 16 : i64, k = 32 : i64, operandSegmentSizes = array<i32: 1, 1, 1>} : (tensor<8x32xf4E2M1FN>, tensor<8x2xf8E4M3FN>, tensor<f32>) -> tensor<8x32xf32>
  %y = "mxq.matmul"(%x, %wd) {layer = "fc", mxq.decision = "nvfp4 weights-only (default)", operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x32xf32>, tensor<8x32xf32>) -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

// Two run-time operands in MX formats become a scaled_matmul.
// CHECK-LABEL: func.func @scaled
// CHECK: "mxq.scaled_matmul"(%{{.*}}#0, %{{.*}}#1, %{{.*}}#0, %{{.*}}#1) {a_format = "mxfp8", b_format = "mxfp8"
// CHECK-NOT: mxq.matmul
func.func @scaled(%a: tensor<4x64xf32>, %b: tensor<8x64xf32>) -> tensor<4x8xf32> {
  %ae, %as = "mxq.quantize"(%a) {format = "mxfp8", block_size = 32 : i64, axis = 1 : i64, resultSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x64xf32>) -> (tensor<4x64xf8E4M3FN>, tensor<4x2xf8E8M0FNU>)
  %ad = "mxq.dequantize"(%ae, %as) {format = "mxfp8", block_size = 32 : i64, k = 64 : i64, operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x64xf8E4M3FN>, tensor<4x2xf8E8M0FNU>) -> tensor<4x64xf32>
  %be, %bs = "mxq.quantize"(%b) {format = "mxfp8", block_size = 32 : i64, axis = 1 : i64, resultSegmentSizes = array<i32: 1, 1, 0>} : (tensor<8x64xf32>) -> (tensor<8x64xf8E4M3FN>, tensor<8x2xf8E8M0FNU>)
  %bd = "mxq.dequantize"(%be, %bs) {format = "mxfp8", block_size = 32 : i64, k = 64 : i64, operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<8x64xf8E4M3FN>, tensor<8x2xf8E8M0FNU>) -> tensor<8x64xf32>
  %y = "mxq.matmul"(%ad, %bd) {layer = "mm", mxq.decision = "mxfp8 (default)", operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x64xf32>, tensor<8x64xf32>) -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// A policy as `mxc compile --auto` writes it (OUT/policy.toml): one rule per layer, names matched
// literally (`[` escaped as `[[]`), every rule explicit about weights_only, the top level resetting
// the options, so the command line's format and options (here nvfp4 weights-only, scale_rule=even)
// change nothing.
// RUN: mxc-opt %s -p 'mxq-select-formats{policy=%S/Inputs/auto-policy.toml format=nvfp4 weights-only=true scale_rule=even}' | filecheck %s

// CHECK-LABEL: func.func @decided
// CHECK: "mxq.quantize"(%cst) {{.*}}format = "mxfp4{scale_rule=rceil,hadamard=32}"
// CHECK: "mxq.quantize"(%arg0) {{.*}}format = "mxfp8{scale_rule=rceil,hadamard=32}"
// CHECK: mxq.decision = "mxfp4{scale_rule=rceil,hadamard=32} x mxfp8{scale_rule=rceil,hadamard=32} activations (blocks.0.down)"
// CHECK-NOT: "mxq.quantize"(%arg0)
// CHECK: mxq.decision = "if4{error_metric=max} weights-only (blocks.0.down#2)"
// CHECK: mxq.decision = "mxfp8 weights-only (blocks.[[]1].down)"
// CHECK: "mxq.matmul"(%arg0, %cst) {layer = "head", mxq.decision = "none: kept in high precision (head)"
func.func @decided(%x: tensor<4x64xf32>) -> (tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>) {
  %w = arith.constant dense<0.5> : tensor<8x64xf32>
  %a = "mxq.matmul"(%x, %w) {layer = "blocks.0.down", operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x64xf32>, tensor<8x64xf32>) -> tensor<4x8xf32>
  %b = "mxq.matmul"(%x, %w) {layer = "blocks.0.down#2", operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x64xf32>, tensor<8x64xf32>) -> tensor<4x8xf32>
  %c = "mxq.matmul"(%x, %w) {layer = "blocks.[1].down", operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x64xf32>, tensor<8x64xf32>) -> tensor<4x8xf32>
  %d = "mxq.matmul"(%x, %w) {layer = "head", operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x64xf32>, tensor<8x64xf32>) -> tensor<4x8xf32>
  return %a, %b, %c, %d : tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>
}

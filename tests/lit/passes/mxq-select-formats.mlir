// RUN: mxc-opt %s -p 'mxq-select-formats{format=mxfp8}' | filecheck %s --check-prefix=MXFP8
// RUN: mxc-opt %s -p 'mxq-select-formats{format=nvfp4 weights-only=true}' | filecheck %s --check-prefix=WONLY
// RUN: mxc-opt %s -p 'mxq-select-formats{policy=%S/Inputs/policy.toml}' | filecheck %s --check-prefix=POLICY
// RUN: mxc-opt %s -p 'mxq-select-formats{format=mxfp4 act_format=mxfp8 scale_rule=even rounding=stochastic seed=5}' | filecheck %s --check-prefix=MIXED
// RUN: mxc-opt %s -p 'mxq-select-formats{policy=%S/Inputs/policy-options.toml}' | filecheck %s --check-prefix=OPTS
// RUN: mxc-opt %s -p 'mxq-select-formats{format=mxfp4{scale_rule=rceil,hadamard=32} act-format=mxfp8}' | filecheck %s --check-prefix=SPEC
// RUN: not mxc-opt %s -p 'mxq-select-formats{format=nvfp4 scale_rule=up}' 2>&1 | filecheck %s --check-prefix=BADOPT
// RUN: not mxc-opt %s -p 'mxq-select-formats{format=nvfp4{scale_rule=even}}' 2>&1 | filecheck %s --check-prefix=BADSPEC

// MXFP8-LABEL: func.func @two_layers
// MXFP8: %[[WQ:.*]]:2 = "mxq.quantize"(%cst) {axis = 1 : i64, block_size = 32 : i64, format = "mxfp8"
// MXFP8: %[[WD:.*]] = "mxq.dequantize"(%[[WQ]]#0, %[[WQ]]#1)
// MXFP8: %[[XQ:.*]]:2 = "mxq.quantize"(%arg0) {{.*}}format = "mxfp8"
// MXFP8: %[[XD:.*]] = "mxq.dequantize"(%[[XQ]]#0, %[[XQ]]#1)
// MXFP8: "mxq.matmul"(%[[XD]], %[[WD]]) {layer = "blocks.0.down", mxq.decision = "mxfp8 (default)"

// WONLY-LABEL: func.func @two_layers
// WONLY: %[[WQ:.*]]:3 = "mxq.quantize"(%cst) {{.*}}format = "nvfp4"
// WONLY: %[[WD:.*]] = "mxq.dequantize"(%[[WQ]]#0, %[[WQ]]#1, %[[WQ]]#2)
// WONLY-NOT: "mxq.quantize"(%arg0)
// WONLY: "mxq.matmul"(%arg0, %[[WD]]) {layer = "blocks.0.down", mxq.decision = "nvfp4 weights-only (default)"

// POLICY-LABEL: func.func @two_layers
// POLICY: "mxq.matmul"(%arg0, %{{.*}}) {layer = "blocks.0.down", mxq.decision = "nvfp4 weights-only (*.down)"
// POLICY: "mxq.matmul"(%arg0, %cst) {layer = "head", mxq.decision = "none: kept in high precision (head)"
// MIXED-LABEL: func.func @two_layers
// MIXED: "mxq.quantize"(%cst) {{.*}}format = "mxfp4{scale_rule=even,rounding=stochastic,seed=5}"
// MIXED: "mxq.quantize"(%arg0) {{.*}}format = "mxfp8{scale_rule=even,rounding=stochastic,seed=5}"
// MIXED: mxq.decision = "mxfp4{scale_rule=even,rounding=stochastic,seed=5} x mxfp8{scale_rule=even,rounding=stochastic,seed=5} activations (default)"

// The policy's scale_rule applies to the MX layer only (an NV rule does not inherit it);
// its hadamard applies to both, and a layer whose K is no multiple of it goes without.
// OPTS-LABEL: func.func @two_layers
// OPTS: mxq.decision = "mxfp4{scale_rule=rceil,hadamard=32} (default)"
// OPTS: mxq.decision = "nvfp4_4over6{error_metric=mae,hadamard=32} weights-only (head)"
// OPTS-LABEL: func.func @odd_k
// OPTS: mxq.decision = "mxfp4{scale_rule=rceil} (default; hadamard=32 skipped: K=48 is not a multiple)"
// A format option is a spec, braces and all; its options win over the loose ones, and the activations take them.
// SPEC-LABEL: func.func @two_layers
// SPEC: "mxq.quantize"(%cst) {{.*}}format = "mxfp4{scale_rule=rceil,hadamard=32}"
// SPEC: "mxq.quantize"(%arg0) {{.*}}format = "mxfp8{scale_rule=rceil,hadamard=32}"
// SPEC-LABEL: func.func @odd_k
// SPEC: mxq.decision = "mxfp4{scale_rule=rceil} x mxfp8{scale_rule=rceil} activations (default; hadamard=32 skipped: K=48 is not a multiple)"

// Option values are checked when the pipeline is parsed: a Literal lists its values, a spec is validated.
// BADOPT: mxc-opt: error: mxq-select-formats: option 'scale_rule' must be one of floor, rceil, ceil, even, got 'up'
// BADSPEC: mxc-opt: error: mxq-select-formats: option 'format': scale_rule applies to MX formats
func.func @two_layers(%x: tensor<4x64xf32>) -> (tensor<4x8xf32>, tensor<4x8xf32>) {
  %w = arith.constant dense<0.5> : tensor<8x64xf32>
  %a = "mxq.matmul"(%x, %w) {layer = "blocks.0.down", operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x64xf32>, tensor<8x64xf32>) -> tensor<4x8xf32>
  %b = "mxq.matmul"(%x, %w) {layer = "head", operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x64xf32>, tensor<8x64xf32>) -> tensor<4x8xf32>
  return %a, %b : tensor<4x8xf32>, tensor<4x8xf32>
}

func.func @odd_k(%x: tensor<4x48xf32>) -> tensor<4x8xf32> {
  %w = arith.constant dense<0.5> : tensor<8x48xf32>
  %a = "mxq.matmul"(%x, %w) {layer = "blocks.1.down", operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x48xf32>, tensor<8x48xf32>) -> tensor<4x8xf32>
  return %a : tensor<4x8xf32>
}

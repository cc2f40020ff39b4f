// RUN: mxc-opt %s -p 'mxq-select-formats{format=nvfp4 weights-only=true calibrate=gptq}' | filecheck %s --check-prefix=SELECT
// RUN: mxc-opt %s -p 'mxq-select-formats{format=nvfp4 weights-only=true calibrate=gptq},mxq-calibrate-weights{hessian=identity}' | filecheck %s --check-prefix=CAL
// RUN: mxc-opt %s -p 'mxq-select-formats{format=nvfp4 weights-only=true calibrate=gptq},mxq-calibrate-weights{hessian=identity},mxq-quantize-weights' | filecheck %s --check-prefix=QW
// RUN: mxc-opt %s -p 'mxq-select-formats{format=mxfp4 weights-only=true calibrate=mr-gptq},mxq-calibrate-weights{hessian=identity}' | filecheck %s --check-prefix=MR
// RUN: mxc-opt %s -p 'mxq-select-formats{format=nvfp4 weights-only=true},mxq-calibrate-weights{hessian=identity}' | filecheck %s --check-prefix=RTN
// RUN: not mxc-opt %s -p 'mxq-select-formats{format=nvfp4 calibrate=gtpq}' 2>&1 | filecheck %s --check-prefix=BAD

// mxq-select-formats marks the layers to calibrate; the decision says how.
// SELECT-LABEL: func.func @layer
// SELECT: "mxq.matmul"(%arg0, %{{.*}}) {layer = "blocks.0.up", mxq.calibrate = "gptq", mxq.decision = "nvfp4 weights-only, calibrated gptq (default)"

// mxq-calibrate-weights replaces the weight the quantize reads (here, without data, an inline constant for
// white inputs) and records the NV tensor scale the codes were chosen with and the layer's record.
// CAL-LABEL: func.func @layer
// CAL: %[[W:.*]] = arith.constant dense<{{.*}}> : tensor<8x64xf32>
// CAL: "mxq.quantize"(%[[W]]) {{.*}}format = "nvfp4", mxq.calibration = "{\22method\22: \22gptq\22, {{.*}}mxq.s_enc = {{.*}} : f32

// mxq-quantize-weights quantizes the calibrated weight; its record travels to the elements param (the manifest's).
// QW-LABEL: func.func @layer
// QW: "mxq.param"() {mxq.calibration = "{\22method\22: \22gptq\22{{.*}}, mxq.layer = "blocks.0.up"{{.*}}name = "blocks.0.up.nvfp4.elements"}

// mr-gptq gives the layer the largest Hadamard rotation that divides K (64: 32), weights and activations alike.
// MR-LABEL: func.func @layer
// MR: format = "mxfp4{hadamard=32}", mxq.calibration = "{\22method\22: \22mr-gptq\22
// MR: mxq.calibrate = "mr-gptq", mxq.decision = "mxfp4{hadamard=32} weights-only, calibrated mr-gptq (default)"

// Without --calibrate the pass changes nothing.
// RTN-LABEL: func.func @layer
// RTN: "mxq.quantize"(%cst)
// RTN-NOT: mxq.calibration

// BAD: unknown calibration method 'gtpq' (methods: rtn, gptq, mr-gptq)

func.func @layer(%x: tensor<4x64xf32>) -> tensor<4x8xf32> {
  %w = arith.constant dense<0.5> : tensor<8x64xf32>
  %a = "mxq.matmul"(%x, %w) {layer = "blocks.0.up", operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x64xf32>, tensor<8x64xf32>) -> tensor<4x8xf32>
  return %a : tensor<4x8xf32>
}

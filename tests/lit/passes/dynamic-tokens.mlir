// Dynamic token dimensions (model.py's get_dynamic_shapes()) through every pass: the leading sizes of
// activations stay `?`, weights, scales and every last dimension stay static.
// RUN: mxc-opt %s -p 'convert-torch-to-mxq,mxq-select-formats{format=nvfp4}' | filecheck %s --check-prefix=SELECT
// RUN: mxc-opt %s -p 'convert-torch-to-mxq,mxq-select-formats{format=nvfp4 weights-only=true calibrate=gptq},mxq-calibrate-weights{hessian=identity}' | filecheck %s --check-prefix=CAL
// RUN: mxc-opt %s -p 'convert-torch-to-mxq,mxq-select-formats{format=nvfp4},mxq-quantize-weights' | filecheck %s --check-prefix=QW
// RUN: mxc-opt %s -p 'convert-torch-to-mxq,mxq-select-formats{format=nvfp4},mxq-quantize-weights,mxq-fuse' | filecheck %s --check-prefix=FUSE
// RUN: mxc-opt %s -p 'convert-torch-to-mxq,mxq-select-formats{format=nvfp4},mxq-quantize-weights,mxq-fuse,lower-mxq-to-linalg' | filecheck %s --check-prefix=LINALG
// RUN: mxc-opt %s -p 'convert-torch-to-mxq,mxq-select-formats{format=nvfp4},mxq-quantize-weights,mxq-fuse,lower-mxq-to-linalg{contraction=fma}' | filecheck %s --check-prefix=FMA
// RUN: mxc-opt %s -p 'convert-torch-to-mxq,mxq-select-formats{format=mxfp8},mxq-quantize-weights,mxq-fuse,lower-mxq-to-linalg{contraction=amx}' | filecheck %s --check-prefix=AMX
// RUN: not mxc-opt %s -p 'convert-torch-to-mxq,mxq-select-formats{format=nvfp4 weights-only=true},mxq-quantize-weights,mxq-fuse,mxq-legalize-cuda' 2>&1 | filecheck %s --check-prefix=CUDA
// RUN: not mxc-opt %s -p 'convert-torch-to-mxq,mxq-select-formats{format=nvfp4 weights-only=true},mxq-quantize-weights,mxq-fuse,lower-mxq-to-cuda' 2>&1 | filecheck %s --check-prefix=CUDA

// mxq-select-formats quantizes activations of any token count along K (static).
// SELECT-LABEL: func.func @tokens
// SELECT: "mxq.quantize"(%{{.*}}) {axis = 1 : i64, block_size = 16 : i64, format = "nvfp4"{{.*}} : (tensor<?x64xf32>) -> (tensor<?x64xf4E2M1FN>, tensor<?x4xf8E4M3FN>, tensor<f32>)
// SELECT: "mxq.matmul"({{.*}}) {layer = "fc", mxq.decision = "nvfp4 (default)"
// SELECT-SAME: (tensor<?x64xf32>, tensor<8x64xf32>, tensor<8xf32>) -> tensor<?x8xf32>
// SELECT: "mxq.quantize"(%{{.*}}) {axis = 2 : i64{{.*}} : (tensor<?x?x64xf32>) -> (tensor<?x?x64xf4E2M1FN>, tensor<?x?x4xf8E4M3FN>, tensor<f32>)

// mxq-calibrate-weights calibrates the static weights of layers whose inputs are dynamic.
// CAL-LABEL: func.func @tokens
// CAL: "mxq.quantize"(%{{.*}}) {{.*}}format = "nvfp4", mxq.calibration = "{\22method\22: \22gptq\22
// CAL: "mxq.matmul"({{.*}}) {layer = "fc", mxq.calibrate = "gptq"
// CAL-SAME: (tensor<?x64xf32>, tensor<8x64xf32>, tensor<8xf32>) -> tensor<?x8xf32>

// mxq-quantize-weights: the weights become parameters; the dynamic activations' quantizes stay.
// QW-LABEL: func.func @tokens
// QW: "mxq.param"() {{.*}}name = "fc.nvfp4.elements"} : () -> tensor<8x64xf4E2M1FN>
// QW: "mxq.quantize"(%{{.*}}) {{.*}} : (tensor<?x64xf32>)

// mxq-fuse: one fused op per layer, the epilogue included, result sizes as the input's.
// FUSE-LABEL: func.func @tokens
// FUSE: "mxq.fused_matmul"({{.*}}) {act_format = "nvfp4", block_size = 16 : i64, epilogue = "relu", layer = "fc"
// FUSE-SAME: (tensor<?x64xf32>, tensor<8x64xf4E2M1FN>, tensor<8x4xf8E4M3FN>, tensor<f32>, tensor<8xf32>) -> tensor<?x8xf32>
// FUSE: "mxq.fused_matmul"({{.*}}) {act_format = "nvfp4", block_size = 16 : i64, epilogue = "none", layer = "proj"
// FUSE-SAME: (tensor<?x?x64xf32>, tensor<8x64xf4E2M1FN>, tensor<8x4xf8E4M3FN>, tensor<f32>) -> tensor<?x?x8xf32>

// lower-mxq-to-linalg: blocks of the dynamic rows by expand_shape with the row count from tensor.dim, dynamic
// tensor.empty, the contraction over ? x 8; the 3-D input collapsed to rows and expanded back.
// LINALG-LABEL: func.func @tokens
// LINALG: tensor.dim %{{.*}}, %{{.*}} : tensor<?x64xf32>
// LINALG: tensor.expand_shape %{{.*}} {{\[}}[0], [1, 2]] output_shape [%{{.*}}, 4, 16] : tensor<?x64xf32> into tensor<?x4x16xf32>
// LINALG: tensor.empty(%{{.*}}) : tensor<?x4x16xf4E2M1FN>
// LINALG: linalg.generic {{.*}} ins(%{{.*}}, %{{.*}} : tensor<?x64xf32>, tensor<8x64xf32>) outs(%{{.*}} : tensor<?x8xf32>)
// LINALG: tensor.collapse_shape %{{.*}} {{\[}}[0, 1], [2]] : tensor<?x?x64xf32> into tensor<?x64xf32>
// LINALG: tensor.expand_shape %{{.*}} {{\[}}[0, 1], [2]] output_shape [%{{.*}}, %{{.*}}, 8] : tensor<?x8xf32> into tensor<?x?x8xf32>
// LINALG-NOT: mxq.

// contraction=fma: the rows in blocks of 64, each zero-padded to 64 and one dispatch of the static kernel.
// FMA-LABEL: func.func @tokens
// FMA: scf.for %[[I:.*]] = %{{.*}} to %{{.*}} step %c64{{.*}} iter_args(%{{.*}} = %{{.*}}) -> (tensor<?x8xf32>)
// FMA: tensor.extract_slice %{{.*}}{{\[}}%[[I]], 0] {{.*}} : tensor<?x64xf32> to tensor<?x64xf32>
// FMA: tensor.pad %{{.*}} low[0, 0] high[%{{.*}}, 0]
// FMA: } : tensor<?x64xf32> to tensor<64x64xf32>
// FMA: "flow.dispatch"({{.*}}) {entry_points = [@mxc_fma::@mxc_fma_64x8x64_p8]
// FMA: tensor.insert_slice {{.*}} : tensor<?x8xf32> into tensor<?x8xf32>
// FMA: scf.yield

// contraction=amx builds its dispatch for one static shape: dynamic layers take the linalg contraction.
// AMX-LABEL: func.func @tokens
// AMX-NOT: flow.dispatch
// AMX: linalg.generic {{.*}} ins(%{{.*}}, %{{.*}} : tensor<?x64xf32>, tensor<8x64xf32>) outs(%{{.*}} : tensor<?x8xf32>)
// AMX-NOT: flow.dispatch

// The CUDA kernels are chosen and launched for one M: both CUDA passes refuse a dynamic layer with the fix.
// CUDA: layer fc: a dynamic token dimension (tensor<?x64xf32>) is not supported on cuda-sm90 yet {{.*}}compile for --target cpu, or drop get_dynamic_shapes()
func.func @tokens(%x: !torch.vtensor<[?,64],f32>, %h: !torch.vtensor<[?,?,64],f32>) -> (!torch.vtensor<[?,8],f32>, !torch.vtensor<[?,?,8],f32>) {
  %w = torch.vtensor.literal(dense<0.5> : tensor<8x64xf32>) : !torch.vtensor<[8,64],f32>
  %w2 = torch.vtensor.literal(dense<0.25> : tensor<8x64xf32>) : !torch.vtensor<[8,64],f32>
  %b = torch.vtensor.literal(dense<0.5> : tensor<8xf32>) : !torch.vtensor<[8],f32>
  %none = torch.constant.none
  %0 = torch.aten.linear %x, %w, %b : !torch.vtensor<[?,64],f32>, !torch.vtensor<[8,64],f32>, !torch.vtensor<[8],f32> -> !torch.vtensor<[?,8],f32> loc("fc")
  %1 = torch.aten.relu %0 : !torch.vtensor<[?,8],f32> -> !torch.vtensor<[?,8],f32>
  %2 = torch.aten.linear %h, %w2, %none : !torch.vtensor<[?,?,64],f32>, !torch.vtensor<[8,64],f32>, !torch.none -> !torch.vtensor<[?,?,8],f32> loc("proj")
  return %1, %2 : !torch.vtensor<[?,8],f32>, !torch.vtensor<[?,?,8],f32>
}

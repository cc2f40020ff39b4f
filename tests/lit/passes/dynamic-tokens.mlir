// Dynamic token dimensions (model.py's get_dynamic_shapes()) through every pass: the leading sizes of
// activations stay `?`, weights, scales and every last dimension stay static.
// RUN: mxc-opt %s -p 'convert-torch-to-mxq,mxq-select-formats{format=nvfp4}' | filecheck %s --check-prefix=SELECT
// RUN: mxc-opt %s -p 'convert-torch-to-mxq,mxq-select-formats{format=nvfp4 weights-only=true calibrate=gptq},mxq-calibrate-weights{hessian=identity}' | filecheck %s --check-prefix=CAL
// RUN: mxc-opt %s -p 'convert-torch-to-mxq,mxq-select-formats{format=nvfp4},mxq-quantize-weights' | filecheck %s --check-prefix=QW
// RUN: mxc-opt %s -p 'convert-torch-to-mxq,mxq-select-formats{format=nvfp4},mxq-quantize-weights,mxq-fuse' | filecheck %s --check-prefix=FUSE
// RUN: mxc-opt %s -p 'convert-torch-to-mxq,mxq-select-formats{format=nvfp4},mxq-quantize-weights,mxq-fuse,lower-mxq-to-linalg' | filecheck %s --check-prefix=LINALG
// RUN: mxc-opt %s -p 'convert-torch-to-mxq,mxq-select-formats{format=nvfp4},mxq-quantize-weights,mxq-fuse,lower-mxq-to-linalg{contraction=fma}' | filecheck %s --check-prefix=FMA
// RUN: mxc-opt %s -p 'convert-torch-to-mxq,mxq-select-formats{format=mxfp8},mxq-quantize-weights,mxq-fuse,lower-mxq-to-linalg{contraction=amx}' | filecheck %s --check-prefix=AMX
// RUN: mxc-opt %s -p 'convert-torch-to-mxq,mxq-select-formats{format=nvfp4 weights-only=true},mxq-quantize-weights,mxq-fuse,mxq-legalize-cuda{max-rows=40}' | filecheck %s --check-prefix=LEGALIZE
// RUN: mxc-opt %s -p 'convert-torch-to-mxq,mxq-select-formats{format=nvfp4 weights-only=true},mxq-quantize-weights,mxq-fuse,mxq-legalize-cuda{target=cuda-sm100}' | filecheck %s --check-prefix=SM100
// RUN: mxc-opt %s -p 'convert-torch-to-mxq,mxq-select-formats{format=nvfp4 weights-only=true},mxq-quantize-weights,mxq-fuse,mxq-legalize-cuda{max-rows=40},lower-mxq-to-cuda' | filecheck %s --check-prefix=CUDA

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

// mxq-legalize-cuda: a dynamic row count gets kernels by buckets of M (mxq.buckets, the smaller ones; mxq.kernels
// past them), each what the target chooses at its top, up to max-rows (40: rdec's 32 rows, then 64 up to 40).
// LEGALIZE-LABEL: func.func @tokens
// LEGALIZE: "mxq.fused_matmul"{{.*}}layer = "fc"
// LEGALIZE-SAME: mxq.buckets = [{kernels = [{{.*}}name = "mxc_dec1b_nvfp4_w16t2s4c1_bias"{{.*}}}], m_max = 1 : i64}, {kernels = [{{.*}}name = "mxc_dec_nvfp4_m8_bias"{{.*}}}], m_max = 8 : i64}, {kernels = [{{.*}}name = "mxc_dec_nvfp4_m16_bias"{{.*}}}], m_max = 16 : i64}, {kernels = [{{.*}}name = "mxc_tilea_r32p"{{.*}}name = "mxc_rdec_nvfp4_n32_s1_bias"{{.*}}}], m_max = 32 : i64}]
// LEGALIZE-SAME: mxq.kernels = [{{.*}}name = "mxc_tilea_r64p"{{.*}}name = "mxc_rdec_nvfp4_n64_s1_bias"
// LEGALIZE-SAME: mxq.path = "dynamic M, 5 kernel choices by M at run time; M = 1: decode: weights by bulk copies into shared memory, decoded to bf16 in registers, mma.sync (M = 1); M 2-16: decode: weights to bf16 in registers, mma.sync (M <= 16); M 17-40: {{.*}}wgmma
// LEGALIZE: "mxq.fused_matmul"{{.*}}layer = "proj"{{.*}}mxq.buckets = [{kernels = [{{.*}}name = "mxc_dec1b_nvfp4_w16t2s4c1"

// cuda-sm100 with no bound: gemv's 1, 4 and 16 rows, then bsdec for every larger M.
// SM100-LABEL: func.func @tokens
// SM100: mxq.buckets = [{kernels = [{{.*}}name = "mxc_gemv_nvfp4_m1_bias"{{.*}}m_max = 1 : i64}, {kernels = [{{.*}}name = "mxc_gemv_nvfp4_m4_bias"{{.*}}m_max = 4 : i64}, {kernels = [{{.*}}name = "mxc_gemv_nvfp4_m16_bias"{{.*}}m_max = 16 : i64}]
// SM100-SAME: mxq.kernels = [{{.*}}name = "mxc_bsq_bf16"{{.*}}name = "mxc_bsdec_nvfp4_bias"
// SM100-SAME: mxq.path = "dynamic M, 4 kernel choices by M at run time; M 1-16: {{.*}}; M >= 17: {{.*}}"

// lower-mxq-to-cuda: nested scf.if on the row count (tensor.dim of the collapsed input); in each branch the
// bucket's launches, M as the workload's first size and the first i32 constant, the output's rows as a
// dynamic result size; the tiles of x sized by M too. Two weight layouts: dec's fragments, rdec's groups of 8.
// CUDA-LABEL: func.func @tokens
// CUDA-DAG: "mxq.param"() {{.*}}name = "fc.nvfp4.elements.f16x64e2"} : () -> tensor<512xi8>
// CUDA-DAG: "mxq.param"() {{.*}}name = "fc.nvfp4.elements.f16x64e2g8"} : () -> tensor<4096xi8>
// CUDA: tensor.dim %{{.*}} : tensor<?x64xf32>
// CUDA: %[[C1:.*]] = arith.cmpi ule, %[[M:.*]], %{{.*}} : index
// CUDA: scf.if %[[C1]] -> (tensor<?x8xf32>) {
// CUDA: %[[M1:.*]] = arith.index_cast %[[M]] : index to i32
// CUDA: "flow.dispatch"(%[[M]], %{{.*}}, %{{.*}}, %[[M1]], {{.*}}) {entry_points = [@mxc_kernels::@mxc_dec1b_nvfp4_w16t2s4c1_bias]{{.*}} -> tensor<?x8xf32>
// CUDA: } else {
// CUDA: "flow.dispatch"({{.*}}) {entry_points = [@mxc_kernels::@mxc_dec_nvfp4_m8_bias]
// CUDA: "flow.dispatch"({{.*}}) {entry_points = [@mxc_kernels::@mxc_dec_nvfp4_m16_bias]
// CUDA: arith.ceildivui %[[M]], %{{.*}} : index
// CUDA: "flow.dispatch"({{.*}}) {entry_points = [@mxc_kernels::@mxc_tilea_r32p]{{.*}} -> tensor<?x64xbf16>
// CUDA: "flow.dispatch"({{.*}}) {entry_points = [@mxc_kernels::@mxc_rdec_nvfp4_n32_s1_bias]{{.*}}, tensor<?x64xbf16>, tensor<4096xi8>, {{.*}} -> tensor<?x8xf32>
// CUDA: "flow.dispatch"({{.*}}) {entry_points = [@mxc_kernels::@mxc_rdec_nvfp4_n64_s1_bias]
// CUDA: "flow.dispatch"({{.*}}) {entry_points = [@mxc_kernels::@mxc_dec1b_nvfp4_w16t2s4c1]{{.*}} -> tensor<?x8xf32>
// CUDA: tensor.expand_shape {{.*}} : tensor<?x8xf32> into tensor<?x?x8xf32>
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

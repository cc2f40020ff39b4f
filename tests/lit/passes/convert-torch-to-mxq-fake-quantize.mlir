// RUN: mxc-opt %s --split-input-file -p convert-torch-to-mxq | filecheck %s

// mxc's fake_quantize graph op (the KV cache's format, mxc.generation) becomes a QDQ pair along the last axis.
// CHECK-LABEL: func.func @kv_mxfp8
// CHECK: %[[X:.*]] = "torch_c.to_builtin_tensor"(%arg0) : (!torch.vtensor<[1,2,4,64],f32>) -> tensor<1x2x4x64xf32>
// CHECK: %[[Q:.*]]:2 = "mxq.quantize"(%[[X]]) {axis = 3 : i64, block_size = 32 : i64, format = "mxfp8"
// CHECK-SAME: -> (tensor<1x2x4x64xf8E4M3FN>, tensor<1x2x4x2xf8E8M0FNU>)
// CHECK: %[[D:.*]] = "mxq.dequantize"(%[[Q]]#0, %[[Q]]#1)
// CHECK-SAME: -> tensor<1x2x4x64xf32>
// CHECK: "torch_c.from_builtin_tensor"(%[[D]])
// CHECK-NOT: torch.operator
func.func @kv_mxfp8(%k: !torch.vtensor<[1,2,4,64],f32>) -> !torch.vtensor<[1,2,4,64],f32> {
  %str = torch.constant.str "mxfp8"
  %0 = torch.operator "torch.mxc.fake_quantize"(%k, %str) : (!torch.vtensor<[1,2,4,64],f32>, !torch.str) -> !torch.vtensor<[1,2,4,64],f32> loc("lm.model.layers.0.self_attn")
  return %0 : !torch.vtensor<[1,2,4,64],f32>
}

// -----

// bf16 keys: extended to f32 (exact), quantized, rounded back; NVFP4 carries its FP32 tensor scale.
// CHECK-LABEL: func.func @kv_nvfp4_bf16
// CHECK: arith.extf %{{.*}} : tensor<1x2x1x64xbf16> to tensor<1x2x1x64xf32>
// CHECK: %[[Q:.*]]:3 = "mxq.quantize"
// CHECK-SAME: format = "nvfp4"
// CHECK: "mxq.dequantize"(%[[Q]]#0, %[[Q]]#1, %[[Q]]#2)
// CHECK: arith.truncf %{{.*}} : tensor<1x2x1x64xf32> to tensor<1x2x1x64xbf16>
func.func @kv_nvfp4_bf16(%k: !torch.vtensor<[1,2,1,64],bf16>) -> !torch.vtensor<[1,2,1,64],bf16> {
  %str = torch.constant.str "nvfp4"
  %0 = torch.operator "torch.mxc.fake_quantize"(%k, %str) : (!torch.vtensor<[1,2,1,64],bf16>, !torch.str) -> !torch.vtensor<[1,2,1,64],bf16>
  return %0 : !torch.vtensor<[1,2,1,64],bf16>
}

// RUN: mxc-opt %s --split-input-file -p convert-torch-to-mxq | filecheck %s

// mxc's KV-cache graph ops (mxc.generation: a cache held as codes) become mxq ops along the last axis:
// kv_store (f32 keys -> int8 rows of bytes) a quantize -> pack, kv_load (bytes -> f32) an unpack -> dequantize.
// CHECK-LABEL: func.func @store_mxfp8
// CHECK: %[[X:.*]] = "torch_c.to_builtin_tensor"(%arg0) : (!torch.vtensor<[1,2,?,64],f32>) -> tensor<1x2x?x64xf32>
// CHECK: %[[Q:.*]]:2 = "mxq.quantize"(%[[X]]) {axis = 3 : i64, block_size = 32 : i64, format = "mxfp8"
// CHECK-SAME: -> (tensor<1x2x?x64xf8E4M3FN>, tensor<1x2x?x2xf8E8M0FNU>)
// CHECK: %[[B:.*]] = "mxq.pack"(%[[Q]]#0, %[[Q]]#1) {block_size = 32 : i64, format = "mxfp8", k = 64 : i64
// CHECK-SAME: -> tensor<1x2x?x66xi8>
// CHECK: "torch_c.from_builtin_tensor"(%[[B]]) : (tensor<1x2x?x66xi8>) -> !torch.vtensor<[1,2,?,66],si8>
// CHECK-NOT: torch.operator
func.func @store_mxfp8(%k: !torch.vtensor<[1,2,?,64],f32>) -> !torch.vtensor<[1,2,?,66],si8> {
  %str = torch.constant.str "mxfp8"
  %0 = torch.operator "torch.mxc.kv_store"(%k, %str) : (!torch.vtensor<[1,2,?,64],f32>, !torch.str) -> !torch.vtensor<[1,2,?,66],si8> loc("lm.model.layers.0.self_attn")
  return %0 : !torch.vtensor<[1,2,?,66],si8>
}

// -----

// NVFP4: 32 bytes of codes, 4 of block scales, 4 of the FP32 tensor scale per row; the load's tensor scale is
// one per row (each decode step's write has its own).
// CHECK-LABEL: func.func @load_nvfp4
// CHECK: %[[R:.*]] = "torch_c.to_builtin_tensor"(%arg0) : (!torch.vtensor<[1,2,8,40],si8>) -> tensor<1x2x8x40xi8>
// CHECK: %[[U:.*]]:3 = "mxq.unpack"(%[[R]]) {block_size = 16 : i64, format = "nvfp4", k = 64 : i64
// CHECK-SAME: -> (tensor<1x2x8x64xf4E2M1FN>, tensor<1x2x8x4xf8E4M3FN>, tensor<1x2x8x1xf32>)
// CHECK: %[[D:.*]] = "mxq.dequantize"(%[[U]]#0, %[[U]]#1, %[[U]]#2)
// CHECK-SAME: -> tensor<1x2x8x64xf32>
// CHECK: "torch_c.from_builtin_tensor"(%[[D]])
func.func @load_nvfp4(%b: !torch.vtensor<[1,2,8,40],si8>) -> !torch.vtensor<[1,2,8,64],f32> {
  %str = torch.constant.str "nvfp4"
  %int64 = torch.constant.int 64
  %0 = torch.operator "torch.mxc.kv_load"(%b, %str, %int64) : (!torch.vtensor<[1,2,8,40],si8>, !torch.str, !torch.int) -> !torch.vtensor<[1,2,8,64],f32>
  return %0 : !torch.vtensor<[1,2,8,64],f32>
}

// RUN: mxc-opt %s --split-input-file -p lower-mxq-to-linalg | filecheck %s

// mxq.pack / mxq.unpack: mxc.numerics.row_bytes' layout (tests/pytest/test_lowering_bits.py runs them against it).

// MXFP4: two codes per byte (element 2i low), then the E8M0 scale bytes, each part inserted at its offset.
// CHECK-LABEL: func.func @pack_mxfp4
// CHECK: arith.bitcast %{{.*}} : f4E2M1FN to i4
// CHECK: arith.shli %{{.*}}, %{{.*}} : i32
// CHECK: arith.ori
// CHECK: arith.bitcast %{{.*}} : f8E8M0FNU to i8
// CHECK: tensor.insert_slice %{{.*}} into %{{.*}}[0, 0] [%{{.*}}, 32] [1, 1] : tensor<?x32xi8> into tensor<?x34xi8>
// CHECK: tensor.insert_slice %{{.*}} into %{{.*}}[0, 32] [%{{.*}}, 2] [1, 1] : tensor<?x2xi8> into tensor<?x34xi8>
func.func @pack_mxfp4(%e: tensor<?x64xf4E2M1FN>, %s: tensor<?x2xf8E8M0FNU>) -> tensor<?x34xi8> {
  %b = "mxq.pack"(%e, %s) {format = "mxfp4", block_size = 32 : i64, k = 64 : i64, operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<?x64xf4E2M1FN>, tensor<?x2xf8E8M0FNU>) -> tensor<?x34xi8>
  return %b : tensor<?x34xi8>
}

// -----

// NVFP4: the one tensor scale of a quantize goes into every row as four little-endian bytes, after the codes and
// the block scales.
// CHECK-LABEL: func.func @pack_nvfp4
// CHECK: arith.bitcast %{{.*}} : f32 to i32
// CHECK: arith.shrui
// CHECK: tensor.insert_slice %{{.*}} into %{{.*}}[0, 36] [4, 4] [1, 1] : tensor<4x4xi8> into tensor<4x40xi8>
func.func @pack_nvfp4(%e: tensor<4x64xf4E2M1FN>, %s: tensor<4x4xf8E4M3FN>, %t: tensor<f32>) -> tensor<4x40xi8> {
  %b = "mxq.pack"(%e, %s, %t) {format = "nvfp4", block_size = 16 : i64, k = 64 : i64, operandSegmentSizes = array<i32: 1, 1, 1>} : (tensor<4x64xf4E2M1FN>, tensor<4x4xf8E4M3FN>, tensor<f32>) -> tensor<4x40xi8>
  return %b : tensor<4x40xi8>
}

// -----

// Unpack read only by dequantize: each part sliced at its offset, the elements and scales kept as i8 codes and
// decoded by integer ops (no f4/f8 value anywhere: IREE's CPU code emulates their conversions one by one);
// a tensor scale per row from its four bytes, which dequantize reads per row.
// CHECK-LABEL: func.func @unpack_dequantize_nvfp4
// CHECK-NOT: f4E2M1FN
// CHECK-NOT: f8E4M3FN
// CHECK: tensor.extract_slice %{{.*}}[0, 0] [4, 32] [1, 1] : tensor<4x40xi8> to tensor<4x32xi8>
// CHECK: tensor.collapse_shape {{.*}} into tensor<4x64xi8>
// CHECK: tensor.extract_slice %{{.*}}[0, 32] [4, 4] [1, 1] : tensor<4x40xi8> to tensor<4x4xi8>
// CHECK: tensor.extract_slice %{{.*}}[0, 36] [4, 4] [1, 1] : tensor<4x40xi8> to tensor<4x4xi8>
// CHECK: arith.bitcast %{{.*}} : i32 to f32
// CHECK: linalg.generic {indexing_maps = [#{{.*}}, #{{.*}}, #[[ROW:.*]], #{{.*}}]
// CHECK-NOT: mxq.
// CHECK-NOT: f4E2M1FN
// CHECK: return
func.func @unpack_dequantize_nvfp4(%b: tensor<4x40xi8>) -> tensor<4x64xf32> {
  %e, %s, %t = "mxq.unpack"(%b) {format = "nvfp4", block_size = 16 : i64, k = 64 : i64, resultSegmentSizes = array<i32: 1, 1, 1>} : (tensor<4x40xi8>) -> (tensor<4x64xf4E2M1FN>, tensor<4x4xf8E4M3FN>, tensor<4x1xf32>)
  %d = "mxq.dequantize"(%e, %s, %t) {format = "nvfp4", block_size = 16 : i64, k = 64 : i64, operandSegmentSizes = array<i32: 1, 1, 1>} : (tensor<4x64xf4E2M1FN>, tensor<4x4xf8E4M3FN>, tensor<4x1xf32>) -> tensor<4x64xf32>
  return %d : tensor<4x64xf32>
}

// -----

// FP6: four codes per three bytes, unpacked to the lowering's i8 codes.
// CHECK-LABEL: func.func @unpack_mxfp6
// CHECK: tensor.extract_slice %{{.*}}[0, 0] [2, 48] [1, 1] : tensor<2x50xi8> to tensor<2x48xi8>
// CHECK: arith.andi %{{.*}}, %{{.*}} : i32
// CHECK: tensor.collapse_shape {{.*}} into tensor<2x64xi8>
func.func @unpack_mxfp6(%b: tensor<2x50xi8>) -> tensor<2x64xf32> {
  %e, %s = "mxq.unpack"(%b) {format = "mxfp6_e2m3", block_size = 32 : i64, k = 64 : i64, resultSegmentSizes = array<i32: 1, 1, 0>} : (tensor<2x50xi8>) -> (tensor<2x64xf6E2M3FN>, tensor<2x2xf8E8M0FNU>)
  %d = "mxq.dequantize"(%e, %s) {format = "mxfp6_e2m3", block_size = 32 : i64, k = 64 : i64, operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<2x64xf6E2M3FN>, tensor<2x2xf8E8M0FNU>) -> tensor<2x64xf32>
  return %d : tensor<2x64xf32>
}

// -----

// An unpack whose elements something besides dequantize reads: the format's own types.
// CHECK-LABEL: func.func @unpack_typed
// CHECK: arith.bitcast %{{.*}} : i8 to f8E4M3FN
func.func @unpack_typed(%b: tensor<2x66xi8>) -> tensor<2x64xf8E4M3FN> {
  %e, %s = "mxq.unpack"(%b) {format = "mxfp8", block_size = 32 : i64, k = 64 : i64, resultSegmentSizes = array<i32: 1, 1, 0>} : (tensor<2x66xi8>) -> (tensor<2x64xf8E4M3FN>, tensor<2x2xf8E8M0FNU>)
  return %e : tensor<2x64xf8E4M3FN>
}

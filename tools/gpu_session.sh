# One device call's work (the H200): the GPU checks, the examples' --compare, ncu of the decode kernel,
# the benchmarks (decode shapes, then prefill, rdec against the prefill path). Results into $OUT. Usage (repo root, after
# `bash tools/gpu_prepare.sh` on a machine with nvcc and torch-mlir, carrying .gpu and .whl):
#   OUT=DIR bash tools/gpu_session.sh      (DECODE_S, PREFILL_S: the benchmarks' time limits; PREFILL_S=0 skips it;
#                                           SWEEP_S > 0 adds the dec1b variant sweep, that long)
set -u
. tools/gpu_env.sh && export MXC_GPU_CUBIN=$PWD/.gpu/kernels.cubin MXC_GPU_ARTIFACTS=$PWD/.gpu/artifacts
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
xd=$(python3 -c "import xdist" 2>/dev/null && echo "-n 12")  # pytest-xdist where .whl carried it
timeout 300 python3 -m pytest -q -p no:cacheprovider $xd tests/gpu 2>&1 | tail -25 > "$OUT/tests_gpu.txt"; tail -3 "$OUT/tests_gpu.txt"
for a in .gpu/f32/* .gpu/bf16/*; do
  echo "== $a"; timeout 60 mxc run "$a" --device cuda --compare 2>&1 | tail -2
done > "$OUT/compare.txt" 2>&1; grep -c ": pass" "$OUT/compare.txt"; grep -B1 -i "fail\|error" "$OUT/compare.txt" | head
timeout 90 ncu --clock-control none -k regex:mxc_dec --section SpeedOfLight --section MemoryWorkloadAnalysis \
  --section Occupancy --section LaunchStats --section WarpStateStats --section SchedulerStats -c 1 \
  python3 -m mxc.tools.bench_cuda once .gpu 8192x8192 1 nvfp4 > "$OUT/ncu_dec.txt" 2>&1
grep -E "Duration|DRAM Throughput|Compute \(SM\)|Registers Per|Achieved Occ" "$OUT/ncu_dec.txt"
timeout ${DECODE_S:-280} python3 -m mxc.tools.bench_cuda bench .gpu --shapes 8192x8192,14336x4096,4096x14336,4096x4096 \
  --m 1,4,16 > "$OUT/bench_decode.txt" 2>&1
[ "${PREFILL_S:-150}" -gt 0 ] && timeout ${PREFILL_S:-150} python3 -m mxc.tools.bench_cuda bench .gpu --shapes 8192x8192 \
  --m 128,4096 > "$OUT/bench_prefill.txt" 2>&1
# rdec (selected from M = 17) at every K split against the prefill path (not selected), M = 1024-4096
[ "${PREFILL_S:-150}" -gt 0 ] && timeout 120 python3 -m mxc.tools.bench_cuda rdec .gpu 8192x8192,14336x4096,4096x14336 \
  nvfp4,mxfp8 1024,2048,4096 > "$OUT/bench_rdec.txt" 2>&1
cp .gpu/bench-*.json "$OUT/" 2>/dev/null
grep -A12 "^aims" "$OUT"/bench_*.txt
if [ "${SWEEP_S:-0}" -gt 0 ]; then  # the M = 1 variants against what cuda-sm90 selects (kinds.DEC1B_VARIANTS)
  timeout $SWEEP_S python3 -m mxc.tools.bench_cuda dec1b .gpu > "$OUT/sweep_dec1b.txt" 2>&1
  tail -4 "$OUT"/sweep_*.txt
fi

# The device run, in parts that each fit one device call (< 10 min). Usage, from the repository root on
# the GPU host, after `bash tools/gpu_prepare.sh` here and carrying .gpuz and .whl (the device tool's
# limit, 64 MiB a call, is below .gpu's size, so .gpu travels packed as .gpuz/gpu.tar.xz):
#   OUT=DIR PARTS="checks decode" bash tools/gpu_session.sh      (the default PARTS)
# Parts (each ran as one device call on an H200 on 2026-12-06, times below):
#   checks   pytest tests/gpu (12 workers where .whl carries pytest-xdist), --compare on every artifact of
#            .gpu, the Llama example's forward pass against torch eager bf16: 108 s (42 + 47 + 15 s)
#   decode   bench_cuda bench at M = 1 and 16 with the peers, ncu of the M = 1 kernel: 164 s (149 + 10 s)
#   prefill  bench_cuda bench at M = 128-4096, rdec at M = 4096 with its kernels alone (NVFP4, IF4), the SM
#            clock each ran at (clocks), ncu of rdec at M = 4096 (IF4, NVFP4): 85 s (37 + 27 + 21 s, before
#            clocks was added)
#   ring     bench_cuda ring: M = 1 and 16, dec1b and decs against themselves without decode (diag2), with
#            the weights' stream alone (diag3) and (decs) without the activations' staging (diag4), NVFP4 and
#            MXFP8: what they stream at, what the staging costs (16-25 s on an H100)
#   cost     the --auto cost table (targets/data/cuda-sm90-gemm.json) timed again shape by shape into
#            $OUT/cuda-sm90-gemm.json, only on the device the table was measured on (IREE's matmuls are
#            kept; on an H200 on 2026-12-06 8192^2 and 4096^2 took 65 s, 1024^2 12 s; a shape whose run
#            passes its 190 s limit keeps its old rows)
# Results and logs into $OUT; each step has a time limit, and the limits of a part sum to under 10 minutes
# (but for checks' --compare loop, 60 s an artifact at most, ~5 s each in practice).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
[ -f .gpu/kernels.cubin ] || tar -xJf .gpuz/gpu.tar.xz || { echo "no .gpu: run tools/gpu_prepare.sh, carry .gpuz"; exit 2; }
. tools/gpu_env.sh && export MXC_GPU_CUBIN=$PWD/.gpu/kernels.cubin MXC_GPU_ARTIFACTS=$PWD/.gpu/artifacts
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader | tee "$OUT/gpu.txt"
sha256sum .gpu/kernels.cubin | cut -c1-16 | tee -a "$OUT/gpu.txt"; el setup
SH=8192x8192,14336x4096,4096x14336
B="python3 -m mxc.tools.bench_cuda"
for part in ${PARTS:-checks decode}; do case $part in
checks)
  xd=$(python3 -c "import xdist" 2>/dev/null && echo "-n 12")
  timeout 150 python3 -m pytest -q -p no:cacheprovider $xd tests/gpu 2>&1 | tail -25 > "$OUT/tests_gpu.txt"
  tail -1 "$OUT/tests_gpu.txt"; el tests
  for a in .gpu/f32/* .gpu/bf16/*; do
    echo "== $a"; timeout 60 mxc run "$a" --device cuda --compare 2>&1 | tail -2
  done > "$OUT/compare.txt" 2>&1
  echo "compare: $(grep -c ': pass' "$OUT/compare.txt") of $(ls -d .gpu/f32/* .gpu/bf16/* | wc -l) pass"
  grep -B1 -i "fail\|error" "$OUT/compare.txt" | head; el compare
  timeout 90 $B model .gpu/f32/llama_nvfp4_wo examples/llama.py 2>&1 | tail -1 | tee "$OUT/model.txt"; el model ;;
decode)
  timeout 240 $B bench .gpu --shapes $SH --m 1,16 > "$OUT/bench_decode.txt" 2>&1; el bench
  grep -A40 "^aims" "$OUT/bench_decode.txt"
  timeout 90 ncu --clock-control none -k regex:mxc_dec --section SpeedOfLight --section MemoryWorkloadAnalysis \
    --section Occupancy --section LaunchStats --section WarpStateStats --section SchedulerStats -c 1 \
    $B once .gpu 14336x4096 1 nvfp4 > "$OUT/ncu_dec1b.txt" 2>&1
  grep -E "Duration|DRAM Throughput|Registers Per|Achieved Occ" "$OUT/ncu_dec1b.txt"; el ncu ;;
prefill)
  timeout 210 $B bench .gpu --shapes $SH --m 128,1024,2048,4096 --no-peers > "$OUT/bench_prefill.txt" 2>&1; el bench
  grep -A40 "^aims" "$OUT/bench_prefill.txt"
  timeout 120 $B rdec .gpu $SH nvfp4,if4 4096 > "$OUT/bench_rdec.txt" 2>&1; el rdec
  timeout 60 $B clocks .gpu 8192x8192 4096 nvfp4,if4 > "$OUT/clocks.txt" 2>&1; tail -6 "$OUT/clocks.txt"; el clocks
  for f in if4 nvfp4; do
    timeout 60 ncu --clock-control none -k regex:mxc_rdec --section SpeedOfLight --section WarpStateStats \
      --section SchedulerStats --section MemoryWorkloadAnalysis -c 1 $B once .gpu 14336x4096 4096 $f \
      > "$OUT/ncu_rdec_$f.txt" 2>&1
    grep -E "Duration|Compute \(SM\) Throughput|Issue Slots Busy" "$OUT/ncu_rdec_$f.txt"
  done; el ncu ;;
ring)
  timeout 200 $B ring .gpu > "$OUT/ring.txt" 2>&1; cat "$OUT/ring.txt"; el ring ;;
cost)
  cp targets/data/cuda-sm90-gemm.json "$OUT/"
  for s in 8192x8192 4096x4096 1024x1024; do
    timeout 190 $B cost-table .gpu --out "$OUT/cuda-sm90-gemm.json" --shapes $s > "$OUT/cost_$s.txt" 2>&1
    tail -1 "$OUT/cost_$s.txt"; el "cost $s"
  done ;;
*) echo "unknown part $part (checks, decode, prefill, ring, cost)"; exit 2 ;;
esac; done
cp .gpu/bench-*.json .gpu/rdec.json .gpu/clocks-*.json .gpu/ring.json "$OUT/" 2>/dev/null
# every bench run of this host so far as the README's tables (per shape and M; the aims)
if ls .gpu/bench-*.json >/dev/null 2>&1; then $B table .gpu/bench-*.json > "$OUT/table.md" 2>&1; fi

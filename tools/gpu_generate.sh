# On the GPU host (with the device tool; carry .gpu and .whl): --generate's decode speed on cuda-sm90.
# Here first: RANDOM_LM_SIZE=1b mxc compile examples/llm/random_lm.py --generate --max-seq-len 256
#   --target cuda-sm90 --format nvfp4 --weights-only -o .gpu/gen1b, then delete .gpu/gen1b/model.irpa
#   (2.3 GB): the host writes it from model.py (mxc write-weights checks the bytes against the compile's).
# A tiny artifact (.gpu/gentiny, RANDOM_LM_SIZE=tiny, same flags) checks the tokens against the reference.
# Everything goes to $OUT/log. PROFILE=1 adds an ncu breakdown of a decode step (mxc.tools.ncu_summary).
cd "$(dirname "$0")/.."
. tools/gpu_env.sh
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
exec > "$OUT/log" 2>&1
echo "== tiny: tokens vs the fake-quant reference"
RANDOM_LM_SIZE=tiny mxc generate .gpu/gentiny --device cuda --prompt "Hello, world" --max-new-tokens 24 \
    --model examples/llm/random_lm.py --ignore-eos --compare --json
export RANDOM_LM_SIZE=1b
echo "== 1b: write-weights"
[ -f .gpu/gen1b/model.irpa ] || time mxc write-weights .gpu/gen1b --model examples/llm/random_lm.py
echo "== 1b: bench"
python -m mxc.tools.bench_generate .gpu/gen1b --device cuda --model examples/llm/random_lm.py \
    --prompt-tokens 128 --new-tokens 128 --reps 3 --torch-dtype bf16 ${BENCH_FLAGS:---torch-compile}
if [ -n "${PROFILE:-}" ]; then  # where a decode step's GPU time goes: ncu over the prefill + 4 decode calls
  echo "== 1b: ncu, kernel time per decode step"
  timeout 300 ncu --clock-control none --metrics gpu__time_duration.sum --csv --page raw python -m mxc.tools.bench_generate \
    .gpu/gen1b --device cuda --model examples/llm/random_lm.py --decode-steps 4 > "$OUT/ncu.csv" 2> "$OUT/ncu.err"
  python -m mxc.tools.ncu_summary "$OUT/ncu.csv" --steps 4
fi

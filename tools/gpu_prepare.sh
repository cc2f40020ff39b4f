# Here (nvcc, torch-mlir): what tools/gpu_session.sh needs on the GPU host. Writes .gpu/kernels.cubin
# (+ kernels.json: every sm_90a kernel) and cuda-sm90 artifacts of the examples into .gpu/f32 and .gpu/bf16;
# .whl/ must hold the cp312 iree-base-runtime wheel (and, for the gemlite peer, gemlite's wheel; for tests/gpu
# on 12 workers, pytest-xdist's and execnet's: `pip download -d .whl pytest-xdist`).
# .gpu is packed into .gpuz/gpu.tar.xz (the device tool carries at most 64 MiB a call, less than .gpu).
# Then, with the device tool: carry .gpuz and .whl, run `OUT=$OUT bash tools/gpu_session.sh` (its parts).
set -eu
cd "$(dirname "$0")/.."
python -m mxc.tools.bench_cuda build .gpu
python -m mxc.tools.gpu_artifacts .gpu/artifacts   # tests/gpu/test_dynamic_cuda.py's (MXC_GPU_ARTIFACTS)
rm -rf .gpu/f32 .gpu/bf16 && mkdir -p .gpu/f32 .gpu/bf16
c() { mxc compile "$@" --target cuda-sm90 -q; }
for f in nvfp4 mxfp4 if4 mxfp8; do c examples/mlp.py -o .gpu/f32/mlp_${f}_wo --format $f --weights-only; done
c examples/mlp.py -o .gpu/f32/mlp_nvfp4 --format nvfp4
c examples/llama.py -o .gpu/f32/llama_nvfp4_wo --format nvfp4 --weights-only
c examples/cnn.py -o .gpu/f32/cnn_mxfp8 --format mxfp8
c examples/mlp_bf16.py -o .gpu/bf16/nvfp4_wo --format nvfp4 --weights-only
c examples/mlp_bf16.py -o .gpu/bf16/mxfp6_wo --format mxfp6_e2m3 --weights-only
c examples/mlp_bf16.py -o .gpu/bf16/mxfp4 --format mxfp4
c examples/mlp_bf16.py -o .gpu/bf16/mxfp8 --format mxfp8
du -sh .gpu
mkdir -p .gpuz && rm -f .gpuz/gpu.tar.xz && XZ_OPT=-T0 tar -cJf .gpuz/gpu.tar.xz .gpu && du -sh .gpuz/gpu.tar.xz

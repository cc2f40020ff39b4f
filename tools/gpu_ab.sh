# The GPU host: this checkout's library against an earlier one, in one device call, each run with its own
# tree's code (their weight layouts may differ), alternated twice: `bench_cuda dec1b` at M = 1 (µs of every
# dec1b variant, cuBLAS bf16 in the same run). Prepare here, with the earlier commit OLD, in this checkout (the
# editable install imports mxc from it, so not in a second worktree):
#   git checkout OLD && bash tools/gpu_prepare.sh && mv .gpuz/gpu.tar.xz .gpuz/gpu_old.tar.xz && git checkout -
#   git archive OLD -o .gpuz/old_tree.tgz && bash tools/gpu_prepare.sh             # this library
# then, carrying .gpuz and .whl: OUT=DIR [SHAPES=NxK,...] [FORMATS=f,...] bash tools/gpu_ab.sh
# (2026-12-07: 8192², 14336 x 4096, 4096 x 14336 and three formats took ~40 s a run on an H100).
set -u
R=$PWD; O=${OUT:-/tmp/out}; mkdir -p "$O"
S=${SHAPES:-8192x8192,14336x4096,4096x14336}; F=${FORMATS:-nvfp4,mxfp4,mxfp8}
[ -f .gpu/kernels.cubin ] || tar -xJf .gpuz/gpu.tar.xz || exit 2
rm -rf /tmp/old_tree && mkdir -p /tmp/old_tree && tar -xzf .gpuz/old_tree.tgz -C /tmp/old_tree && \
  (cd /tmp/old_tree && tar -xJf "$R/.gpuz/gpu_old.tar.xz") && cp -r .whl /tmp/old_tree/ || exit 2
ab() {
  (cd "$1" && . tools/gpu_env.sh && echo "== $2 $(sha256sum .gpu/kernels.cubin | cut -c1-16)" &&
   timeout 100 python3 -m mxc.tools.bench_cuda dec1b .gpu "$S" "$F" > "$O/dec1b_$2.txt" 2>&1; tail -12 "$O/dec1b_$2.txt")
}
ab "$R" new1; ab /tmp/old_tree old1; ab "$R" new2; ab /tmp/old_tree old2
. tools/gpu_env.sh  # this checkout installed again

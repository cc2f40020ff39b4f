# Source on a GPU host (Python 3.12, torch, no internet, no torch-mlir): installs this checkout into the
# host's Python, editable and offline, without its dependencies (the host's torch, numpy and ml_dtypes
# serve; torch-mlir is needed to compile, not to run), and the wheels carried in .whl/ (iree-base-runtime
# for Python 3.12, to run artifacts). Then:
#   pytest tests/gpu                               # MXC_GPU_CUBIN=DIR/kernels.cubin where there is no nvcc
#   mxc run ARTIFACT --device cuda --compare
_mxc_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_mxc_pip="python3 -m pip install -q --no-deps --no-index --no-cache-dir"
$_mxc_pip --no-build-isolation -e "$_mxc_root" || return 1
if ls "$_mxc_root"/.whl/*.whl >/dev/null 2>&1; then
  $_mxc_pip --upgrade "$_mxc_root"/.whl/*.whl || return 1
fi
unset _mxc_root _mxc_pip
export PYTHONUNBUFFERED=1

# Source on the GPU machine (Python 3.12, torch, no mxc install): makes `import mxc` work from this checkout
# and installs the wheels carried in .whl (iree-base-runtime for Python 3.12) into /tmp/site.
#   . tools/gpu_env.sh && python3 -m mxc.tools.bench_cuda check DIR
_root=$(pwd)
mkdir -p /tmp/mxcpkg/mxc
cp "$_root/mxc/__init__.py" /tmp/mxcpkg/mxc/
for d in numerics compiler dialects passes runtime tools kernels; do ln -sfn "$_root/$d" "/tmp/mxcpkg/mxc/$d"; done
if ls "$_root"/.whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$_root"/.whl/*.whl
fi
export PYTHONPATH=/tmp/mxcpkg:/tmp/site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1

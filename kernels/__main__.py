"""python -m mxc.kernels OUT_DIR: assemble every kernel variant into OUT_DIR/mxc_sm90a.{cu,ptx,cubin}."""

import shutil
import sys
from pathlib import Path

from . import build, every_kernel

out = Path(sys.argv[1] if len(sys.argv) > 1 else "kernels-build")
out.mkdir(parents=True, exist_ok=True)
ks = every_kernel()
b = build(ks)
for ext, src in (("cu", b.cubin_path.with_suffix(".cu")), ("ptx", b.ptx_path), ("cubin", b.cubin_path)):
    shutil.copyfile(src, out / f"mxc_sm90a.{ext}")
print(f"{len(ks)} kernels -> {out}/mxc_sm90a.cubin ({b.cubin_path.stat().st_size} bytes)")

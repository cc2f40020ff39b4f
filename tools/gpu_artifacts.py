"""The cuda-sm90 artifacts tests/gpu runs but cannot compile (the GPU host has no torch-mlir): a dynamic row
count, `examples/mlp_dynamic.py` in the formats whose kernels differ by M. Compile them where mxc compiles,

    python -m mxc.tools.gpu_artifacts .gpu/artifacts

then carry the directory and set MXC_GPU_ARTIFACTS to it on the GPU host (tests/gpu/test_dynamic_cuda.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mlp_dynamic.py"
# name -> compile options: weight-only (dec, dec1b, rdec: their weight layouts), MXFP8 x MXFP8 (tileq + rdec)
DYNAMIC = {
    "mlp_dynamic-nvfp4-w": {"format": "nvfp4", "weights_only": True},
    "mlp_dynamic-mxfp6-w": {"format": "mxfp6_e2m3", "weights_only": True},
    "mlp_dynamic-mxfp8": {"format": "mxfp8"},
}


def compile_dynamic(directory: Path, name: str) -> Path:
    """Compile the artifact `name` of DYNAMIC into directory/name for cuda-sm90; its path."""
    from mxc.compiler.driver import compile_file
    from mxc.options import Options

    out = Path(directory) / name
    compile_file(EXAMPLE, out, Options(target="cuda-sm90", **DYNAMIC[name]))
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m mxc.tools.gpu_artifacts", description=__doc__.split("\n\n")[0])
    ap.add_argument("directory", type=Path)
    args = ap.parse_args(argv)
    for name in DYNAMIC:
        print(f"{name}: {compile_dynamic(args.directory, name)}")


if __name__ == "__main__":
    main()

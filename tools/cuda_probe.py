"""Probe for the CUDA target (issue 4 groundwork): do mxc's IREE artifacts run on the H100?

Two halves, because the GPU machine has no mxc install (Python 3.12 there):

    python -m mxc.tools.cuda_probe build DIR     # here: compile the probes, save CPU reference outputs
    pip download iree-base-runtime==3.13.0 --python-version 3.12 --only-binary=:all: --no-deps -d DIR
    python3 tools/cuda_probe.py run DIR          # on the GPU machine: needs only numpy + that wheel

`build` compiles, for IREE's CUDA backend at sm_80 (IREE 3.13 knows no sm_90; the
driver JITs the PTX for the H100): a plain f32 matmul, and the example MLP with
`--format none` and with MXINT8 weights (integer elements and E8M0 scales go
through IREE's CUDA codegen; FP4/FP8 element types do not, DESIGN.md §4), each
with the CPU artifact's outputs. `run` loads every probe with the CUDA driver of
the cp312 wheel (unpacked into DIR/iree_rt), checks it against the CPU outputs
and times it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

PROBES = ("none", "mxint8")
CUDA_FLAGS = ["--iree-hal-target-device=cuda", "--iree-cuda-target=sm_80"]
MATMUL = """func.func @main(%a: tensor<256x512xf32>, %b: tensor<512x128xf32>) -> tensor<256x128xf32> {
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<256x128xf32>
  %f = linalg.fill ins(%z : f32) outs(%e : tensor<256x128xf32>) -> tensor<256x128xf32>
  %r = linalg.matmul ins(%a, %b : tensor<256x512xf32>, tensor<512x128xf32>) outs(%f : tensor<256x128xf32>)
    -> tensor<256x128xf32>
  return %r : tensor<256x128xf32>
}
"""


def build(out: Path) -> None:
    import iree.compiler as ic
    import numpy as np

    import mxc

    out.mkdir(parents=True, exist_ok=True)
    (out / "matmul_sm80.vmfb").write_bytes(ic.compile_str(MATMUL, extra_args=CUDA_FLAGS))
    example = Path(__file__).resolve().parents[1] / "examples" / "mlp.py"
    for fmt in PROBES:
        art_dir, dump = out / f"mlp_{fmt}", out / f"mlp_{fmt}_ir"
        opts = mxc.Options(format=fmt, weights_only=True)
        mxc.compile(example, art_dir, opts, progress=False)
        mxc.compile(example, out / f"mlp_{fmt}_tmp", opts, compile_to="iree-input", dump_dir=dump, progress=False)
        text = next(dump.glob("*.iree-input.mlir")).read_text()
        (out / f"mlp_{fmt}_sm80.vmfb").write_bytes(ic.compile_str(text, input_type="torch", extra_args=CUDA_FLAGS))
        art = mxc.load(art_dir)
        x = art.example_inputs()
        np.save(out / f"mlp_{fmt}_x.npy", x[0].numpy())
        np.save(out / f"mlp_{fmt}_cpu_y.npy", art(*x)[0].numpy())
    print(f"wrote the probes to {out}; now download the cp312 iree-base-runtime wheel into it and run it on the GPU")


def run(out: Path) -> None:
    import zipfile

    import numpy as np

    rt_dir = out / "iree_rt"
    if not rt_dir.is_dir():
        wheel = next(out.glob("iree_base_runtime-*.whl"))
        zipfile.ZipFile(wheel).extractall(rt_dir)
    sys.path.insert(0, str(rt_dir))
    from iree import runtime as rt

    def context(vmfb: Path, irpa: Path | None = None):
        cfg = rt.Config("cuda")
        mods = []
        if irpa is not None:
            index = rt.ParameterIndex()
            index.load(str(irpa))
            mods.append(rt.create_io_parameters_module(cfg.vm_instance, index.create_provider(scope="model")))
        mods += [rt.create_hal_module(cfg.vm_instance, cfg.device), rt.VmModule.copy_buffer(cfg.vm_instance, vmfb.read_bytes())]
        return rt.SystemContext(vm_modules=mods, config=cfg).modules.module["main"]

    a, b = np.random.rand(256, 512).astype(np.float32), np.random.rand(512, 128).astype(np.float32)
    got = np.asarray(context(out / "matmul_sm80.vmfb")(a, b))
    print(f"matmul (sm_80 PTX, JIT on this GPU): max rel err {np.abs(got - a @ b).max() / np.abs(a @ b).max():.2e}")
    for fmt in PROBES:
        fn = context(out / f"mlp_{fmt}_sm80.vmfb", out / f"mlp_{fmt}" / "model.irpa")
        x, ref = np.load(out / f"mlp_{fmt}_x.npy"), np.load(out / f"mlp_{fmt}_cpu_y.npy")
        y = np.asarray(fn(x))
        for _ in range(3):
            np.asarray(fn(x))
        n, t = 50, time.perf_counter()
        for _ in range(n):
            np.asarray(fn(x))
        ms = (time.perf_counter() - t) / n * 1e3
        print(f"mlp {fmt} weight-only: cuda vs cpu max abs diff {np.abs(y - ref).max():.2e} "
              f"(max |y| {np.abs(ref).max():.3f}); {ms:.3f} ms per synchronous call incl. transfers")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("build", "run"):
        sys.exit(__doc__)
    (build if sys.argv[1] == "build" else run)(Path(sys.argv[2]))

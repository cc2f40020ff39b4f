"""Where a CPU artifact's time goes: one run of its entry point under IREE's HAL profiler, per dispatch.

    python -m mxc.tools.profile_cpu OUT [--function main] [--threads 2] [--top 15]

Runs `iree-run-module` on OUT's program, parameters and example inputs (OUT/inputs.pt) with
`--device_profiling_mode=host-execution`, reads the bundle with `iree-profile statistics`, and prints the
time of each kind of dispatch (mxc's AMX kernels, IREE's float32 contractions, softmax, the quantizers,
the rest) and of the slowest dispatch functions, summed over their calls. The weights' decode and
layout, which IREE hoists out of the entry point into initializers, run when the program loads and are
not in the profile.

An artifact compiled with `--contraction amx` needs the process's AMX permission, which Linux clears
across exec: the tool builds a 3-line preload library with the system C compiler (`cc`) that asks for it
when iree-run-module starts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

_PRELOAD_C = """#include <unistd.h>
#include <sys/syscall.h>
__attribute__((constructor)) static void mxc_amx_permission(void) { syscall(SYS_arch_prctl, 0x1023, 18); }
"""


def category(name: str) -> str:
    """The kind of a dispatch function, from its name (mxc's kernels and IREE's naming of dispatches)."""
    if name.startswith("mxc_amx_"):
        if not name.endswith("x3"):
            return "AMX quantized GEMMs"
        batched = name.removeprefix("mxc_amx_").split("_")[0].count("x") == 3
        return "AMX attention matmuls (split 3x3)" if batched else "AMX float32 matmuls (split 3x3)"
    if name.startswith("mxc_fma_softmax_"):
        return "FMA softmax (causal attention)"
    if name.startswith("mxc_fma_attn_"):
        return "FMA fused causal attention"
    if name.startswith("mxc_fma_") and name.endswith("_bf16"):  # operands exact in bf16: quantized layers
        return "bf16 dot GEMMs (quantized layers)"
    if name.startswith("mxc_fma_"):  # float32 operands: quantized layers decoded, lm_head, attention
        batched = name.removeprefix("mxc_fma_").split("_")[0].count("x") == 3
        return "FMA attention matmuls" if batched else "FMA GEMMs (layers, lm_head)"
    if "softmax" in name:
        return "softmax"
    if "matmul" in name or "contract" in name:
        return "float32 contractions (IREE)"
    if any(t in name for t in ("f4E2M1FN", "f8E", "f6E", "xi8", "bf16")):
        return "quantize / dequantize / split"
    return "other (norms, rotary, masks, copies)"


def _tool(name: str) -> str:
    from iree._runtime import libs

    return os.path.join(libs.library_path, name)


def profile(out: Path, function: str = "main", threads: int = 2) -> list[dict]:
    """[{name, total_ms, calls}] of one run of `function`, from IREE's profiler."""
    import numpy as np
    import torch

    manifest = json.loads((out / "manifest.json").read_text())
    inputs = torch.load(out / "inputs.pt")
    with tempfile.TemporaryDirectory(prefix="mxc-profile-") as tmp:
        tmp = Path(tmp)
        args = [_tool("iree-run-module"), f"--module={out / 'model.vmfb'}",
                f"--parameters=model={out / 'model.irpa'}", "--device=local-task",
                f"--task_topology_max_group_count={threads}", f"--function={function}", "--output=-",
                "--device_profiling_mode=host-execution", f"--device_profiling_output={tmp / 'p.ireeprof'}"]
        for i, x in enumerate(inputs):
            np.save(tmp / f"in{i}.npy", x.numpy())
            args.append(f"--input=@{tmp / f'in{i}.npy'}")
        env = dict(os.environ)
        if manifest.get("options", {}).get("contraction") == "amx":
            cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
            if cc is None:
                raise SystemExit("profile_cpu: an --contraction amx artifact needs a C compiler (cc) to give "
                                 "iree-run-module the AMX permission; install one or profile a decomposed build")
            (tmp / "amx.c").write_text(_PRELOAD_C)
            subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(tmp / "amx.so"), str(tmp / "amx.c")], check=True)
            env["LD_PRELOAD"] = f"{tmp / 'amx.so'} {env.get('LD_PRELOAD', '')}".strip()
        run = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        if run.returncode != 0:
            raise SystemExit(f"profile_cpu: iree-run-module failed ({run.returncode}): {run.stderr[-2000:]}")
        stats = subprocess.run([_tool("iree-profile"), "statistics", "--format=jsonl", str(tmp / "p.ireeprof")],
                               capture_output=True, text=True, check=True).stdout
    rows = []
    for line in stats.splitlines():
        r = json.loads(line)
        if r.get("row_type") == "host_execution_function" and r.get("function_name"):
            rows.append({"name": r["function_name"], "total_ms": r["total_duration_ns"] / 1e6,
                         "calls": r["sample_count"]})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="an artifact directory (mxc compile -o OUT)")
    p.add_argument("--function", default="main")
    p.add_argument("--threads", type=int, default=2, help="IREE task workers (default 2)")
    p.add_argument("--top", type=int, default=15)
    a = p.parse_args(argv)
    rows = profile(a.out, a.function, a.threads)
    total = sum(r["total_ms"] for r in rows)
    by_kind = defaultdict(float)
    for r in rows:
        by_kind[category(r["name"])] += r["total_ms"]
    print(f"{a.out}: {len(rows)} dispatch functions, {total:.1f} ms in dispatches (one run of {a.function}, "
          f"{a.threads} workers)")
    for kind, ms in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        print(f"  {kind:40s} {ms:9.1f} ms  {100 * ms / total:5.1f} %")
    print(f"slowest {a.top} (summed over calls):")
    for r in sorted(rows, key=lambda r: -r["total_ms"])[:a.top]:
        print(f"  {r['total_ms']:9.2f} ms  x{r['calls']:<4d} {r['name']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

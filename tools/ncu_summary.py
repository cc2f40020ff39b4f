"""Where a `--generate` artifact's decode step goes on the GPU, from an Nsight Compute CSV (not a test).

Reads `ncu --csv --page raw --metrics gpu__time_duration.sum` over a run of `bench_generate --decode-steps
N` (the prefill then N chained `decode` calls) and prints, per step, the kernel time by kind: mxc's own
kernels by their kind (`mxc_dec_...` -> dec), IREE's dispatches by what their name says they do
(matmul, reduction, elementwise...). The step's kernels are those from the first dispatch IREE named
after `decode` on; their totals are divided by N (`--prefill`: the kernels before them, the prefill's).

    ncu --clock-control none --metrics gpu__time_duration.sum --csv --page raw \\
        python -m mxc.tools.bench_generate OUT --device cuda --decode-steps 4 > ncu.csv
    python -m mxc.tools.ncu_summary ncu.csv --steps 4
"""

from __future__ import annotations

import argparse
import csv
import io
import re
import sys
from collections import defaultdict

_IREE_KINDS = ("attention", "matmul", "batch_matmul", "generic", "reduction", "elementwise", "transpose",
               "softmax", "slow_memcpy", "scatter", "gather", "argmax", "copy", "fill")


def kernel_kind(name: str) -> str:
    """A short kind for a kernel name: `dec`, `dsum`... for mxc's kernels, `iree:<op>` for IREE's."""
    m = re.search(r"mxc_([a-z0-9]+)_", name)
    if m:
        return m.group(1)
    low = name.lower()
    for k in _IREE_KINDS:
        if k in low:
            return "iree:" + k
    return "other:" + name.split("(")[0][:40]


def read_rows(text: str) -> list[tuple[str, float]]:
    """(kernel name, µs) per launch, in launch order, from ncu's raw CSV (its units row skipped)."""
    start = text.find('"ID"')
    if start < 0:
        raise SystemExit("no ncu CSV table in the input (was ncu run with --csv --page raw?)")
    rows = list(csv.DictReader(io.StringIO(text[start:])))
    out = []
    for r in rows:
        t = r.get("gpu__time_duration.sum", "")
        try:
            v = float(t.replace(",", ""))
        except ValueError:  # the units row
            continue
        out.append((r["Kernel Name"], v / 1e3))  # ns -> µs
    return out


def summarize(rows: list[tuple[str, float]], steps: int, key=kernel_kind,
              prefill: bool = False) -> dict[str, tuple[float, float]]:
    """key(name) -> (launches per step, µs per step) over the kernels from the first `decode` dispatch on
    (`prefill`: the kernels before it, the prefill's, with steps = 1)."""
    first = next((i for i, (n, _) in enumerate(rows) if n.startswith("decode")), None)
    if first is None:
        raise SystemExit("no kernel named decode... in the profile: was it a --generate artifact's run?")
    acc: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for name, us in (rows[:first] if prefill else rows[first:]):
        a = acc[key(name)]
        a[0] += 1
        a[1] += us
    return {k: (v[0] / steps, v[1] / steps) for k, v in sorted(acc.items(), key=lambda kv: -kv[1][1])}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mxc.tools.ncu_summary", description=__doc__.splitlines()[0])
    p.add_argument("csv")
    p.add_argument("--steps", type=int, required=True, help="the decode steps the profiled run took")
    p.add_argument("--by-name", action="store_true", help="one row per kernel name instead of per kind")
    p.add_argument("--prefill", action="store_true", help="the prefill's kernels (before the first decode) instead")
    a = p.parse_args(argv)
    rows = read_rows(open(a.csv).read())
    s = summarize(rows, 1 if a.prefill else a.steps, (lambda n: n.split("(")[0][:60]) if a.by_name else kernel_kind,
                  a.prefill)
    total_n = sum(v[0] for v in s.values())
    total_t = sum(v[1] for v in s.values())
    print(f"{'kind':28s} {'launches/step':>14s} {'µs/step':>9s} {'share':>6s}")
    for k, (n, t) in s.items():
        print(f"{k:28s} {n:14.1f} {t:9.1f} {t / total_t:6.1%}")
    print(f"{'total':28s} {total_n:14.1f} {total_t:9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

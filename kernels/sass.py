"""A cubin's SASS per kernel (nvdisasm), and whether two cubins hold the same code for the kernels they share.

    python -m mxc.kernels.sass OLD.cubin NEW.cubin

compares kernel by kernel, after renumbering the labels and the compiler's internal function names (which
shift when kernels are added to or removed from the library): what a change that should not touch the other
kernels (removing some, a refactor of the C++) is checked with, so that the GPU checks of OLD's kernels hold
for NEW's. Exit status 1 where a shared kernel differs.

    python -m mxc.kernels.sass tile CUBIN [NAME-REGEX]

counts the instructions a `dec1b` consumer warp issues per fragment tile (16 rows x 64 K) on the common path
(`tile_path`), per kernel whose name matches (default `dec1b`), and their HMUL2 (the bf16 scale multiplies).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path


def nvdisasm_path() -> str | None:
    """nvdisasm from the nvidia-cuda-nvdisasm wheel (the test extra), else from PATH."""
    try:
        import nvidia

        for root in nvidia.__path__:
            hits = sorted(Path(root).glob("cu*/bin/nvdisasm"))
            if hits:
                return str(hits[0])
    except ImportError:
        pass
    return shutil.which("nvdisasm")


def functions(sass: str) -> dict[str, str]:
    """nvdisasm's output split per kernel."""
    parts = re.split(r"\n\s*\.text\.(\w+):", sass)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def normalized(code: str) -> str:
    """A kernel's SASS (a `functions` entry) with its labels and internal function names numbered in order
    of appearance, and cut where the next section begins (nvdisasm's banner and directives of the kernel
    that follows): equal for the same code whatever else the cubin holds."""
    seen: dict[str, int] = {}
    rep = lambda m: f"L{seen.setdefault(m.group(0), len(seen))}"  # noqa: E731
    lines = []
    for ln in code.splitlines():
        if ln.lstrip().startswith(("//---", ".section")):
            break
        lines.append(re.sub(r"\.L_x_\d+|\$__internal_\d+_", rep, ln))
    return "\n".join(lines)


def disassemble(cubin: Path) -> dict[str, str]:
    tool = nvdisasm_path()
    if tool is None:
        raise SystemExit("nvdisasm not found (pip install nvidia-cuda-nvdisasm)")
    return functions(subprocess.run([tool, str(cubin)], capture_output=True, text=True, check=True).stdout)


def compare(old: dict[str, str], new: dict[str, str]) -> tuple[list[str], list[str], list[str]]:
    """(kernels whose code differs, kernels only in old, kernels only in new)."""
    differ = sorted(k for k in old.keys() & new.keys() if normalized(old[k]) != normalized(new[k]))
    return differ, sorted(old.keys() - new.keys()), sorted(new.keys() - old.keys())


# A predicated bf16 multiply (`@P0 HMUL2...`, `@!P1 HMUL2...`): issued whether or not its predicate holds.
PREDICATED_HMUL2 = re.compile(r"@!?P\d HMUL2")


def _instructions(code: str) -> list[str]:
    """A kernel's SASS (a `functions` entry) as its instructions and labels, one per line, addresses dropped."""
    out = []
    for ln in code.splitlines():
        m = re.match(r"\s+/\*[0-9a-f]{4,}\*/\s+(.*?)\s*;", ln)
        if m:
            out.append(m.group(1))
        elif re.match(r"\.L_x_\d+:", ln.strip()):
            out.append(ln.strip())
    return out


def tile_path(code: str) -> list[str]:
    """The instructions of one fragment tile of a dec1b consumer on its common path: from the tile's scale codes'
    load (the first LDS.U16) to its fourth HMMA, stepping over the block that a VOTE's branch skips (the E8M0
    decodes' `two` case: scales bf16 cannot hold), labels and convergence markers (BSSY / BSYNC) not counted.
    Raises ValueError where the kernel has no such tile."""
    ins = _instructions(code)
    start = next((i for i, t in enumerate(ins) if t.startswith("LDS.U16")), None)
    if start is None:
        raise ValueError("no LDS.U16 (a fragment tile's scale codes) in the kernel")
    out: list[str] = []
    skip, hmma = None, 0
    for t in ins[start:]:
        if skip:
            skip = None if t == f"{skip}:" else skip
            continue
        if t.startswith((".L_x_", "BSSY", "BSYNC")):
            continue
        out.append(t)
        m = re.match(r"@!P\d BRA `\((\.L_x_\d+)\)", t)
        if m and any(x.startswith("VOTE") for x in out[-4:]):
            skip = m.group(1)
        hmma += t.startswith("HMMA")
        if hmma == 4:
            return out
    raise ValueError("fewer than 4 HMMA after the first LDS.U16")


def tile_main(argv: list[str]) -> int:
    funcs = disassemble(Path(argv[0]))
    pat = re.compile(argv[1] if len(argv) > 1 else "dec1b")
    for name in sorted(n for n in funcs if pat.search(n)):
        try:
            path = tile_path(funcs[name])
        except ValueError as e:
            print(f"{name}: {e}")
            continue
        pred = sum(bool(PREDICATED_HMUL2.match(t)) for t in path)
        mul = sum(t.startswith("HMUL2") for t in path) + pred
        print(f"{name}: {len(path)} instructions per fragment tile, {mul} HMUL2 ({pred} predicated)")
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) in (2, 3) and argv[0] == "tile":
        return tile_main(argv[1:])
    if len(argv) != 2:
        print(__doc__)
        return 2
    old, new = (disassemble(Path(p)) for p in argv)
    differ, gone, added = compare(old, new)
    print(f"{len(old.keys() & new.keys())} kernels in both: {len(differ)} differ" + (f" ({', '.join(differ)})" if differ else ""))
    print(f"only in {argv[0]}: {len(gone)}" + (f" ({', '.join(gone)})" if gone else ""))
    print(f"only in {argv[1]}: {len(added)}" + (f" ({', '.join(added)})" if added else ""))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())

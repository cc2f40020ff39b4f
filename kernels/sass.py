"""A cubin's SASS per kernel (nvdisasm), and whether two cubins hold the same code for the kernels they share.

    python -m mxc.kernels.sass OLD.cubin NEW.cubin

compares kernel by kernel, after renumbering the labels and the compiler's internal function names (which
shift when kernels are added to or removed from the library): what a change that should not touch the other
kernels (removing some, a refactor of the C++) is checked with, so that the GPU checks of OLD's kernels hold
for NEW's. Exit status 1 where a shared kernel differs.
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


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
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

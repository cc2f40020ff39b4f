"""Prove that a refactor left mxc's artifacts bit-identical.

    python -m mxc.tools.check_equivalence --base REV [--examples ...] [--formats ...] [--jobs N] [--cache DIR]

For every example x format x mode (weights+activations, --weights-only) this compiles the model with
`--target cpu` twice: once with the code of commit REV (a detached `git worktree` under the cache dir)
and once with the current checkout (the working tree, uncommitted edits included). Each side runs from
its own package farm, DIR/.../mxcpkg/mxc, built from that side's own `[tool.setuptools.package-dir]`,
with the editable install's import hook switched off, so `import mxc` cannot mix the two trees.

A case is identical when
  * model.irpa is byte-identical, or else both archives hold the same parameter names with the same
    bytes per name (only the archive's layout differs), and
  * running both artifacts on CPU on their example inputs gives outputs that are torch.equal
    (bitwise equal where both hold NaNs), same dtypes and shapes.
The base side's artifacts and outputs are cached by (REV, example, format, mode), so a rerun only
recompiles the current checkout. Exit status 1 when any case differs or fails.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from mxc.numerics.formats import FORMATS as NUMERICS_FORMATS

HEAD_ROOT = Path(__file__).resolve().parents[1]
FORMATS = tuple(NUMERICS_FORMATS)  # the checkout's format table (a format new here fails on the base side)
MODES = {"w+a": [], "weights-only": ["--weights-only"]}

# The child process: drop the editable install's finder, check that mxc comes from the farm, then
# either run the CLI (`compile ...`) or run an artifact and save its outputs (`outputs ART FILE`).
CHILD = """
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "Editable" not in getattr(f, "__name__", "")]
farm = sys.argv.pop(1)
import mxc
assert mxc.__file__.startswith(farm), f"mxc imported from {mxc.__file__}, not from the farm {farm}"
if sys.argv[1] == "outputs":
    import torch
    from mxc.runtime.artifact import load
    art = load(sys.argv[2])
    torch.save(art(*art.example_inputs()), sys.argv[3])
else:
    from mxc.tools.mxc import main
    sys.exit(main(sys.argv[1:]))
"""


class Side:
    """One source tree (base worktree or current checkout), its package farm and its work dir."""

    def __init__(self, name: str, root: Path, work: Path, cached: bool):
        self.name, self.root, self.work, self.cached = name, root, work, cached
        self.farm = work / "mxcpkg"
        build_farm(root, self.farm)

    def python(self, *args: str, cwd: Path) -> None:
        env = {**_environ(), "PYTHONPATH": str(self.farm)}
        p = subprocess.run([sys.executable, "-P", "-c", CHILD, str(self.farm), *args], cwd=cwd, env=env,
                           capture_output=True, text=True)
        if p.returncode != 0:
            lines = (p.stderr or p.stdout).strip().splitlines() or [f"exit {p.returncode}"]
            raise RuntimeError(f"{self.name}: {args[0]} failed: {lines[-1]}")

    def build(self, example: str, fmt: str, mode: str) -> Path:
        """Compile and run one case (reusing a cached result); returns the case dir."""
        case = self.work / example / fmt / mode
        if self.cached and (case / "done").exists():
            return case
        shutil.rmtree(case, ignore_errors=True)
        case.mkdir(parents=True)
        model = self.root / "examples" / f"{example}.py"
        self.python("compile", str(model), "-o", str(case / "art"), "--format", fmt, *MODES[mode],
                    "--target", "cpu", "-q", cwd=case)
        self.python("outputs", str(case / "art"), str(case / "outputs.pt"), cwd=case)
        (case / "done").touch()
        return case


def _environ() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MXC_DUMP_DIR",
                                                              "MXC_PRINT_IR_AFTER_ALL")}


def build_farm(root: Path, farm: Path) -> None:
    """farm/mxc/: the files of root's `mxc` package dir, and one symlink per sub-package dir."""
    table = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    shutil.rmtree(farm, ignore_errors=True)
    pkg = farm / "mxc"
    pkg.mkdir(parents=True)
    for f in (root / table["mxc"]).iterdir():
        if f.is_file():
            (pkg / f.name).symlink_to(f.resolve())
    for name, rel in table.items():
        parts = name.split(".")
        if name == "mxc":
            continue
        if parts[0] != "mxc" or len(parts) != 2:
            raise SystemExit(f"{root}/pyproject.toml: package-dir entry {name!r} is not mxc.<name>; "
                             f"extend build_farm for it")
        (pkg / parts[1]).symlink_to((root / rel).resolve(), target_is_directory=True)


def base_worktree(rev: str, cache: Path) -> tuple[str, Path]:
    """The full sha of rev and a detached worktree of it under cache/<sha>/src (created once)."""
    git = ["git", "-C", str(HEAD_ROOT)]
    sha = subprocess.run([*git, "rev-parse", "--verify", f"{rev}^{{commit}}"], capture_output=True,
                         text=True, check=True).stdout.strip()
    src = cache / sha / "src"
    if not (src / ".git").exists():
        subprocess.run([*git, "worktree", "prune"], check=True)
        subprocess.run([*git, "worktree", "add", "--detach", str(src), sha], check=True, capture_output=True)
    return sha, src


def irpa_params(path: Path) -> dict[str, bytes]:
    from iree import runtime as rt

    index = rt.ParameterIndex()
    index.load(str(path))
    return {key: bytes(e.file_view) if e.is_file else (e.splat_pattern, e.length) for key, e in index.items()}


def compare_irpa(a: Path, b: Path) -> str | None:
    """None when equal; else what differs."""
    if a.read_bytes() == b.read_bytes():
        return None
    pa, pb = irpa_params(a), irpa_params(b)
    only_a, only_b = sorted(pa.keys() - pb.keys()), sorted(pb.keys() - pa.keys())
    changed = sorted(k for k in pa.keys() & pb.keys() if pa[k] != pb[k])
    if not (only_a or only_b or changed):
        return None  # the same parameters, laid out differently in the archive
    parts = [f"only in base: {only_a}" * bool(only_a), f"only in head: {only_b}" * bool(only_b),
             f"bytes differ: {changed}" * bool(changed)]
    return "irpa differs (" + "; ".join(p for p in parts if p) + ")"


def same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return torch.equal(a, b) or torch.equal(a.reshape(-1).view(torch.uint8), b.reshape(-1).view(torch.uint8))


def compare_outputs(a: Path, b: Path) -> str | None:
    oa, ob = torch.load(a), torch.load(b)
    if len(oa) != len(ob):
        return f"outputs differ ({len(oa)} vs {len(ob)} outputs)"
    bad = [i for i, (x, y) in enumerate(zip(oa, ob)) if not same_tensor(x, y)]
    return f"outputs differ (output {bad})" if bad else None


def check(base: Side, head: Side, example: str, fmt: str, mode: str) -> str | None:
    """None when the case is identical; else what differs or failed."""
    try:
        cb, ch = base.build(example, fmt, mode), head.build(example, fmt, mode)
    except RuntimeError as e:
        return str(e)
    problems = [compare_irpa(cb / "art" / "model.irpa", ch / "art" / "model.irpa"),
                compare_outputs(cb / "outputs.pt", ch / "outputs.pt")]
    return ", ".join(p for p in problems if p) or None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="check_equivalence", description=__doc__.splitlines()[0])
    p.add_argument("--base", default="b768579", help="the commit to compare the current checkout with")
    p.add_argument("--examples", nargs="+", default=["mlp", "cnn", "llama"], help="also: llama_100m")
    p.add_argument("--formats", nargs="+", default=list(FORMATS), choices=FORMATS, metavar="FORMAT")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "mxc-equiv")
    a = p.parse_args(argv)
    cache = a.cache.resolve()
    sha, src = base_worktree(a.base, cache)
    base = Side(f"base {sha[:9]}", src, cache / sha, cached=True)
    head = Side("head", HEAD_ROOT, cache / "head", cached=False)
    cases = [(e, f, m) for e in a.examples for f in a.formats for m in MODES]
    lock = threading.Lock()

    def run(case: tuple[str, str, str]) -> bool:
        problem = check(base, head, *case)
        with lock:
            print(" ".join(case) + ": " + (problem or "irpa equal, outputs equal"), flush=True)
        return problem is None

    with ThreadPoolExecutor(max_workers=a.jobs) as pool:
        ok = sum(pool.map(run, cases))
    print(f"{ok} of {len(cases)} cases identical (base {sha[:9]} vs the current checkout)")
    return 0 if ok == len(cases) else 1


if __name__ == "__main__":
    sys.exit(main())

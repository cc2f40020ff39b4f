import os
import sys
from pathlib import Path

import pytest

import mxc  # noqa: F401 -- first: it takes the checkout's root off sys.path (its kernels/ would shadow a package)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
os.environ.setdefault("PYTHONWARNINGS", "ignore")

# A model torch.export cannot capture: data-dependent control flow (test_errors, test_reliability).
BRANCHY = """
import torch
class Branchy(torch.nn.Module):
    def forward(self, x):
        if x.sum() > 0:
            return x * 2
        return x
def get_model(): return Branchy()
def get_example_inputs(): return (torch.randn(4),)
"""


@pytest.fixture
def write_model(tmp_path):
    """Write a model.py from source text and return its path."""

    def write(source: str, name: str = "model.py") -> Path:
        path = tmp_path / name
        path.write_text(source)
        return path

    return write


def run_mxc(*args) -> tuple[int, str, str]:
    """Run the mxc CLI in this process, as `mxc ARGS...` would: (exit code, stdout, stderr). In-process saves
    each call the interpreter's start and the imports of torch, torch-mlir and IREE (~3 s, most of a small
    model's compile); run_mxc_subprocess where a fresh process matters (memory of a large model, signals),
    and MXC_TEST_SUBPROCESS=1 runs every call in a subprocess."""
    import contextlib
    import io

    if os.environ.get("MXC_TEST_SUBPROCESS") == "1":
        return run_mxc_subprocess(*args)
    from mxc.tools.mxc import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in args])
        except SystemExit as e:  # argparse's usage errors, --help
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return rc, out.getvalue(), err.getvalue()


def run_mxc_subprocess(*args) -> tuple[int, str, str]:
    """Run the mxc CLI in a subprocess: (exit code, stdout, stderr)."""
    import subprocess

    p = subprocess.run([sys.executable, "-m", "mxc.tools.mxc", *map(str, args)], capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr

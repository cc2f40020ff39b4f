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
    """Run the mxc CLI in a subprocess: (exit code, stdout, stderr)."""
    import subprocess

    p = subprocess.run([sys.executable, "-m", "mxc.tools.mxc", *map(str, args)], capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr

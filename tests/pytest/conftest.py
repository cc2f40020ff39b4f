import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
os.environ.setdefault("PYTHONWARNINGS", "ignore")


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

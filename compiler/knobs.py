"""Environment knobs, declared once; the command line wins over the environment."""

import os


def dump_dir() -> str | None:
    """MXC_DUMP_DIR: write every phase's IR there (as --dump-compilation-phases-to)."""
    return os.environ.get("MXC_DUMP_DIR") or None


def print_ir_after_all() -> bool:
    """MXC_PRINT_IR_AFTER_ALL=1: print the IR after every pass (as --mlir-print-ir-after-all)."""
    return os.environ.get("MXC_PRINT_IR_AFTER_ALL", "") not in ("", "0")

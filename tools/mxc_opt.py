"""`mxc-opt`: an mlir-opt-like driver over mxc's passes, for lit tests and debugging.

    mxc-opt FILE -p 'convert-torch-to-mxq,mxq-select-formats{format=nvfp4}'
    mxc-opt FILE --split-input-file --verify-diagnostics

`--verify-diagnostics` checks `// expected-error {{...}}` and
`// expected-error @+N {{...}}` / `@-N` annotations against the diagnostics of
parsing, verification and the passes, as mlir-opt does.
"""

from __future__ import annotations

import argparse
import re
import sys

SPLIT = re.compile(r"^// -----.*$", re.MULTILINE)
EXPECT = re.compile(r"//\s*expected-(error|warning|note)\s*(@[+-]\d+)?\s*\{\{(.*?)\}\}")
LINE = re.compile(r":(\d+):\d+\)?$")


def _chunks(text: str, split: bool) -> list[str]:
    """Split the input, padding each chunk with newlines so line numbers stay those of the file."""
    if not split:
        return [text]
    out, line = [], 0
    for part in SPLIT.split(text):
        out.append("\n" * line + part)
        line += part.count("\n")
    return out


def _expected(chunk: str) -> list[tuple[int, str]]:
    found = []
    for i, line in enumerate(chunk.splitlines(), start=1):
        for m in EXPECT.finditer(line):
            offset = int(m.group(2)[1:]) if m.group(2) else 0
            found.append((i + offset, m.group(3)))
    return found


def _diag_line(diag) -> int:
    m = LINE.search(str(diag.location).rstrip(")") + ")")
    return int(m.group(1)) if m else -1


def _process(chunk: str, passes, verify: bool, out) -> bool:
    from torch_mlir import ir

    from mxc.compiler.context import make_context
    from mxc.passes import run_pass

    ctx = make_context()
    diags: list[tuple[int, str]] = []
    with ctx, ir.Location.unknown():
        try:
            module = ir.Module.parse(chunk)
            for p in passes:
                run_pass(p, module)
                module.operation.verify()
        except ir.MLIRError as e:
            diags = [(_diag_line(d), d.message) for d in e.error_diagnostics] or [(-1, str(e))]
            module = None
        except Exception as e:  # a pass raised: report it like a diagnostic without a line
            diags = [(-1, f"{type(e).__name__}: {e}")]
            module = None
        if not verify:
            if diags:
                for line, msg in diags:
                    print(f"<input>:{line}: error: {msg}", file=sys.stderr)
                return False
            print(module.operation.get_asm(large_elements_limit=16), file=out)
            return True
        return _check(chunk, diags)


def _check(chunk: str, diags: list[tuple[int, str]]) -> bool:
    ok = True
    expected = _expected(chunk)
    for line, text in expected:
        if not any(dl == line and text in msg for dl, msg in diags):
            print(f"<input>:{line}: expected error \"{text}\" was not produced", file=sys.stderr)
            ok = False
    for dl, msg in diags:
        if not any(dl == line and text in msg for line, text in expected):
            print(f"<input>:{dl}: unexpected error: {msg}", file=sys.stderr)
            ok = False
    return ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="mxc-opt", description="run mxc passes on MLIR")
    parser.add_argument("input", nargs="?", default="-", help="input .mlir file (default: stdin)")
    parser.add_argument("-p", "--pass-pipeline", default="", help="e.g. 'mxq-select-formats{format=nvfp4},mxq-fuse'")
    parser.add_argument("--split-input-file", action="store_true")
    parser.add_argument("--verify-diagnostics", action="store_true")
    parser.add_argument("--list-passes", action="store_true")
    a = parser.parse_args(argv)

    from mxc.passes import REGISTRY, PassOptionError, parse

    if a.list_passes:
        for name in REGISTRY.keys():
            doc = (REGISTRY[name].__doc__ or "").strip().splitlines()[0]
            print(f"{name:24s} {doc}")
        return 0
    try:
        passes = parse(a.pass_pipeline) if a.pass_pipeline else []
    except PassOptionError as e:
        print(f"mxc-opt: error: {e}", file=sys.stderr)
        return 2
    try:
        text = sys.stdin.read() if a.input == "-" else open(a.input).read()
    except OSError as e:
        print(f"mxc-opt: error: {a.input}: {e.strerror.lower()}", file=sys.stderr)
        return 2
    ok = True
    for i, chunk in enumerate(_chunks(text, a.split_input_file)):
        if i and not a.verify_diagnostics:
            print("// -----")
        ok = _process(chunk, passes, a.verify_diagnostics, sys.stdout) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

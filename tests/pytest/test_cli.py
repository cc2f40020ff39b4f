"""CLI behaviour: phase dumps, --compile-to, IR printing, inspect, formats, mxc-opt errors."""

import json
import subprocess
import sys

from conftest import EXAMPLES, run_mxc


def test_dump_phases_and_compile_to(tmp_path):
    dump = tmp_path / "ir"
    rc, out, err = run_mxc("compile", EXAMPLES / "mlp.py", "-o", tmp_path / "o", "--format", "nvfp4",
                           "--dump-compilation-phases-to", dump, "--compile-to", "lower-cpu")
    assert rc == 0, err
    assert "stopped after phase lower-cpu" in out and "[6/8] lower-cpu" in err
    names = sorted(p.name for p in dump.iterdir())
    assert names == [f"mlp.{i}.{p}.mlir" for i, p in
                     enumerate(["import", "mxq", "formats", "quantize-weights", "fuse", "lower-cpu"])]
    assert '"mxq.fused_matmul"' in (dump / "mlp.4.fuse.mlir").read_text()
    assert not (tmp_path / "o" / "model.vmfb").exists()
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["compiled_to"] == "lower-cpu" and len(manifest["layers"]) == 3


def test_print_ir_after_all(tmp_path):
    rc, _, err = run_mxc("compile", EXAMPLES / "mlp.py", "-o", tmp_path, "--mlir-print-ir-after-all",
                         "--compile-to", "fuse", "-q")
    assert rc == 0
    assert "// -----// IR Dump After ConvertTorchToMxq (convert-torch-to-mxq) //----- //" in err
    assert "// -----// IR Dump After MxqFuse (mxq-fuse) //----- //" in err


def test_unknown_phase(tmp_path):
    rc, _, err = run_mxc("compile", EXAMPLES / "mlp.py", "-o", tmp_path, "--compile-to", "nope")
    assert rc == 2 and "unknown phase 'nope'" in err and "lower-cpu" in err


def test_inspect_and_formats(tmp_path):
    rc, _, err = run_mxc("compile", EXAMPLES / "mlp.py", "-o", tmp_path, "--format", "mxfp8", "-q")
    assert rc == 0, err
    rc, out, _ = run_mxc("inspect", tmp_path)
    assert rc == 0 and "fc1" in out and "mxfp8" in out and "8.25" in out
    rc, out, _ = run_mxc("formats")
    assert rc == 0 and "nvfp4" in out and "4.500" in out


def test_mxc_opt_rejects_unknown_pass_and_option():
    cmd = [sys.executable, "-m", "mxc.tools.mxc_opt", "-", "-p"]
    p = subprocess.run(cmd + ["mxq-frobnicate"], input="", capture_output=True, text=True)
    assert p.returncode == 2 and "unknown pass 'mxq-frobnicate'" in p.stderr
    p = subprocess.run(cmd + ["mxq-select-formats{colour=red}"], input="", capture_output=True, text=True)
    assert p.returncode == 2 and "has no option 'colour'" in p.stderr and "weights-only" in p.stderr

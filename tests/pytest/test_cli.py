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
    assert "stopped after phase lower-cpu" in out and "[7/10] lower-cpu" in err
    names = sorted(p.name for p in dump.iterdir())
    assert names == [f"mlp.{i}.{p}.mlir" for i, p in
                     enumerate(["import", "mxq", "formats", "calibrate", "quantize-weights", "fuse", "lower-cpu"])]
    assert '"mxq.fused_matmul"' in (dump / "mlp.5.fuse.mlir").read_text()
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
    rc, _, err = run_mxc("compile", EXAMPLES / "mlp.py", "-o", tmp_path, "--format", "mxfp8", "--act-format",
                         "mxfp8_e5m2", "--scale-rule", "rceil", "-q")
    assert rc == 0, err
    rc, out, _ = run_mxc("inspect", tmp_path)
    lines = out.splitlines()
    assert rc == 0 and lines[1] == "inputs [8, 256] float32"
    assert lines[2].split()[:6] == ["layer", "op", "weights", "acts", "options", "bits/w"]
    rows = {line.split()[0]: line.split() for line in lines[4:lines.index("")]}
    assert list(rows) == ["fc1", "fc2", "head"]
    # layer, op, weights, acts, options, bits/w, SQNR, bytes (2 words), decision
    assert rows["fc1"][1:6] == ["linear", "mxfp8", "mxfp8_e5m2", "scale_rule=rceil", "8.25"]
    assert rows["fc1"][7:9] == ["132.0", "KiB"]  # 512 x 256 E4M3 codes + 512 x 8 scales
    assert " ".join(rows["fc1"][9:]) == ("mxfp8{scale_rule=rceil} x mxfp8_e5m2{scale_rule=rceil} activations "
                                         "(default)")
    assert lines[lines.index("") + 1].startswith("model.irpa ")
    rc, out, _ = run_mxc("formats")
    nvfp4 = next(line.split() for line in out.splitlines() if line.startswith("nvfp4 "))
    assert rc == 0 and nvfp4[1:5] == ["e2m1", "16", "ue4m3", "4.500"]


def test_mxc_opt_rejects_unknown_pass_and_option():
    cmd = [sys.executable, "-m", "mxc.tools.mxc_opt", "-", "-p"]
    p = subprocess.run(cmd + ["mxq-frobnicate"], input="", capture_output=True, text=True)
    assert p.returncode == 2 and "unknown pass 'mxq-frobnicate'" in p.stderr
    p = subprocess.run(cmd + ["mxq-select-formats{colour=red}"], input="", capture_output=True, text=True)
    assert p.returncode == 2 and "has no option 'colour'" in p.stderr and "weights-only" in p.stderr


def test_the_checkouts_directories_do_not_shadow_installed_packages():
    """Run from the checkout's root (`python -m` / `-c` put it on sys.path), `import mxc` takes the root off
    sys.path, so its kernels/, runtime/, tools/ ... are not top-level packages: transformers imports Hugging
    Face's `kernels` package where it is installed, and found the checkout's kernels/ instead."""
    from conftest import ROOT

    code = ("import importlib.util, sys, mxc; s = importlib.util.find_spec('kernels'); "
            "print(s.origin if s else None); print(mxc.__file__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    found, mxc_file = out.splitlines()
    assert found == "None" or not found.startswith(str(ROOT) + "/kernels"), found
    assert mxc_file.startswith(str(ROOT))

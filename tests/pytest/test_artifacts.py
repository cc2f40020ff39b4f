"""Artifacts are what they claim: the weights fingerprint, atomic output directories with hashed files,
--compare over every output (NaN is never a pass), and one-line errors for bad -o, Ctrl-C and bad files."""

import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys

import pytest
import torch

from conftest import EXAMPLES, run_mxc

TWO_HEADS = """
import torch
class M(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(64, 32)
        self.b = torch.nn.Linear(64, 16)
    def forward(self, x):
        return self.a(x), self.b(x)
def get_model():
    torch.manual_seed({seed})
    return M()
def get_example_inputs():
    torch.manual_seed(1)
    return (torch.randn(4, 64),)
"""


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    """examples/mlp.py compiled for the CPU (mxfp4 weights and activations): copy it before changing it."""
    out = tmp_path_factory.mktemp("mlp") / "out"
    rc, _, err = run_mxc("compile", EXAMPLES / "mlp.py", "-o", out, "-q")
    assert rc == 0, err
    return out


@pytest.fixture(scope="module")
def two_heads(tmp_path_factory):
    """A two-output model (seeded) compiled for the CPU: (model.py, artifact)."""
    where = tmp_path_factory.mktemp("two")
    model = where / "model.py"
    model.write_text(TWO_HEADS.replace("{seed}", "0"))
    rc, _, err = run_mxc("compile", model, "-o", where / "out", "-q")
    assert rc == 0, err
    return model, where / "out"


def _rehash(artifact, name):
    """Record `name`'s current sha256 in the manifest (to reach the checks behind the hash check)."""
    manifest = json.loads((artifact / "manifest.json").read_text())
    manifest["files"][name] = hashlib.sha256((artifact / name).read_bytes()).hexdigest()
    (artifact / "manifest.json").write_text(json.dumps(manifest))


def test_compare_refuses_other_weights(two_heads, tmp_path):
    """Item 2: model.py changed after compiling (or an unseeded get_model) is refused, saying why."""
    model, out = two_heads
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["weights_fingerprint"]) == 64
    edited = tmp_path / "out"
    shutil.copytree(out, edited)
    changed = tmp_path / "changed.py"
    changed.write_text(TWO_HEADS.replace("{seed}", "7"))  # the same model, other weights
    manifest["model"] = str(changed)
    (edited / "manifest.json").write_text(json.dumps(manifest))
    rc, out_text, err = run_mxc("run", edited, "--compare")
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "model.py changed since compiling" in err and "not deterministic" in err and "seed it" in err
    rc, _, err = run_mxc("run", out, "--compare")  # the unchanged model still compares
    assert rc == 0, err


def test_output_dir_replaced_whole_and_checked(mlp, tmp_path):
    """Item 4: a stale reference.pt or model.vmfb never survives a new compile; mixed files are refused."""
    out = tmp_path / "out"
    shutil.copytree(mlp, out)
    torch.save({"fake_quant": [torch.zeros(8, 64)], "eager": [torch.zeros(8, 64)]}, out / "reference.pt")
    rc, _, err = run_mxc("compile", EXAMPLES / "mlp.py", "-o", out, "--format", "mxfp8", "-q")
    assert rc == 0, err
    assert not (out / "reference.pt").exists()  # (a) the old cuda-sm90 reference is gone
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary directory left beside it
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(manifest["files"]) == ["inputs.pt", "model.irpa", "model.vmfb"]
    rc, _, err = run_mxc("run", out, "--compare")
    assert rc == 0, err
    # (c) a model.vmfb from another compile (mxfp4) in this mxfp8 artifact: refused
    mixed = tmp_path / "mixed"
    shutil.copytree(out, mixed)
    shutil.copyfile(mlp / "model.vmfb", mixed / "model.vmfb")
    rc, _, err = run_mxc("run", mixed)
    assert rc == 2 and "model.vmfb is corrupt or from another compile" in err
    # (b) --compile-to over an artifact leaves no old program to run
    rc, _, err = run_mxc("compile", EXAMPLES / "mlp.py", "-o", out, "--compile-to", "fuse", "-q")
    assert rc == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"]
    rc, _, err = run_mxc("run", out)
    assert rc == 2 and "compiled with --compile-to fuse" in err and "recompile without --compile-to" in err
    # a directory holding other files is not replaced
    (out / "notes.txt").write_text("mine")
    rc, _, err = run_mxc("compile", EXAMPLES / "mlp.py", "-o", out, "-q")
    assert rc == 2 and "holds files mxc did not write (notes.txt)" in err and (out / "notes.txt").exists()


def test_compare_checks_every_output_and_nan_fails(two_heads, mlp, tmp_path):
    """Item 6: every output is compared and reported; NaN where the reference is finite fails."""
    import mxc
    from mxc.runtime.compare import compare, errors

    _, out = two_heads
    rc, stdout, err = run_mxc("run", out, "--compare", "--json")
    assert rc == 0, err
    res = json.loads(stdout)
    assert [o["shape"] for o in res["outputs"]] == [[4, 32], [4, 16]]
    assert all(o["vs_reference"]["within_tolerance"] for o in res["outputs"])
    ref = res["vs_reference"]
    assert "source" not in ref and ref["output"] in (0, 1)
    # the rel-L2 rule (activations quantized) reports the rel-L2 bound it used, not the max-abs one
    worst = res["outputs"][ref["output"]]
    assert ref["tolerance"] == pytest.approx(0.25 * worst["reference_vs_torch"]["rel_l2_error"])
    assert ref["abs_tolerance"] < ref["tolerance"]

    art = mxc.load(out)
    inputs = art.example_inputs()
    y = art(*inputs)
    res = compare(art, [y[0], torch.full_like(y[1], math.nan)], inputs)  # second output all NaN
    assert not res["vs_reference"]["within_tolerance"] and res["vs_reference"]["output"] == 1
    assert res["outputs"][0]["vs_reference"]["within_tolerance"]
    bad = res["outputs"][1]["vs_reference"]
    assert bad["nonfinite_mismatches"] == y[1].numel() and bad["sqnr_db"] == -math.inf
    everything_nan = errors(torch.full((4,), math.nan), torch.full((4,), math.nan))
    assert not math.isinf(everything_nan["sqnr_db"]) and everything_nan["compared"] == 0
    inf_vs_finite = errors(torch.tensor([1.0, math.inf]), torch.tensor([1.0, 2.0]))
    assert inf_vs_finite["nonfinite_mismatches"] == 1 and inf_vs_finite["rel_l2_error"] == math.inf

    shutil.copytree(mlp, tmp_path / "mlp")
    art = mxc.load(tmp_path / "mlp")  # an all-NaN output never passes, even against an all-NaN reference
    art.manifest = {**art.manifest, "reference_outputs": "reference.pt"}
    nan = torch.full((8, 64), math.nan)
    torch.save({"fake_quant": [nan], "eager": [nan]}, art.path / "reference.pt")
    res = compare(art, [nan], art.example_inputs())
    assert not res["vs_reference"]["within_tolerance"] and "nothing to compare" in res["vs_reference"]["rule"]
    other = (torch.randn(8, 256, generator=torch.Generator().manual_seed(5)),)  # the stored outputs are not its
    assert compare(art, art(*other), other)["vs_reference"]["within_tolerance"]


# torch.export runs forward's Python, so the import phase lasts until Ctrl-C: the interrupt lands mid-compile
# on a loaded machine too (interrupting the MLP after "[2/" raced its last 1.5 s and lost under pytest -n 2).
SLOW = """
import time
import torch
class Slow(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(64, 64)
    def forward(self, x):
        time.sleep(60)
        return self.fc(x)
def get_model(): return Slow()
def get_example_inputs(): return (torch.randn(4, 64),)
"""


def test_bad_output_dir_interrupt_and_bad_files(mlp, tmp_path):
    """Item 8: -o checked before compiling; Ctrl-C prints one line, exits 130, leaves the old artifact whole;
    a manifest.json or inputs.pt of the wrong structure is a one-line error."""
    a_file = tmp_path / "file"
    a_file.write_text("")
    rc, _, err = run_mxc("compile", EXAMPLES / "mlp.py", "-o", a_file)
    assert rc == 2 and "is a file, not a directory" in err and "[1/" not in err  # no phase ran
    for under_file in (a_file / "out", a_file / "a" / "out"):  # an -o that cannot be created, as root too
        rc, _, err = run_mxc("compile", EXAMPLES / "mlp.py", "-o", under_file)
        expected = f"-o {under_file}: cannot create it, {a_file} is a file, not a directory; name another directory"
        assert rc == 2 and err == f"mxc: error: {expected}\n" and "[1/" not in err
    if os.geteuid() != 0:  # root writes anywhere: the -o under a file above covers the error path there
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        rc, _, err = run_mxc("compile", EXAMPLES / "mlp.py", "-o", ro)
        assert rc == 2 and "read-only" in err and "[1/" not in err

    out = tmp_path / "art"
    shutil.copytree(mlp, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    slow = tmp_path / "slow.py"
    slow.write_text(SLOW)
    p = subprocess.Popen([sys.executable, "-m", "mxc.tools.mxc", "compile", str(slow), "-o", str(out),
                          "--format", "nvfp4"], stderr=subprocess.PIPE, text=True,
                         # as a terminal would: SIGINT not ignored (a test run before this one in the same
                         # pytest worker can leave it ignored, and a child inherits that)
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = ""
    while "[1/" not in seen and p.poll() is None:  # interrupt once the compile is under way
        seen += p.stderr.read(1)
    for _ in range(12):  # a SIGINT that lands in torch.export's own machinery can be lost (seen under load): again
        p.send_signal(signal.SIGINT)
        try:
            p.wait(timeout=5)
            break
        except subprocess.TimeoutExpired:
            continue
    err = seen + p.stderr.read()
    assert p.wait(timeout=60) == 130 and "mxc: interrupted" in err and "Traceback" not in err, err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art", "file"] + (["ro"] if os.geteuid() else []) + [
        "slow.py"]

    broken = tmp_path / "broken"
    shutil.copytree(mlp, broken)
    manifest = json.loads((broken / "manifest.json").read_text())
    (broken / "manifest.json").write_text(json.dumps({**manifest, "layers": {"fc1": 1}}))
    rc, _, err = run_mxc("run", broken)
    assert rc == 2 and "manifest.json has the wrong structure" in err and "'layers'" in err
    assert len(err.strip().splitlines()) == 1
    (broken / "manifest.json").write_text(json.dumps(manifest))
    torch.save({"x": torch.zeros(1)}, broken / "inputs.pt")
    rc, _, err = run_mxc("run", broken)
    assert rc == 2 and "inputs.pt is corrupt or from another compile" in err
    _rehash(broken, "inputs.pt")
    rc, _, err = run_mxc("run", broken)
    assert rc == 2 and "inputs.pt has the wrong structure" in err and len(err.strip().splitlines()) == 1


def test_failing_compare_with_quantized_activations_points_at_layer_diff(mlp):
    """Item 3: a failure with quantized activations says how to find the flipped block."""
    import mxc
    from mxc.runtime.compare import compare

    art = mxc.load(mlp)
    inputs = art.example_inputs()
    outputs = art(*inputs)
    assert "hint" not in compare(art, outputs, inputs)  # passing: no hint
    res = compare(art, [outputs[0] + 1.0], inputs)
    assert not res["vs_reference"]["within_tolerance"]
    assert f"python -m mxc.tools.layer_diff {mlp}" in res["hint"]


TIES = """
import torch
def get_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Linear(64, 16))
def get_example_inputs():
    # the first block of 32: one 6.0 (MXFP4 scale 1) and E2M1 rounding ties (2.5, 3.5, 5.0, ...): the
    # program and the reference round them alike (RNE), float32 noise rounds each either way
    torch.manual_seed(1)
    x = torch.randn(4, 64)
    x[:, :32] = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, -2.5]).repeat(4, 4)  # one block of ties
    x[:, 0] = 6.0
    return (x,)
"""


@pytest.fixture(scope="module")
def ties(tmp_path_factory):
    """Inputs at MXFP4 rounding ties, MXFP4 weights and activations: float32 noise moves every output."""
    where = tmp_path_factory.mktemp("ties")
    (where / "model.py").write_text(TIES)
    rc, _, err = run_mxc("compile", where / "model.py", "-o", where / "out", "--format", "mxfp4", "-q")
    assert rc == 0, err
    return where / "out"


def test_flip_cascade_passes_as_such_and_a_bug_still_fails(ties, mlp):
    """Item 3: a compiled output that differs from the reference only by what float32 noise before the
    activation roundings does to it passes, saying it is a flip cascade; an error larger than that
    envelope fails, and a model whose roundings noise does not move keeps the strict check."""
    import mxc
    from mxc.runtime.compare import ENVELOPE_SEEDS, ENVELOPE_SIGMA, compare
    from mxc.runtime.reference import ActNoise, _flatten, fake_quant_module

    art = mxc.load(ties)
    inputs = art.example_inputs()
    outputs = art(*inputs)
    exact = compare(art, outputs, inputs)
    assert exact["vs_reference"]["within_tolerance"] and "flip_envelope" not in exact["vs_reference"]
    noise = ActNoise()
    gm = fake_quant_module(_load_model(art), inputs, art.manifest, noise)
    noise.reseed(ENVELOPE_SIGMA, 1000)  # another noise than the envelope's seeds: a program's other summation order
    with torch.no_grad():
        other = _flatten(gm(*inputs))
    assert (other[0] - outputs[0]).abs().max() > 0.01  # the stand-in for a flipped program really differs
    res = compare(art, other, inputs)["vs_reference"]
    assert res["within_tolerance"] and res["verdict"].startswith("flip cascade")
    assert len(res["flip_envelope"]["moves"]) == ENVELOPE_SEEDS and max(res["flip_envelope"]["moves"]) > 0.01
    bug = compare(art, [outputs[0] * 1.5], inputs)["vs_reference"]
    assert not bug["within_tolerance"] and "verdict" not in bug
    # a program that skipped its quantization: torch's own output, near torch and far from the reference
    from mxc.runtime.reference import eager_forward

    skipped = compare(art, eager_forward(_load_model(art), inputs), inputs)
    assert not skipped["vs_reference"]["within_tolerance"], skipped["vs_reference"]
    # the MLP's activations are nowhere near a tie: its envelope is ~0 and a 10% error fails
    art = mxc.load(mlp)
    inputs = art.example_inputs()
    res = compare(art, [art(*inputs)[0] * 1.1], inputs)["vs_reference"]
    assert not res["within_tolerance"] and max(res["flip_envelope"]["moves"]) < 1e-4


def _load_model(art):
    from mxc.compiler.frontend import load_model_file

    return load_model_file(art.manifest["model"]).model

"""Bad input gets a clear error (naming the file, layer or fix) and never silent garbage."""

import json

import pytest

from conftest import BRANCHY, EXAMPLES, run_mxc

LINEAR = """
import torch
class M(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear({k}, 16)
    def forward(self, x):
        return self.proj(x)
def get_model():
    torch.manual_seed(0)
    m = M()
{patch}
    return m
def get_example_inputs():
    torch.manual_seed(1)
    return (torch.randn(4, {k}),)
"""


def test_missing_functions(write_model, tmp_path):
    path = write_model("import torch\n")
    rc, _, err = run_mxc("compile", path, "-o", tmp_path / "o")
    assert rc == 2
    assert str(path) in err and "missing function get_model()" in err


def test_function_raises(write_model, tmp_path):
    path = write_model(LINEAR.format(k=32, patch="    raise RuntimeError('no weights here')"))
    rc, _, err = run_mxc("compile", path, "-o", tmp_path / "o")
    assert rc == 2 and "get_model() raised RuntimeError: no weights here" in err


def test_file_does_not_import(write_model, tmp_path):
    path = write_model("import torch\ndef get_model(:\n")
    rc, _, err = run_mxc("compile", path, "-o", tmp_path / "o")
    assert rc == 2 and "importing the file failed" in err and "SyntaxError" in err


def test_missing_file(tmp_path):
    rc, _, err = run_mxc("compile", tmp_path / "nope.py", "-o", tmp_path / "o")
    assert rc == 2 and "no such file" in err


def test_export_failure_names_module(write_model, tmp_path):
    rc, _, err = run_mxc("compile", write_model(BRANCHY), "-o", tmp_path / "o")
    assert rc == 2 and "torch.export failed for Branchy" in err


DEPTHWISE = """
import torch
class M(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.dw = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.fc = torch.nn.Linear(8 * 4 * 4, 16)
    def forward(self, x):
        return self.fc(self.dw(x).flatten(1))
def get_model():
    torch.manual_seed(0)
    return M()
def get_example_inputs():
    torch.manual_seed(1)
    return (torch.randn(2, 8, 4, 4),)
"""


def test_unquantizable_op_is_listed(write_model, tmp_path):
    rc, _, err = run_mxc("compile", write_model(DEPTHWISE), "-o", tmp_path / "o", "-q")
    assert rc == 0, err
    rows = json.loads((tmp_path / "o" / "manifest.json").read_text())["layers"]
    assert [(r["layer"], r["status"]) for r in rows] == [("dw", "high precision"), ("fc", "quantized")]
    assert "groups != 1" in rows[0]["decision"] and rows[0]["op"] == "conv2d"
    rc, out, _ = run_mxc("inspect", tmp_path / "o")
    assert rc == 0 and "grouped/depthwise conv2d (groups != 1) is not quantized" in out
    rc, out, err = run_mxc("run", tmp_path / "o", "--compare", "--json")
    assert rc == 0 and json.loads(out)["vs_reference"]["within_tolerance"], err


@pytest.mark.parametrize("fmt", ["mxfp4", "nvfp4"])
def test_k_not_divisible_is_padded(write_model, tmp_path, fmt):
    rc, _, err = run_mxc("compile", write_model(LINEAR.format(k=70, patch="")), "-o", tmp_path / "o",
                         "--format", fmt, "-q")
    assert rc == 0, err
    rc, out, err = run_mxc("run", tmp_path / "o", "--compare", "--json")
    assert rc == 0, err
    res = json.loads(out)
    assert res["vs_reference"]["within_tolerance"]
    assert res["vs_torch"]["sqnr_db"] > 5


def test_nan_weights_warn_and_follow_the_spec(write_model, tmp_path):
    patch = "    with torch.no_grad():\n        m.proj.weight[3, 5] = float('nan')"
    rc, _, err = run_mxc("compile", write_model(LINEAR.format(k=64, patch=patch)), "-o", tmp_path / "o",
                         "--format", "mxfp8", "-q")
    assert rc == 0, err
    assert "layer 'proj': 1 weight block(s) hold NaN/Inf" in err and '"proj" = "none"' in err
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["layers"][0]["nonfinite_weight_blocks"] == 1
    rc, out, err = run_mxc("run", tmp_path / "o", "--compare", "--json")
    res = json.loads(out)
    assert rc == 0 and res["vs_reference"]["within_tolerance"]  # NaN exactly where the reference has NaN


def test_unknown_format_lists_valid(tmp_path):
    rc, _, err = run_mxc("compile", EXAMPLES / "mlp.py", "-o", tmp_path, "--format", "fp5")
    assert rc == 2 and err.startswith("mxc: error: unknown format 'fp5'") and "if4, mxfp4, mxfp6_e2m3" in err
    assert len(err.strip().splitlines()) == 1  # one line, no traceback, no reproducer


@pytest.mark.parametrize("args, message", [
    (["--format", "nvfp4", "--scale-rule", "rceil"], "scale_rule applies to MX formats"),
    (["--format", "mxfp4", "--error-metric", "mae"], "error_metric applies to formats with a per-block choice"),
    (["--format", "mxfp4", "--act-format", "nvfp4"], "act_format nvfp4 has block size 16, the weights' mxfp4 32"),
    (["--format", "mxfp4", "--seed", "3"], "seed applies only to rounding=stochastic"),
])
def test_option_that_does_not_apply(args, message, tmp_path):
    rc, _, err = run_mxc("compile", EXAMPLES / "mlp.py", "-o", tmp_path, *args)
    assert rc == 2 and message in err, err


def test_policy_rule_with_bad_option(tmp_path):
    policy = tmp_path / "p.toml"
    policy.write_text('[layers]\n"fc1" = { format = "nvfp4", scale_rule = "even" }\n')
    rc, _, err = run_mxc("compile", EXAMPLES / "mlp.py", "-o", tmp_path / "o", "--policy", policy)
    assert rc == 2 and "rule 'fc1'" in err and "scale_rule applies to MX formats" in err and str(policy) in err


def test_policy_with_unknown_format(tmp_path):
    policy = tmp_path / "p.toml"
    policy.write_text('[layers]\n"fc1" = "mxfp9"\n')
    rc, _, err = run_mxc("compile", EXAMPLES / "mlp.py", "-o", tmp_path / "o", "--policy", policy)
    assert rc == 2 and "unknown format 'mxfp9'" in err and str(policy) in err


def test_run_missing_artifact(tmp_path):
    rc, _, err = run_mxc("run", tmp_path / "none")
    assert rc == 2 and "no such artifact directory" in err and "mxc compile" in err


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    out = tmp_path_factory.mktemp("art")
    rc, _, err = run_mxc("compile", EXAMPLES / "mlp.py", "-o", out, "-q")
    assert rc == 0, err
    return out


def test_run_incomplete_artifact(artifact, tmp_path):
    import shutil

    broken = tmp_path / "a"
    shutil.copytree(artifact, broken)
    (broken / "model.irpa").unlink()
    rc, _, err = run_mxc("run", broken)
    assert rc == 2 and "missing model.irpa" in err


@pytest.mark.parametrize("victim", ["model.vmfb", "manifest.json", "model.irpa"])
def test_run_corrupt_artifact(artifact, tmp_path, victim):
    import shutil

    broken = tmp_path / "a"
    shutil.copytree(artifact, broken)
    (broken / victim).write_bytes(b"garbage")
    rc, _, err = run_mxc("run", broken)
    assert rc == 2 and victim in err and ("corrupt" in err or "cannot be loaded" in err)


def test_run_wrong_device(artifact):
    rc, _, err = run_mxc("run", artifact, "--device", "cuda")
    assert rc == 2 and "built for target 'cpu', not for --device cuda" in err and "--device cpu" in err
    rc, _, err = run_mxc("run", artifact, "--device", "tpu")
    assert rc == 2 and "unknown device 'tpu' (devices: cpu, cuda)" in err

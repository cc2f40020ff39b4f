"""Every format, and a policy with per-layer formats and options, compiled and compared end to end."""

import json

import pytest

from conftest import EXAMPLES, run_mxc
from mxc.numerics import FORMATS
from test_examples import assert_mlp_weights_equal_numerics

# Lower bounds on SQNR vs torch float32 ("sensible error") by element width, with margin.
MIN_SQNR_DB = {8: 12.0, 6: 9.0, 4: 4.0}

POLICY = """
default = "mxfp8"
[layers]
"*.layers.0.self_attn.q_proj" = "mxfp8_e5m2"
"*.layers.0.self_attn.k_proj" = { format = "mxfp6_e2m3", scale_rule = "rceil" }
"*.layers.0.self_attn.v_proj" = { format = "mxfp6_e3m2", scale_rule = "ceil" }
"*.layers.0.self_attn.o_proj" = { format = "mxfp4", scale_rule = "even", hadamard = 32 }
"*.layers.0.mlp.gate_proj" = { format = "mxint8", rounding = "stochastic", seed = 1 }
"*.layers.0.mlp.up_proj" = { format = "nvfp4", hadamard = 16 }
"*.layers.0.mlp.down_proj" = { format = "nvfp4_4over6", error_metric = "mae" }
"*.layers.1.self_attn.*" = { format = "if4", error_metric = "max" }
"*.layers.1.mlp.*" = "nvint4"
"*.layers.2.*" = { format = "fp4_ue5m3", weights_only = true }
"*.layers.3.*" = { format = "mxfp4", act_format = "mxfp8" }
"""


def _compile_and_compare(model, out, *args):
    rc, _, err = run_mxc("compile", model, "-o", out, "-q", *args)
    assert rc == 0, err
    rc, stdout, err = run_mxc("run", out, "--compare", "--json")
    assert rc == 0, err
    res = json.loads(stdout)
    assert res["vs_reference"]["within_tolerance"], res["vs_reference"]
    return res, json.loads((out / "manifest.json").read_text())


@pytest.mark.parametrize("weights_only", [False, True], ids=["w+a", "w-only"])
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_format_on_mlp(fmt, weights_only, tmp_path):
    res, manifest = _compile_and_compare(EXAMPLES / "mlp.py", tmp_path / "out", "--format", fmt,
                                         *(["--weights-only"] if weights_only else []))
    if weights_only:
        assert res["vs_reference"]["fraction_within_rtol"] == 1.0, res["vs_reference"]
    assert res["vs_torch"]["sqnr_db"] > MIN_SQNR_DB[FORMATS[fmt].element.bits], res["vs_torch"]
    rows = [r for r in manifest["layers"] if r["status"] == "quantized"]
    assert rows and all(r["weight_format"] == fmt for r in rows)


def test_policy_with_every_format_and_option_on_llama(tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    _, manifest = _compile_and_compare(EXAMPLES / "llama.py", tmp_path / "out", "--policy", policy)
    rows = {r["layer"]: r for r in manifest["layers"] if r["status"] == "quantized"}
    used = {r["weight_format_name"] for r in rows.values()}
    assert used == set(FORMATS), sorted(set(FORMATS) - used)
    o_proj = rows["lm.model.layers.0.self_attn.o_proj"]
    assert o_proj["weight_format"] == "mxfp4{scale_rule=even,hadamard=32}"
    assert o_proj["options"] == {"scale_rule": "even", "hadamard": 32}
    mixed = rows["lm.model.layers.3.mlp.down_proj"]
    assert (mixed["weight_format"], mixed["activation_format"]) == ("mxfp4", "mxfp8")
    assert rows["lm.model.layers.2.mlp.up_proj"]["activation_format"] == "none"


@pytest.mark.parametrize("spec", ["mxfp6_e2m3", "mxfp6_e3m2", "mxint8", "if4", "nvint4", "fp4_ue5m3",
                                  "nvfp4_4over6{error_metric=max}", "mxfp4{rounding=stochastic,seed=9}"])
def test_compiled_weight_bits_equal_numerics(spec, tmp_path):
    fmt_name, _, opts = spec.partition("{")
    args = ["--format", fmt_name]
    if opts:
        for item in opts.rstrip("}").split(","):
            key, value = item.split("=")
            args += [f"--{key.replace('_', '-')}", value]
    rc, _, err = run_mxc("compile", EXAMPLES / "mlp.py", "-o", tmp_path, "-q", "--weights-only", *args)
    assert rc == 0, err
    assert_mlp_weights_equal_numerics(tmp_path, spec)

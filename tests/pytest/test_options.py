"""Typed options: FormatSpec parsed once, Options validated when built, pass options checked when parsed."""

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

import mxc
from conftest import EXAMPLES
from mxc.errors import MxcError
from mxc.numerics import FORMATS, FormatSpec, OptionError, QuantOptions, UnknownFormatError, parse_optional
from mxc.numerics.options import ERROR_METRICS, HADAMARD_SIZES, ROUNDINGS, SCALE_RULES
from mxc.options import Options, OptionsError


@st.composite
def specs(draw) -> FormatSpec:
    fmt = draw(st.sampled_from(sorted(FORMATS.values(), key=lambda f: f.name)))
    rounding = draw(st.sampled_from(ROUNDINGS))
    return FormatSpec(fmt, QuantOptions(
        scale_rule=draw(st.sampled_from(SCALE_RULES)) if fmt.family == "mx" else "floor",
        rounding=rounding,
        seed=draw(st.integers(0, 2**31 - 1)) if rounding == "stochastic" else 0,
        error_metric=draw(st.sampled_from(ERROR_METRICS)) if fmt.choice else "mse",
        hadamard=draw(st.sampled_from((None, *HADAMARD_SIZES))),
    ))


@given(specs())
def test_format_spec_round_trip(spec):
    text = str(spec)
    assert FormatSpec.parse(text) == spec and str(FormatSpec.parse(text)) == text
    assert text == spec.name or text.startswith(spec.name + "{")


def test_format_spec_text_is_canonical():
    spec = FormatSpec.parse(" mxfp4{ hadamard=32, scale_rule=rceil }")
    assert str(spec) == "mxfp4{scale_rule=rceil,hadamard=32}"
    assert (spec.name, spec.block_size, spec.hadamard) == ("mxfp4", 32, 32)
    assert str(spec.without_hadamard()) == "mxfp4{scale_rule=rceil}"
    assert FormatSpec.parse("nvfp4{hadamard=none}") == FormatSpec(FORMATS["nvfp4"])
    assert parse_optional("none") is None and parse_optional("if4") == FormatSpec(FORMATS["if4"])


@pytest.mark.parametrize("text, error, message", [
    ("mxfp9", UnknownFormatError, "unknown format 'mxfp9': valid formats are fp4_ue5m3, if4, mxfp4"),
    ("none", UnknownFormatError, "unknown format 'none'"),
    ("mxfp4{scale_rule=rceil", OptionError, "format spec 'mxfp4{scale_rule=rceil': options go in braces"),
    ("mxfp4{rceil}", OptionError, "expected key=value, got 'rceil'"),
    ("mxfp4{colour=red}", OptionError, "unknown option(s) ['colour']"),
    ("mxfp4{scale_rule=up}", OptionError, "scale_rule must be one of floor, rceil, ceil, even, got 'up'"),
    ("mxfp4{hadamard=24}", OptionError, "hadamard must be one of 16, 32, 128 or none, got 24"),
    ("mxfp4{seed=x}", OptionError, "seed must be an integer, got 'x'"),
    ("nvfp4{scale_rule=rceil}", OptionError, "scale_rule applies to MX formats"),
    ("mxfp8{error_metric=mae}", OptionError, "error_metric applies to formats with a per-block choice"),
])
def test_format_spec_errors(text, error, message):
    with pytest.raises(error) as e:
        FormatSpec.parse(text)
    assert message in str(e.value)


def test_format_spec_is_valid_by_construction():
    with pytest.raises(OptionError, match="scale_rule applies to MX formats"):
        FormatSpec(FORMATS["nvfp4"], QuantOptions(scale_rule="even"))


def test_options_hold_typed_values_and_write_the_manifest_json():
    from mxc.runtime.amx import host_has_amx, host_has_dpbf16, host_has_fma

    opts = Options(format="mxfp4{scale_rule=rceil}", act_format="mxfp8", hadamard=32)
    assert opts.format == FormatSpec.parse("mxfp4{scale_rule=rceil}")
    assert opts.act_format == FormatSpec(FORMATS["mxfp8"]) and opts.quant_options == QuantOptions(hadamard=32)
    assert opts.to_dict() == {
        "target": "cpu", "format": "mxfp4{scale_rule=rceil}", "policy": "", "weights_only": False,
        "contraction": ("amx" if host_has_amx() else "dpbf16" if host_has_dpbf16() else "fma" if host_has_fma()
                        else "decomposed"), "act_format": "mxfp8", "scale_rule": "floor",
        "rounding": "rne", "seed": 0, "error_metric": "mse", "hadamard": 32, "act_dtype": "f32", "auto": "",
        "calibrate": "", "generate": False, "max_seq_len": 0, "checkpoint": "", "kv_cache": "",
    }
    # "auto" is resolved when built: the manifest says which contraction ran
    assert Options(target="cuda-sm90").contraction == "decomposed"
    assert Options(contraction="decomposed").contraction == "decomposed"
    assert Options().to_dict()["act_format"] == "" and Options().to_dict()["hadamard"] == 0
    assert Options.from_dict(opts.to_dict()) == opts and Options.from_dict(Options().to_dict()) == Options()
    assert Options(format="none").format is None and Options(format="none").to_dict()["format"] == "none"
    assert Options(act_format="none").weights_only  # activations in high precision
    assert Options(format=FormatSpec(FORMATS["nvfp4"])) == Options(format="nvfp4")


@pytest.mark.parametrize("kwargs, message", [
    ({"format": "bogus"}, "unknown format 'bogus': valid formats are fp4_ue5m3, if4, mxfp4"),
    ({"act_format": "mxfp9"}, "act_format: unknown format 'mxfp9'"),
    ({"format": "nvfp4", "scale_rule": "rceil"}, "scale_rule applies to MX formats"),
    ({"format": "mxfp4{error_metric=max}"}, "error_metric applies to formats with a per-block choice"),
    ({"act_format": "nvfp4"}, "act_format nvfp4 has block size 16, the weights' mxfp4 32"),
    ({"scale_rule": "up"}, "scale_rule must be one of floor, rceil, ceil, even, got 'up'"),
    ({"hadamard": 24}, "hadamard must be one of 16, 32, 128 or none, got 24"),
    ({"seed": 3}, "seed applies only to rounding=stochastic"),
    ({"target": "cuda-sm89"}, "unknown target 'cuda-sm89' (targets: cpu, cuda-sm90, cuda-sm100)"),
    ({"contraction": "tiled"}, "contraction must be one of auto, decomposed, scaled-generic, amx, fma, dpbf16, got 'tiled'"),
    ({"target": "cuda-sm90", "contraction": "scaled-generic"},
     "--contraction scaled-generic applies to --target cpu only"),
])
def test_options_errors_name_the_value(kwargs, message):
    with pytest.raises(OptionsError) as e:
        Options(**kwargs)
    assert isinstance(e.value, MxcError) and message in str(e.value)


def test_options_with_a_policy_leave_the_choice_to_the_file():
    """A policy file has its own defaults: a flag that does not apply to --format is not an error here."""
    assert Options(format="nvfp4", scale_rule="rceil", policy="p.toml").scale_rule == "rceil"


def test_compile_with_a_bad_format_fails_before_any_pass(tmp_path):
    with pytest.raises(MxcError, match="unknown format 'bogus'") as e:
        mxc.compile(EXAMPLES / "mlp.py", tmp_path / "out", mxc.Options(format="bogus"))
    assert "reproduce with" not in str(e.value) and not (tmp_path / "out").exists()


def _mxc_opt(pipeline: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mxc.tools.mxc_opt", "-", "-p", pipeline], input="",
                          capture_output=True, text=True)


@pytest.mark.parametrize("pipeline, message", [
    ("lower-mxq-to-linalg{contraction=bogus}",
     "lower-mxq-to-linalg: option 'contraction' must be one of decomposed, scaled-generic, amx, fma, dpbf16, got 'bogus'"),
    ("mxq-select-formats{rounding=up}", "option 'rounding' must be one of rne, stochastic, got 'up'"),
    ("mxq-select-formats{hadamard=24}", "option 'hadamard' must be one of 16, 32, 128, none, got '24'"),
    ("mxq-select-formats{seed=x}", "option 'seed' wants an integer, got 'x'"),
    ("mxq-select-formats{weights-only=maybe}", "option 'weights-only' wants true/false, got 'maybe'"),
    ("mxq-select-formats{format=mxfp9}", "option 'format': unknown format 'mxfp9'"),
    ("mxq-select-formats{format=nvfp4{scale_rule=even}}",
     "option 'format': scale_rule applies to MX formats"),
    ("mxq-select-formats{format=mxfp4{hadamard=32}", "unbalanced braces"),
])
def test_pass_options_are_checked_when_parsed(pipeline, message):
    p = _mxc_opt(pipeline)
    assert p.returncode == 2 and message in p.stderr, p.stderr


def test_pass_options_are_typed_and_round_trip():
    from mxc.passes import parse

    text = "mxq-select-formats{format=mxfp4{scale_rule=rceil,hadamard=32} act-format=mxfp8 hadamard=none}"
    (p,) = parse(text)
    assert p.format == FormatSpec.parse("mxfp4{scale_rule=rceil,hadamard=32}") and p.hadamard is None
    assert p.spec() == "mxq-select-formats{format=mxfp4{scale_rule=rceil,hadamard=32} act-format=mxfp8}"
    assert parse(p.spec()) == [p]
    (low,) = parse("lower-mxq-to-linalg{contraction=scaled-generic}")
    assert low.contraction == "scaled-generic"

"""`mxc export --to compressed-tensors`: checked by decompressing with the compressed-tensors package itself."""

from __future__ import annotations

import json

import pytest
import torch

from mxc.numerics import FormatSpec, fake_quantize

from conftest import EXAMPLES, run_mxc

pytest.importorskip("compressed_tensors")
RANDOM_LM = EXAMPLES / "llm" / "random_lm.py"


@pytest.fixture
def tiny_env(monkeypatch):
    monkeypatch.setenv("RANDOM_LM_FAMILY", "llama")
    monkeypatch.setenv("RANDOM_LM_SIZE", "tiny")
    import importlib.util

    spec = importlib.util.spec_from_file_location("random_lm_ct", RANDOM_LM)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("fmt", ["nvfp4", "mxfp4", "mxfp8"])
def test_export_decompresses_to_mxc_numerics_value_for_value(tmp_path, tiny_env, fmt):
    from compressed_tensors.entrypoints.convert.converters.ct_dequantizer import CompressedTensorsDequantizer
    from safetensors.torch import load_file

    art, ckpt = tmp_path / "a", tmp_path / "ct"
    rc, _, err = run_mxc("compile", RANDOM_LM, "--format", fmt, "--weights-only", "-o", art, "-q")
    assert rc == 0, err
    rc, out, err = run_mxc("export", art, "--to", "compressed-tensors", ckpt)
    assert rc == 0, err
    assert "15 quantized layers" in out
    config = json.loads((ckpt / "config.json").read_text())
    qc = config["quantization_config"]
    assert qc["quant_method"] == "compressed-tensors" and config["model_type"] == "llama"
    raw = load_file(str(ckpt / "model.safetensors"))
    packed = "weight" if fmt == "mxfp8" else "weight_packed"
    assert raw[f"model.layers.0.mlp.up_proj.{packed}"].dtype == (torch.float8_e4m3fn if fmt == "mxfp8" else torch.uint8)
    dense = CompressedTensorsDequantizer(str(ckpt), dtype=torch.float32).process(dict(raw))
    state = tiny_env.get_model().state_dict()
    spec = FormatSpec.parse(fmt)
    for name, w in state.items():
        got = dense[name].float()
        if name.endswith("proj.weight") or name == "lm_head.weight":  # quantized: decode equals mxc.numerics
            want = fake_quantize(w, spec)
            if fmt == "nvfp4":  # the package's NVFP4 decompressor returns bf16 values
                want = want.to(torch.bfloat16).float()
            assert torch.equal(got, want), name
        else:  # kept as it is (embedding, norms)
            assert torch.equal(got, w), name


def test_export_refuses_what_the_layout_cannot_hold(tmp_path, tiny_env):
    art = tmp_path / "a"
    rc, _, err = run_mxc("compile", RANDOM_LM, "--format", "nvfp4_4over6", "--weights-only", "-o", art, "-q")
    assert rc == 0, err
    rc, _, err = run_mxc("export", art, "--to", "compressed-tensors", tmp_path / "ct")
    assert rc == 2 and "no compressed-tensors layout" in err and "layer '" in err
    rc, _, err = run_mxc("export", tmp_path / "missing", "--to", "compressed-tensors", tmp_path / "ct")
    assert rc == 2 and "no such artifact directory" in err

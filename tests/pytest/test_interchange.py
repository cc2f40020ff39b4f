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


# ---- import: mxc compile --checkpoint ---------------------------------------------------------------------------

def _compile_and_export(tmp_path, fmt: str, *flags) -> tuple:
    art, ckpt = tmp_path / f"a-{fmt}", tmp_path / f"ct-{fmt}"
    rc, _, err = run_mxc("compile", RANDOM_LM, "--format", fmt, *flags, "-o", art, "-q")
    assert rc == 0, err
    rc, _, err = run_mxc("export", art, "--to", "compressed-tensors", ckpt)
    assert rc == 0, err
    return art, ckpt


def _irpa(art) -> dict[str, bytes]:
    from mxc.runtime.artifact import parameter_reader

    names, read = parameter_reader(art, json.loads((art / "manifest.json").read_text()))
    return {name: read(name).numpy().tobytes() for name in names}


@pytest.mark.parametrize("fmt,flags", [("nvfp4", ("--weights-only",)), ("mxfp4", ()), ("mxfp8", ("--weights-only",))])
def test_export_then_import_compiles_the_same_bytes(tmp_path, tiny_env, fmt, flags):
    """The round trip: an exported artifact's checkpoint compiles to the same .irpa, byte for byte (codes,
    scales and NVFP4's tensor scale pass through unchanged), with the same formats per layer."""
    art, ckpt = _compile_and_export(tmp_path, fmt, *flags)
    back = tmp_path / "b"
    rc, _, err = run_mxc("compile", RANDOM_LM, "--checkpoint", ckpt, "-o", back, "-q")
    assert rc == 0, err
    assert _irpa(back) == _irpa(art)
    before = {r["layer"]: r for r in json.loads((art / "manifest.json").read_text())["layers"]}
    after = json.loads((back / "manifest.json").read_text())
    assert after["options"]["checkpoint"] == str(ckpt.resolve())
    quantized = [r for r in after["layers"] if r.get("status") == "quantized"]
    assert len(quantized) == 15
    for r in quantized:
        assert (r["weight_format"], r["activation_format"]) == (before[r["layer"]]["weight_format"],
                                                                before[r["layer"]]["activation_format"])
        assert r["imported"]["checkpoint"] == str(ckpt.resolve()) and r["imported"]["params"]
    assert f'format = "{fmt}"' in (back / "policy.toml").read_text()


def test_import_keeps_codes_that_round_to_nearest_would_not_choose(tmp_path, tiny_env):
    """A checkpoint's codes need not be mxc's round-to-nearest choice (GPTQ, another scale rule, another
    global scale): random codes, random block scales and another global scale land in the .irpa unchanged,
    the fake-quant reference decodes them, and `mxc run --compare` passes."""
    from safetensors.torch import load_file, save_file

    from mxc.numerics import pack_nibbles

    _, ckpt = _compile_and_export(tmp_path, "nvfp4", "--weights-only")
    tensors = load_file(str(ckpt / "model.safetensors"))
    layer = "model.layers.1.mlp.down_proj"
    g = torch.Generator().manual_seed(0)
    n, half_k = tensors[f"{layer}.weight_packed"].shape
    codes = torch.randint(0, 16, (n, 2 * half_k), generator=g).to(torch.uint8)
    scales = torch.randint(0x20, 0x48, tensors[f"{layer}.weight_scale"].shape, generator=g).to(torch.uint8)
    tensors[f"{layer}.weight_packed"] = pack_nibbles(codes)
    tensors[f"{layer}.weight_scale"] = scales.view(torch.float8_e4m3fn)
    tensors[f"{layer}.weight_global_scale"] = torch.tensor([1234.5])
    save_file(tensors, str(ckpt / "model.safetensors"))
    art = tmp_path / "b"
    rc, _, err = run_mxc("compile", RANDOM_LM, "--checkpoint", ckpt, "-o", art, "-q")
    assert rc == 0, err
    row = next(r for r in json.loads((art / "manifest.json").read_text())["layers"] if r["layer"] == layer)
    stored = _irpa(art)
    el, sc, ts = row["imported"]["params"]
    assert stored[el] == pack_nibbles(codes).numpy().tobytes()
    assert stored[sc] == scales.numpy().tobytes()
    assert stored[ts] == (1.0 / torch.tensor(1234.5)).numpy().tobytes()
    rc, out, err = run_mxc("run", art, "--compare")
    assert rc == 0 and "pass" in out, out + err


def test_write_weights_of_an_imported_artifact_applies_the_checkpoint(tmp_path, tiny_env):
    """`mxc write-weights` of a --checkpoint artifact (the checkpoint's codes, foreign ones included, and its other
    tensors) writes the compile's bytes; a moved checkpoint is named with --checkpoint, a missing one is refused."""
    import shutil

    from safetensors.torch import load_file, save_file

    _, ckpt = _compile_and_export(tmp_path, "mxfp4", "--weights-only")
    tensors = load_file(str(ckpt / "model.safetensors"))
    tensors["model.norm.weight"] = tensors["model.norm.weight"] * 1.5  # not model.py's: must come from the checkpoint
    scales = tensors["model.layers.0.mlp.up_proj.weight_scale"]
    tensors["model.layers.0.mlp.up_proj.weight_scale"] = scales + 1  # not round to nearest's
    save_file(tensors, str(ckpt / "model.safetensors"))
    art = tmp_path / "b"
    rc, _, err = run_mxc("compile", RANDOM_LM, "--checkpoint", ckpt, "-o", art, "-q")
    assert rc == 0, err
    want = (art / "model.irpa").read_bytes()
    moved = tmp_path / "moved"
    shutil.move(ckpt, moved)
    (art / "model.irpa").unlink()
    rc, _, err = run_mxc("write-weights", art)
    assert rc == 2 and "--checkpoint" in err and not (art / "model.irpa").exists()
    rc, out, err = run_mxc("write-weights", art, "--checkpoint", moved)
    assert rc == 0, err
    assert (art / "model.irpa").read_bytes() == want


def test_import_generate_artifact_gives_the_reference_tokens(tmp_path, tiny_env):
    """--checkpoint with --generate: the checkpoint's codes in both entry points (a tied lm_head untied), and the
    compiled generation equals the fake-quant loop over the same codes."""
    _, ckpt = _compile_and_export(tmp_path, "mxfp8")
    art = tmp_path / "g"
    rc, _, err = run_mxc("compile", RANDOM_LM, "--checkpoint", ckpt, "--generate", "--max-seq-len", "64", "-o", art,
                         "-q")
    assert rc == 0, err
    rc, out, err = run_mxc("generate", art, "--prompt", "hello world", "--max-new-tokens", "12", "--compare")
    assert rc == 0 and "the same tokens" in out + err, out + err


def test_import_errors_name_the_fix(tmp_path, tiny_env):
    from safetensors.torch import load_file, save_file

    _, ckpt = _compile_and_export(tmp_path, "mxfp4", "--weights-only")
    out = tmp_path / "b"
    rc, _, err = run_mxc("compile", RANDOM_LM, "--checkpoint", ckpt, "--format", "nvfp4", "-o", out)
    assert rc == 2 and "--format and --checkpoint exclude each other" in err
    rc, _, err = run_mxc("compile", RANDOM_LM, "--checkpoint", ckpt, "--scale-rule", "rceil", "-o", out)
    assert rc == 2 and "drop --scale-rule" in err
    rc, _, err = run_mxc("compile", RANDOM_LM, "--checkpoint", tmp_path / "nowhere", "-o", out)
    assert rc == 2 and "no such directory" in err
    tensors = load_file(str(ckpt / "model.safetensors"))
    packed = "model.layers.0.mlp.up_proj.weight_packed"
    broken = {**tensors, packed: tensors[packed][:, :-1].contiguous()}
    save_file(broken, str(ckpt / "model.safetensors"))
    rc, _, err = run_mxc("compile", RANDOM_LM, "--checkpoint", ckpt, "-o", out)
    assert rc == 2 and "layer 'model.layers.0.mlp.up_proj'" in err and "is the checkpoint this model's?" in err
    save_file({k: v for k, v in tensors.items() if k != "model.norm.weight"}, str(ckpt / "model.safetensors"))
    rc, _, err = run_mxc("compile", RANDOM_LM, "--checkpoint", ckpt, "-o", out)
    assert rc == 2 and "has no tensor 'model.norm.weight'" in err
    save_file({**tensors, "model.extra.weight": torch.zeros(2)}, str(ckpt / "model.safetensors"))
    rc, _, err = run_mxc("compile", RANDOM_LM, "--checkpoint", ckpt, "-o", out)
    assert rc == 2 and "has no parameter 'model.extra.weight'" in err
    assert not out.exists()

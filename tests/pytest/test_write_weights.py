"""`mxc write-weights`: the .irpa written from model.py on the running host equals the one mxc compile wrote."""

from __future__ import annotations

import json

import pytest

from conftest import EXAMPLES, run_mxc

RANDOM_LM = EXAMPLES / "llm" / "random_lm.py"


@pytest.mark.parametrize("target,flags", [("cpu", ["--format", "mxfp4"]),
                                          ("cpu", ["--format", "nvfp4", "--weights-only", "--generate",
                                                   "--max-seq-len", "32"]),
                                          ("cuda-sm90", ["--format", "nvfp4", "--weights-only", "--generate",
                                                         "--max-seq-len", "64"])],
                         ids=["cpu-mxfp4", "cpu-generate-nvfp4", "cuda-sm90-nvfp4"])
def test_written_weights_are_the_compiled_bytes(tmp_path, monkeypatch, target, flags):
    monkeypatch.setenv("RANDOM_LM_SIZE", "tiny")
    out = tmp_path / "a"
    rc, _, err = run_mxc("compile", RANDOM_LM, "--target", target, *flags, "-o", out, "-q")
    assert rc == 0, err
    compiled = (out / "model.irpa").read_bytes()
    (out / "model.irpa").unlink()
    rc, res, err = run_mxc("write-weights", out, "--model", RANDOM_LM)
    assert rc == 0, err
    assert "bytes equal to those mxc compile wrote" in res
    assert (out / "model.irpa").read_bytes() == compiled
    recipes = json.loads((out / "manifest.json").read_text())["weights_recipes"]
    # (cuda-sm90: prefill's wgmma tiles and decode's fragments are re-packed copies of the codes, the decode's
    # q/k/v and gate/up side by side: one launch each, mxq.launch_group)
    assert {r["op"] for r in recipes.values()} >= ({"param", "quantize"} | ({"pack"} if target != "cpu" else set()))
    if target == "cuda-sm90":
        assert {r["elements"]["op"] for r in recipes.values() if r["op"] == "pack"} == {"concat", "quantize"}
        rows = {r["layer"]: r for r in json.loads((out / "manifest.json").read_text())["layers"]}
        q = "decode:lm.model.layers.0.self_attn.q_proj"
        assert [rows[q.replace("q_proj", p)].get("launch_group") for p in ("q_proj", "k_proj", "v_proj", "o_proj")] == \
            [q, q, q, None]
        assert "launch_group" not in rows[q.replace("decode", "prefill")]
        # the prefill takes the prompt at its length (1..63 rows): dec, then rdec, by its row count at run time
        prefill = rows[q.replace("decode", "prefill")]
        assert prefill["input_shape"][:2] == [1, None] and prefill["path"].startswith("dynamic M")
        assert [b["m_max"] for b in prefill["kernel_buckets"]] == [1, 8, 16, 32, None]
        assert json.loads((out / "manifest.json").read_text())["generate"]["dynamic_prefill"] is True


def test_other_weights_or_uncomputable_ones_are_refused(tmp_path, monkeypatch, write_model):
    monkeypatch.setenv("RANDOM_LM_SIZE", "tiny")
    out = tmp_path / "a"
    rc, _, err = run_mxc("compile", RANDOM_LM, "--format", "nvfp4", "--weights-only", "-o", out, "-q")
    assert rc == 0, err
    (out / "model.irpa").unlink()
    monkeypatch.setenv("RANDOM_LM_FAMILY", "gpt2")  # another model from the same model.py: other weights
    rc, _, err = run_mxc("write-weights", out)
    assert rc == 2 and ("differ from the ones mxc compile wrote" in err or "has no parameter" in err)
    assert not (out / "model.irpa").exists()
    monkeypatch.setenv("RANDOM_LM_FAMILY", "llama")
    other = write_model(f"import sys\nsys.path.insert(0, {str(RANDOM_LM.parent)!r})\nfrom random_lm import *\n"
                        "_get = get_model\ndef get_model():\n    m = _get()\n"
                        "    m.model.layers[0].mlp.up_proj.weight.data[0, 0] += 1.0\n    return m\n")
    rc, _, err = run_mxc("write-weights", out, "--model", other)  # one weight changed
    assert rc == 2 and "differ from the ones mxc compile wrote" in err and not (out / "model.irpa").exists()
    cal = tmp_path / "cal"
    rc, _, err = run_mxc("compile", RANDOM_LM, "--format", "nvfp4", "--weights-only", "--calibrate", "gptq",
                         "-o", cal, "-q")
    assert rc == 0, err
    rc, _, err = run_mxc("write-weights", cal)
    assert rc == 2 and "cannot be recomputed from model.py" in err and "GPTQ" in err

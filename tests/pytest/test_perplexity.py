"""mxc.tools.text's calibration/evaluation split, SmolLM2's inputs and loss, and the perplexity harness."""

import json
import math
import subprocess
import sys

import pytest
import torch

from mxc.tools import perplexity, text


@pytest.fixture
def smollm2(monkeypatch):
    """examples/llm/smollm2.py imported at 64 tokens (skipped, saying how to install, without its wheels)."""
    if reason := perplexity.skip_reason():
        pytest.skip(reason)
    monkeypatch.setenv("SMOLLM2_TOKENS", "64")
    return perplexity._import_model(perplexity.MODEL)


class CharTokenizer:
    """One token per character: enough to test the windowing without the GGUF."""

    def __call__(self, s: str, add_special_tokens: bool = True) -> dict:
        return {"input_ids": [ord(c) for c in s]}


def test_splits_are_disjoint_by_topic_and_cover_every_topic():
    from pydoc_data.topics import topics

    cal, ev = text.split_topics("calibration"), text.split_topics("evaluation")
    assert not set(cal) & set(ev)
    assert sorted(cal + ev) == sorted(topics)
    assert cal == sorted(topics)[::4]
    with pytest.raises(ValueError, match="unknown split 'test'"):
        text.split_topics("test")


def test_splits_are_the_same_text_in_another_process():
    code = "from mxc.tools import text; print(*(text.sha256(s) for s in text.SPLITS))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert other == [text.sha256(s) for s in text.SPLITS]


def test_windows_are_consecutive_non_overlapping_slices_of_the_split():
    wins = text.windows(CharTokenizer(), "calibration", 100, 3)
    assert [(w.shape, w.dtype) for w in wins] == [((1, 100), torch.int64)] * 3
    joined = "".join(chr(i) for w in wins for i in w[0].tolist())
    assert joined == text.split_text("calibration")[:300]
    assert torch.equal(wins[0], text.windows(CharTokenizer(), "calibration", 100, 1)[0])


def test_windows_refuse_more_than_the_split_holds():
    have = len(text.split_text("calibration")) // 1000
    with pytest.raises(ValueError, match=f"{have} windows of 1000, not {have + 1}"):
        text.windows(CharTokenizer(), "calibration", 1000, have + 1)


def test_no_calibration_window_occurs_in_the_evaluation_text(smollm2):
    tok = smollm2.get_tokenizer()
    n = len(tok(text.split_text("calibration"), add_special_tokens=False)["input_ids"]) // 64
    decoded = [tok.decode(w[0]) for w in text.windows(tok, "calibration", 64, n)]
    assert all(d in text.split_text("calibration") for d in decoded)  # (so the check below means something)
    assert not [d for d in decoded if d in text.split_text("evaluation")]


def test_smollm2_inputs_are_calibration_text_windows(smollm2, monkeypatch):
    (example,) = smollm2.get_example_inputs()
    calib = smollm2.get_calibration_inputs()
    assert len(calib) == 5 and all(len(c) == 1 and c[0].shape == example.shape == (1, 64) for c in calib)
    assert torch.equal(calib[0][0], example) and not torch.equal(calib[1][0], example)
    monkeypatch.setenv("SMOLLM2_CALIB_BATCHES", "2")
    again = perplexity._import_model(perplexity.MODEL).get_calibration_inputs()
    assert len(again) == 2 and all(torch.equal(a[0], c[0]) for a, c in zip(again, calib))
    held_out = smollm2.get_eval_inputs()
    assert len(held_out) == 4 and torch.equal(held_out[1][0], text.windows(smollm2.get_tokenizer(), "evaluation",
                                                                           64, 2)[1])


def test_perplexity_of_uniform_logits_is_the_vocabulary_size_and_of_certainty_one():
    ids = torch.randint(0, 50, (1, 9), generator=torch.Generator().manual_seed(0))
    uniform = torch.zeros(1, 9, 50)
    assert perplexity.nll(uniform, ids) == (pytest.approx(8 * math.log(50), rel=1e-15), 8)
    assert perplexity.perplexity([perplexity.nll(uniform, ids)] * 3) == pytest.approx(50, rel=1e-14)
    certain = torch.full((1, 9, 50), -1e4).scatter(2, torch.roll(ids, -1, 1)[..., None], 1e4)
    assert perplexity.perplexity([perplexity.nll(certain, ids)]) == 1.0  # (the last position predicts nothing)


def test_smollm2_loss_is_the_harness_mean_token_loss():
    smollm2 = perplexity._import_model(perplexity.MODEL)  # (importing the example needs no wheel)
    logits, ids = torch.randn(1, 17, 30, dtype=torch.float64), torch.randint(0, 30, (1, 17))
    loss = smollm2.get_loss(logits, ids)
    total, count = perplexity.nll(logits, ids)
    assert loss.dtype == torch.float32 and loss.item() == pytest.approx(total / count, rel=1e-6)


def test_effective_bits_weighs_by_numel_and_leaves_out_the_table_and_pinned_layers():
    layers = [
        {"layer": "lm.model.embed_tokens", "op": "embedding", "weight_shape": [1000, 8], "bits_per_weight": 32.0,
         "decision": "embedding table: a lookup, not a matmul; stays in high precision"},
        {"layer": "a", "op": "linear", "weight_shape": [16, 8], "bits_per_weight": 4.5, "decision": "nvfp4 (default)"},
        {"layer": "x.b", "op": "linear", "weight_shape": [48, 8], "bits_per_weight": 8.25,
         "decision": "mxfp8 (*.b; hadamard=32 skipped: K=8 is not a multiple)"},
        {"layer": "a.sdpa", "op": "scaled_dot_product_attention", "bits_per_weight": 32.0,
         "decision": "attention is not quantized yet: stays in high precision"},
        {"layer": "lm.lm_head", "op": "matmul", "weight_shape": [8, 1000], "bits_per_weight": 32.0,
         "decision": "none: kept in high precision (*lm_head)"},
    ]
    assert perplexity.effective_bits({"layers": layers}, ["*lm_head"]) == (128 * 4.5 + 384 * 8.25) / 512
    assert perplexity.effective_bits({"layers": layers}, ["*lm_head", "*.b"]) == 4.5
    assert perplexity.effective_bits({"layers": layers}, []) == (128 * 4.5 + 384 * 8.25 + 8000 * 32) / 8512
    assert perplexity.effective_bits({"layers": layers, "auto": {"effective_bits": 4.25}}, ["*lm_head"]) == 4.25
    # a row's own per-layer policy (--auto's policy.toml) decides lm_head by its full name: still left out
    layers[-1]["decision"] = "none: kept in high precision (lm.lm_head)"
    assert perplexity.effective_bits({"layers": layers}, ["*lm_head"]) == (128 * 4.5 + 384 * 8.25) / 512
    layers[1]["bits_per_weight"] = None
    assert perplexity.effective_bits({"layers": layers}, ["*lm_head"]) is None
    assert perplexity.pinned_rules(perplexity.POLICY) == ["*lm_head"]


def test_compare_gives_the_ratio_and_a_paired_interval():
    a = {"row": "a", "window_losses": [(10.0, 5), (20.0, 5), (12.0, 5), (16.0, 5)]}
    same = perplexity.compare(a, dict(a, row="b"))
    assert same == (1.0, 1.0, 1.0)
    shifted = {"row": "c", "window_losses": [(s - 0.5, n) for s, n in a["window_losses"]]}  # 0.1 nats/token less
    r, lo, hi = perplexity.compare(a, shifted)
    assert r == pytest.approx(math.exp(0.1)) and lo == pytest.approx(r) and hi == pytest.approx(r)  # paired: exact
    noisy = {"row": "d", "window_losses": [(11.0, 5), (19.0, 5), (12.5, 5), (15.0, 5)]}
    r, lo, hi = perplexity.compare(a, noisy)
    assert lo < r < hi and lo < 1.0 < hi
    with pytest.raises(ValueError, match="same windows"):
        perplexity.compare(a, {"row": "e", "window_losses": a["window_losses"][:3]})


def test_kl_is_zero_against_itself_and_the_divergence_of_the_next_token_distributions():
    logits = torch.randn(1, 5, 7, generator=torch.Generator().manual_seed(0))
    assert perplexity.kl(logits, logits) == (pytest.approx(0.0, abs=1e-12), 4)
    p, q = torch.tensor([0.75, 0.25]), torch.tensor([0.5, 0.5])  # KL(p || q) = 0.75 ln 1.5 + 0.25 ln 0.5
    row = torch.stack([q.log(), q.log(), p.log()])[None]  # the last position predicts nothing: left out
    ref = torch.stack([p.log(), p.log(), q.log()])[None]
    total, n = perplexity.kl(row, ref)
    assert n == 2 and total == pytest.approx(2 * (0.75 * math.log(1.5) + 0.25 * math.log(0.5)))


def test_compare_kl_gives_the_ratio_of_mean_divergences_and_a_paired_interval():
    a = {"row": "a", "window_kl": [(1.0, 5), (2.0, 5), (1.5, 5)]}
    half = {"row": "b", "window_kl": [(s / 2, n) for s, n in a["window_kl"]]}
    assert perplexity.compare_kl(a, half) == (pytest.approx(2.0), pytest.approx(2.0), pytest.approx(2.0))
    with pytest.raises(ValueError, match="same windows"):
        perplexity.compare_kl(a, {"row": "c", "window_kl": a["window_kl"][:2]})


def test_a_failing_row_is_reported_and_the_others_still_run(smollm2, monkeypatch, capsys, tmp_path):
    def evaluate(name, flags, *_):
        if name == "broken":
            raise RuntimeError("mxc compile failed: error: unknown format 'bogus'")
        ppl = 20.0 if name == "none" else 25.0
        divergence = 3e-7 if name == "none" else 0.125  # the reference's own float32-order noise
        return {"row": name, "flags": " ".join(flags), "compile_s": 1.0, "perplexity": ppl,
                "eval_s_per_window": 0.5, "bits_per_weight": 4.5, "window_losses": [(63 * math.log(ppl), 63)],
                "kl": divergence, "window_kl": [(63 * divergence, 63)]}

    monkeypatch.setattr(perplexity, "evaluate", evaluate)
    status = perplexity.main(["--tokens", "64", "--windows", "1", "--rows", "none", "mxfp4-w", "--json",
                              str(tmp_path / "r.json"), "--extra-row", "broken=--format bogus",
                              "--compare", "mxfp4-w", "none", "--compare", "broken", "none"])
    out = capsys.readouterr().out
    assert status == 1
    assert "| mxfp4-w | `--weights-only --format mxfp4` | 4.500 | 25.000 | +25.00 |  | 0.1250 |  |" in out
    assert "| broken | `--format bogus` | error: RuntimeError: mxc compile failed: error: unknown format 'bogus' |" in out
    assert text.sha256("evaluation") in out
    assert "mxfp4-w / none: perplexity ratio 1.2500, 95 % paired bootstrap interval over the 1 windows [1.2500, 1.2500]" in out
    assert "mxfp4-w / none: no KL ratio (none is the divergence's reference)" in out
    assert "KL ratio 41" not in out and "mxfp4-w / none: KL ratio" not in out
    assert "broken / none: not compared (broken failed)" in out
    rows = json.loads((tmp_path / "r.json").read_text())["rows"]
    assert [r["row"] for r in rows] == ["none", "mxfp4-w", "broken"] and "error" in rows[2]


def test_unknown_rows_and_bad_extra_rows_are_refused(capsys):
    for argv, message in ((["--rows", "mxfp5-w"], "unknown rows ['mxfp5-w']"),
                          (["--extra-row", "no-flags"], "--extra-row wants NAME='FLAGS ...'"),
                          (["--rows", "none", "--compare", "none", "mxfp4-w"], "--compare names rows this run does "
                                                                              "not have: mxfp4-w")):
        with pytest.raises(SystemExit):
            perplexity.main(argv)
        assert message in capsys.readouterr().err


def test_compiled_perplexity_equals_torch_eager(smollm2, tmp_path):
    """`--format none` compiled for the CPU through the harness: the perplexity torch gives, to 1e-3."""
    status = perplexity.main(["--tokens", "64", "--windows", "2", "--rows", "none", "--json", str(tmp_path / "r.json")])
    (row,) = json.loads((tmp_path / "r.json").read_text())["rows"]
    assert status == 0, row
    model = smollm2.get_model()
    windows = text.windows(smollm2.get_tokenizer(), "evaluation", 64, 2)
    with torch.no_grad():
        eager = perplexity.perplexity([perplexity.nll(model(ids), ids) for ids in windows])
    assert row["perplexity"] == pytest.approx(eager, rel=1e-3)
    assert row["bits_per_weight"] == 32.0 and 1 < eager < 1000
    assert 0 <= row["kl"] < 1e-5 and [n for _, n in row["window_kl"]] == [63, 63]  # the model against itself


def test_gap_closed_of_calibrated_and_auto_rows():
    from mxc.tools.perplexity import gap_closed

    rows = [{"row": "none", "perplexity": 10.0, "bits_per_weight": 32.0, "flags": "--format none"},
            {"row": "mxfp4-w", "perplexity": 20.0, "bits_per_weight": 4.25, "flags": "--weights-only --format mxfp4"},
            {"row": "mxfp4-w-gptq", "perplexity": 14.0, "bits_per_weight": 4.25,
             "flags": "--weights-only --format mxfp4 --calibrate gptq"},
            {"row": "mxfp4-w-mr-gptq", "perplexity": 12.0, "bits_per_weight": 4.25,
             "flags": "--weights-only --format mxfp4 --calibrate mr-gptq"},
            {"row": "auto-4.5-w", "perplexity": 15.0, "bits_per_weight": 4.5, "flags": "--auto bits=4.5"}]
    got = {r["row"]: gap_closed(r, rows) for r in rows}
    assert got["mxfp4-w-gptq"] == pytest.approx(0.6) and got["mxfp4-w-mr-gptq"] == pytest.approx(0.8)
    assert got["auto-4.5-w"] == pytest.approx(0.5)  # vs the best uniform RTN row, not a calibrated one
    assert got["none"] is None and got["mxfp4-w"] is None
    # NV formats count their per-tensor scale (4.5000375 bits/weight on SmolLM2): still a 4.5-bit row
    rows.append({"row": "if4-w", "perplexity": 12.5, "bits_per_weight": 4.5000375, "flags": "--weights-only --format if4"})
    assert gap_closed(rows[-2], rows) == pytest.approx(-1.0)
    # the divergence's gap: from the none row's KL (~0) to the best uniform row's by KL
    for r, d in zip(rows, (0.0, 0.4, 0.2, 0.1, 0.25, 0.3)):
        r["kl"] = d
    assert gap_closed(rows[4], rows, "kl") == pytest.approx(1 - 0.25 / 0.3)  # vs if4-w (0.3), not mxfp4-w
    assert gap_closed(rows[2], rows, "kl") == pytest.approx(0.5)
    del rows[0]["kl"]
    assert gap_closed(rows[4], rows, "kl") is None

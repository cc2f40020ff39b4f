"""`mxc compile --auto`: the per-layer search (mxc.selection), its solver, its policy and its errors."""

import itertools
import sys
import json
import random

import pytest
import torch

from conftest import EXAMPLES, run_mxc, run_mxc_subprocess
from mxc.compiler.driver import compile_file
from mxc.options import Options
from mxc.selection.budget import AutoError, AutoSpec
from mxc.selection.solver import Coupling, Infeasible, solve

# gate and up read one activation (a coupled group); K = 64 and 128 take every Hadamard size but 128 / all
GATED = """
import torch
class Gated(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.gate = torch.nn.Linear(64, 128)
        self.up = torch.nn.Linear(64, 128)
        self.down = torch.nn.Linear(128, 64)
        self.head = torch.nn.Linear(64, 32, bias=False)
    def forward(self, x):
        h = self.down(torch.nn.functional.silu(self.gate(x)) * self.up(x))
        return self.head(h + x)
def get_model():
    torch.manual_seed(0)
    return Gated()
def get_example_inputs():
    return (torch.randn(16, 64, generator=torch.Generator().manual_seed(1)),)
def get_calibration_inputs():
    g = torch.Generator().manual_seed(2)
    return [(torch.randn(16, 64, generator=g),) for _ in range(3)]
def get_eval_inputs():
    g = torch.Generator().manual_seed(3)
    return [(torch.randn(16, 64, generator=g),) for _ in range(2)]
def get_loss(out, x):
    return (out - x[:, :32]).square().mean()
"""


def _auto(path, out=None, auto="bits=4.5", **kw):
    return compile_file(path, out, Options(auto=auto, **kw), compile_to="formats").manifest


def test_solver_matches_brute_force():
    rng = random.Random(0)
    for _ in range(150):
        sizes = [rng.randint(1, 4) for _ in range(rng.randint(1, 5))]
        costs = [[rng.randint(1, 20) for _ in range(s)] for s in sizes]
        scores = [[rng.random() for _ in range(s)] for s in sizes]
        budget = rng.randint(0, 60)
        couplings = []
        if len(sizes) > 1 and rng.random() < 0.5:
            couplings = [Coupling((0, 1), tuple(tuple(rng.choice("ab") for _ in range(sizes[m])) for m in (0, 1)))]
        feasible = [p for p in itertools.product(*map(range, sizes))
                    if sum(costs[i][j] for i, j in enumerate(p)) <= budget
                    and not (couplings and couplings[0].keys[0][p[0]] != couplings[0].keys[1][p[1]])]
        best = min((sum(scores[i][j] for i, j in enumerate(p)) for p in feasible), default=None)
        if best is None:
            with pytest.raises(AutoError):
                solve(costs, scores, budget, couplings)
            continue
        picks = solve(costs, scores, budget, couplings)
        assert sum(costs[i][j] for i, j in enumerate(picks)) <= budget
        assert sum(scores[i][j] for i, j in enumerate(picks)) == pytest.approx(best, abs=1e-9)
        if couplings:
            assert couplings[0].keys[0][picks[0]] == couplings[0].keys[1][picks[1]]


def test_solver_names_the_least_achievable_cost():
    with pytest.raises(Infeasible) as e:
        solve([[5, 9], [3, 4]], [[1.0, 0.0], [1.0, 0.0]], 7)
    assert e.value.least == 8


def test_solver_budget_within_the_milp_tolerance():
    """Costs of 1e9 units (picoseconds: milliseconds of GEMM time) and a budget 1 unit below a solution:
    HiGHS's feasibility tolerance lets that solution through; the retries step past it."""
    costs, scores = [[1_000_000_000, 10], [1_000_000_000, 10]], [[0.0, 1.0], [0.0, 1.0]]
    assert solve(costs, scores, 1_000_000_009) == [1, 1]
    assert solve(costs, scores, 1_000_000_010) in ([0, 1], [1, 0])


def test_budget_respected_and_more_bits_predict_less_loss(write_model):
    path = write_model(GATED)
    for bits in (4.25, 4.5, 5.0, 6.25, 8.25, 40):
        auto = _auto(path, auto=f"bits={bits}", weights_only=True)["auto"]
        assert auto["effective_bits"] <= bits + 1e-12
        predicted = [score for _, score in auto["frontier"]]  # the knapsack's least score per budget
        assert predicted and all(a >= b for a, b in zip(predicted, predicted[1:])), predicted
    assert auto["predicted_score"] == 0.0  # 40 bits: everything may stay in f32, which changes nothing
    assert auto["check"]["final"].startswith("the knapsack keeps every layer in high precision")


def test_policy_is_deterministic_and_reusable(write_model, tmp_path):
    path = write_model(GATED)
    m1 = _auto(path, tmp_path / "a", auto="bits=5")
    _auto(path, tmp_path / "b", auto="bits=5")
    policy = (tmp_path / "a" / "policy.toml").read_bytes()
    assert policy == (tmp_path / "b" / "policy.toml").read_bytes()
    again = compile_file(path, tmp_path / "c", Options(policy=str(tmp_path / "a" / "policy.toml")),
                         compile_to="formats").manifest
    formats = lambda m: {r["layer"]: (r["weight_format"], r["activation_format"]) for r in m["layers"]}  # noqa: E731
    assert formats(again) == formats(m1)
    assert m1["auto"]["calibration"] == {"source": "get_calibration_inputs()", "batches": 3, "scored_on": 2,
                                         "checked_on": 1, "shapes": [[16, 64]], "loss": "get_loss()"}
    rows = {r["layer"]: r for r in m1["layers"]}
    assert rows["gate"]["decision"].startswith(m1["auto"]["layers"]["gate"]["choice"] + " (--auto bits=5: score")


def test_one_spec_per_cost_class_decided_end_to_end(write_model, tmp_path):
    """Each cost class keeps the spec with the lowest held-out loss of those tried, and every layer
    of that class takes it (the layers here all have every spec: K = 64 and 128)."""
    path = write_model(GATED)
    auto = _auto(path, tmp_path / "o", auto="bits=6", weights_only=True)["auto"]
    code, out, _ = run_mxc("inspect", tmp_path / "o")
    assert code == 0 and "one spec per cost class:" in out and "final check:" in out
    assert "(scores on the first 2, checks on the last 1, held out)" in out
    assert "# end-to-end check on 1 held-out calibration batch(es): " in (tmp_path / "o" / "policy.toml").read_text()
    reps = auto["check"]["representatives"]
    assert {"4.25 bits/weight, weights-only", "4.5 bits/weight, weights-only"} <= set(reps)
    for rep in reps.values():
        assert 1 <= len(rep["losses"]) <= 3 and rep["chosen"] == min(rep["losses"], key=rep["losses"].get)
    chosen = {rep["chosen"] for rep in reps.values()}
    assert {d["choice"] for d in auto["layers"].values()} <= chosen | {"none"}
    assert auto["timings_s"]["check"] > 0


class _Losses:
    """A PolicyCheck whose loss is a given function of the assignment (layer -> choice text)."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def release(self):
        pass

    def loss(self, assignment, batches=None):
        self.calls += 1
        return self.fn({k: str(c.weight) for k, c in assignment.items()})


def test_split_batches_holds_out_a_quarter_for_the_checks():
    from mxc.selection.search import split_batches

    b = [(i,) for i in range(8)]
    assert split_batches(b) == (b[:6], b[6:])
    assert split_batches(b[:4]) == (b[:3], b[3:4]) and split_batches(b[:2]) == (b[:1], b[1:2])
    fit, held = split_batches(b[:1])
    assert fit == held == b[:1]  # one batch: nothing to hold out, it serves both


def test_final_check_keeps_the_lower_held_out_loss():
    from mxc.numerics import FormatSpec
    from mxc.policy import Choice
    from mxc.selection.candidates import LayerInfo
    from mxc.selection.search import final_check

    layers = [LayerInfo(n, 8, 64, 64, True, 32) for n in "ab"]
    menu = [Choice(None), Choice(FormatSpec.parse("mxfp4")), Choice(FormatSpec.parse("if4")),
            Choice(FormatSpec.parse("mxint8"))]
    costs = [[128, 17, 18, 33]] * 2
    reps = {(4.25, None): 3.0, (4.5, None): 2.0, (8.25, None): 1.0}  # cost class -> its representative's loss
    mixed = [1, 3]  # mxfp4 + mxint8: 50 of a budget of 50
    # the uniform policy within the budget with the best representative loss is if4 (mxint8 does not fit)
    worse = _Losses(lambda a: 2.5 if a["a"] != a["b"] else 2.0)
    picks, verdict = final_check(layers, [menu] * 2, costs, 50, [], mixed, reps, worse)
    assert picks == [2, 2] and verdict["final"]["kept"] == "uniform" and worse.calls == 2
    assert verdict["final"]["uniform"] == "4.5 bits/weight, weights-only"
    better = _Losses(lambda a: 1.5 if a["a"] != a["b"] else 2.0)
    picks, verdict = final_check(layers, [menu] * 2, costs, 50, [], mixed, reps, better)
    assert picks == mixed and verdict["final"]["kept"] == "knapsack"
    picks, verdict = final_check(layers, [menu] * 2, costs, 34, [], [1, 1], reps, better)  # only mxfp4 fits: it is
    assert picks == [1, 1] and "is the uniform one" in verdict["final"]                    # the knapsack's own
    picks, verdict = final_check(layers, [menu] * 2, costs, 300, [], [0, 0], reps, better)
    assert picks == [0, 0] and "high precision" in verdict["final"]


def test_redundant_formats_quantize_as_their_twin_and_stay_off_the_default_menu():
    from mxc.numerics.quantize import quantize
    from mxc.selection.candidates import REDUNDANT, LayerInfo, candidates
    from mxc.targets import get_target

    g = torch.Generator().manual_seed(0)
    w = torch.randn(64, 256, generator=g) * torch.exp(torch.randn(64, 1, generator=g))  # rows 2^-6..2^6 apart
    for f, twin in REDUNDANT.items():
        assert torch.equal(quantize(w, f).dequantize(), quantize(w, twin).dequantize())
        w2 = w.clone()
        w2[0, :16] *= 2.0**-20  # a block far below the tensor's amax: the twin's scale is subnormal there
        assert not torch.equal(quantize(w2, f).dequantize()[0, :16], quantize(w2, twin).dequantize()[0, :16])
    layer = LayerInfo("l", 8, 256, 64, True, 32)
    names = lambda cs: {c.weight.format.name for c in cs if c.weight is not None}  # noqa: E731
    default = names(candidates(layer, "any", get_target("cpu")))
    assert "nvfp4" in default and not default & set(REDUNDANT)
    assert names(candidates(layer, "w", get_target("cpu"), ("nvfp4", "fp4_ue5m3"))) == {"nvfp4", "fp4_ue5m3"}


def test_undominated_classes_drop_only_what_loses_on_every_layer_by_the_margin():
    from mxc.numerics import FormatSpec
    from mxc.policy import Choice
    from mxc.selection.candidates import LayerInfo
    from mxc.selection.scoring import Scored
    from mxc.selection.search import DOMINANCE_MARGIN, undominated_classes

    w = lambda f, a=None: Choice(FormatSpec.parse(f), None if a is None else FormatSpec.parse(a))  # noqa: E731
    menu = [Choice(None), w("mxfp4", "mxint8"), w("mxfp4", "mxfp4"), w("nvint4", "nvint4"), w("mxint8", "mxint8")]
    layers = [LayerInfo(n, 8, 64, 64, True, 32) for n in "ab"]
    costs = [[128, 17, 17, 18, 33]] * 2
    score = lambda *v: [Scored(c, x, False) for c, x in zip(menu, (0.0, *v))]  # noqa: E731
    # MXFP4 activations: 2x MXINT8's score on both layers (dropped); NVINT4: within the margin on layer b (kept)
    rows = [score(1.0, 2.0, 1.5, 0.1), score(1.0, 2.0, DOMINANCE_MARGIN * 0.99, 0.1)]
    live, dropped = undominated_classes(layers, [menu] * 2, rows, costs)
    assert dropped == [(4.25, "mxfp4")] and live == {(4.25, "mxint8"), (4.5, "nvint4"), (8.25, "mxint8")}
    # a class that wins on one layer stays; `none` dominates what costs more (a speed budget's small layer)
    rows = [score(1.0, 2.0, 1.5, 0.1), score(1.0, 0.5, 1.5, 0.1)]
    live, dropped = undominated_classes(layers, [menu] * 2, rows, [[10, 17, 17, 18, 33], [128, 17, 17, 18, 33]])
    assert dropped == [(4.25, "mxint8"), (4.5, "nvint4")] and live == {(4.25, "mxfp4"), (8.25, "mxint8")}


def test_layer_scores_estimate_then_score_exactly(write_model):
    """The first pass estimates on SUBSAMPLE rows; refine() scores on every token; the others scale by
    their class's exact / estimate ratio."""
    from mxc.compiler.frontend import load_model_file
    from mxc.numerics import FormatSpec, fake_quantize
    from mxc.policy import Choice
    from mxc.selection import scoring
    from mxc.selection.sensitivity import calibrate

    spec = load_model_file(write_model(GATED))
    g = torch.Generator().manual_seed(5)
    batches = [(torch.randn(4 * scoring.SUBSAMPLE, 64, generator=g),)]
    rec = calibrate(spec.model, batches, {"gate"}, spec.loss)["gate"]
    x, w, grad = rec.operands()
    menu = [Choice(None)] + [Choice(FormatSpec.parse(f)) for f in ("mxfp4", "mxfp4{scale_rule=even}", "nvfp4")]
    exact = [0.0] + [float((grad * (x @ (fake_quantize(w, c.weight, axis=-1) - w).T)).square().sum(dtype=torch.float64))
                     for c in menu[1:]]
    layer = scoring.LayerScores(rec, menu)
    assert layer.estimates[0] == 0.0 and layer.estimates[1:] != pytest.approx(exact[1:], rel=1e-9)
    assert layer.estimates[1:] == pytest.approx(exact[1:], rel=0.2)  # a quarter of the rows, scaled
    layer.refine([1, 3])
    by_class = lambda c: c.weight.format.name  # noqa: E731  (mxfp4's two specs: one class)
    got = layer.scored(by_class)
    assert [s.full for s in got] == [True, True, False, True]
    assert got[1].score == pytest.approx(exact[1], rel=1e-5) and got[3].score == pytest.approx(exact[3], rel=1e-5)
    ratio = got[1].score / layer.estimates[1]
    assert got[2].score == pytest.approx(layer.estimates[2] * ratio, rel=1e-12)
    small = scoring.LayerScores(calibrate(spec.model, [tuple(spec.example_inputs)], {"gate"}, spec.loss)["gate"], menu)
    assert all(s.full for s in small.scored(by_class))  # no more rows than SUBSAMPLE: every estimate is exact


def test_first_pass_counts_the_heaviest_rows_once():
    """A stratified subsample: the HEAVY rows of largest |x|^2 |g|^2 (an LLM's attention sinks) once each,
    every k-th of the rest k times; the weights add up to the row count."""
    from mxc.selection import scoring

    g = torch.Generator().manual_seed(0)
    x = torch.randn(1024, 8, generator=g)
    x[512] *= 100  # a window's first token
    xs, weight = scoring._first_rows(x, None, tokens=True)
    assert xs.shape[0] <= scoring.SUBSAMPLE and float(weight.square().sum()) == pytest.approx(1024)
    heavy = int((weight.squeeze(1) == 1).sum())
    assert heavy == scoring.HEAVY and any(torch.equal(r, x[512]) for r in xs[:heavy])
    grad = torch.randn(1024, 4, generator=g)
    xs, gs = scoring._first_rows(x, grad, tokens=True)
    assert gs.shape == (xs.shape[0], 4) and float((gs.square().sum() / grad.square().sum())) == pytest.approx(1, rel=0.2)


def test_policy_check_switches_operands_and_restores_them(write_model):
    from mxc.compiler.frontend import load_model_file
    from mxc.numerics import FormatSpec
    from mxc.policy import Choice
    from mxc.selection.check import PolicyCheck
    from mxc.selection.sensitivity import calibrate

    spec = load_model_file(write_model(GATED))
    batches = [tuple(b) for b in spec.calibration_inputs]
    graph = []
    records = calibrate(spec.model, batches, {"gate", "up", "down"}, spec.loss, graph=graph)
    check = PolicyCheck(graph[0], records, batches, spec.loss)
    with torch.no_grad():
        true = sum(float(spec.loss(spec.model(*b), *b)) for b in batches) / len(batches)
    assert check.loss({}) == pytest.approx(true, rel=1e-6)
    quantized = check.loss({n: Choice(FormatSpec.parse("mxfp4"), FormatSpec.parse("mxfp4")) for n in records})
    assert quantized != pytest.approx(true, rel=1e-6)
    assert check.loss({}) == pytest.approx(true, rel=1e-6)  # the operands are restored after each policy
    assert len(records["gate"].acts) == len(batches)  # the taps record only during calibration
    no_loss = PolicyCheck(graph[0], records, batches, None)  # without get_loss: the outputs' squared difference
    assert no_loss.loss({}) == 0.0 and no_loss.loss({"down": Choice(FormatSpec.parse("mxfp4"))}) > 0


def test_coupled_layers_share_one_activation_format(write_model):
    path = write_model(GATED)
    auto = _auto(path, auto="bits=4.5,acts=any")["auto"]
    assert auto["coupled_groups"] == [["gate", "up"]]
    check = auto["check"]  # a dominated class is neither checked nor chosen
    assert isinstance(check["dominated"], list) and set(check["dominated"]).isdisjoint(check["representatives"])
    rows = {r["layer"]: r for r in compile_file(path, None, Options(auto="bits=4.5,acts=any"),
                                                 compile_to="formats").manifest["layers"]}
    assert rows["gate"]["activation_format"] == rows["up"]["activation_format"]
    same = {r["layer"]: r for r in compile_file(path, None, Options(auto="bits=4.5,acts=wa,same_weights=1"),
                                                 compile_to="formats").manifest["layers"]}
    assert same["gate"]["weight_format"] == same["up"]["weight_format"]
    assert same["gate"]["activation_format"] == same["up"]["activation_format"] != "none"


def test_pinned_layers_are_left_out(write_model, tmp_path):
    path = write_model(GATED)
    pin = tmp_path / "pin.toml"
    pin.write_text('[layers]\n"head" = "none"\n')
    auto = _auto(path, auto="bits=4.5", policy=str(pin), weights_only=True)["auto"]
    assert "head" not in auto["layers"] and auto["pinned"] == {"head": "none"}
    assert auto["effective_bits"] <= 4.5  # head's 32 bits are not in the average


def test_errors(write_model):
    path = write_model(GATED)
    code, _, err = run_mxc("compile", path, "-o", path.parent / "o", "--auto", "bits=3", "--weights-only")
    assert code == 2 and "the smallest achievable is 4.2500 bits/weight" in err
    code, _, err = run_mxc("compile", path, "-o", path.parent / "o", "--auto", "bits=4.5", "--format", "nvfp4")
    assert code == 2 and "--format and --auto exclude each other" in err
    with pytest.raises(ValueError, match="drop --scale-rule"):
        Options(auto="bits=4.5", scale_rule="rceil")
    for text, message in (("bits=4.5,speedup=2", "exactly one budget"), ("bits=-1", "positive"),
                          ("bits=4.5,acts=some", "acts must be"), ("bits=5,formats=mxfp5", "unknown formats"),
                          ("bits", "is not key=value"), ("bytes=3", "unknown key")):
        with pytest.raises(AutoError, match=message):
            AutoSpec.parse(text)


def test_without_calibration_or_loss_warns_and_scores_on_the_examples(tmp_path):
    code, _, err = run_mxc("compile", EXAMPLES / "mlp.py", "-o", tmp_path / "o", "--auto", "bits=6",
                           "--compile-to", "formats", "-q")
    assert code == 0, err
    assert "defines no get_calibration_inputs()" in err and "defines no get_loss(output, *inputs)" in err
    auto = json.loads((tmp_path / "o" / "manifest.json").read_text())["auto"]
    assert auto["calibration"]["source"] == "get_example_inputs()"


def test_a_loss_without_gradient_falls_back_to_output_error(write_model):
    path = write_model(GATED.replace("return (out - x[:, :32]).square().mean()", "return out.argmax(-1).float().mean()"))
    m = _auto(path, auto="bits=5", weights_only=True)
    assert any("the loss cannot be differentiated" in w for w in m["warnings"])
    assert m["auto"]["effective_bits"] <= 5 and m["auto"]["predicted_score"] > 0


def test_auto_artifact_runs_and_matches_its_reference(write_model, tmp_path):
    path = write_model(GATED)
    compile_file(path, tmp_path / "a", Options(auto="bits=4.5,acts=any"))
    code, out, err = run_mxc("run", tmp_path / "a", "--compare")
    assert code == 0, out + err
    assert ": pass" in out


def test_auto_check_compares_scores_with_the_true_loss(write_model, capsys):
    from mxc.tools.auto_check import main

    assert main([str(write_model(GATED)), "--layers", "4", "--formats", "mxfp4", "mxfp8"]) == 0
    out = capsys.readouterr().out
    assert "Spearman rank correlation over 8 (layer, format) pairs" in out
    assert out.count("mxfp4 ") == 4


def test_auto_on_the_real_llm(tmp_path, monkeypatch):
    """SmolLM2-135M at 64 tokens, three candidate formats (CI's time): 210 layers searched, lm_head pinned,
    q/k/v and gate/up coupled."""
    from mxc.tools.perplexity import MODEL, POLICY, skip_reason

    if reason := skip_reason():
        pytest.skip(reason)
    monkeypatch.setenv("SMOLLM2_TOKENS", "64")
    monkeypatch.setenv("SMOLLM2_CALIB_BATCHES", "2")
    code, out, err = run_mxc_subprocess("compile", MODEL, "-o", tmp_path / "o", "--auto",
                                        "bits=4.5,formats=mxfp4+nvfp4+mxfp8", "--weights-only",
                                        "--policy", POLICY, "--compile-to", "formats", "-q")
    assert code == 0, err
    auto = json.loads((tmp_path / "o" / "manifest.json").read_text())["auto"]
    assert len(auto["layers"]) == 210 and auto["pinned"] == {"lm.lm_head": "none"}
    assert auto["effective_bits"] <= 4.5 and auto["calibration"]["loss"] == "get_loss()"
    assert len(auto["coupled_groups"]) == 60
    assert "--auto bits=4.5,formats=mxfp4+nvfp4+mxfp8: " in out and "policy.toml" in out


def test_frontier_and_its_picture(write_model, tmp_path, monkeypatch):
    path = write_model(GATED)
    auto = _auto(path, auto="bits=5", weights_only=True)["auto"]
    bits = [b for b, _ in auto["frontier"]]
    scores = [s for _, s in auto["frontier"]]
    assert bits[0] == 4.25 and all(a >= b for a, b in zip(scores, scores[1:]))  # more bits, never worse
    assert min(s for b, s in auto["frontier"] if b <= 5) >= auto["predicted_score"] - 1e-12
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed: said before the search
    with pytest.raises(AutoError, match="png=FILE needs matplotlib: pip install matplotlib"):
        _auto(path, auto=f"bits=5,png={tmp_path / 'f.png'}", weights_only=True)
    monkeypatch.undo()
    pytest.importorskip("matplotlib")
    _auto(path, auto=f"bits=5,png={tmp_path / 'f.png'}", weights_only=True)
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


# ---------------------------------------------------------------- speed budgets (selection/cost.py)
def _table(rows, version=1):
    return {"version": version, "target": "cuda-sm90", "device": "test", "date": "2026-12-02", "torch": "-",
            "method": "synthetic", "rows": [{"kind": k, "n": n, "k": kk, "m": m, "s": s} for k, n, kk, m, s in rows]}


def test_measured_cost_interpolates_in_size_and_m():
    from mxc.selection.cost import MeasuredCost

    # t = 1e-6 + 1e-12 * N*K at M=1, twice that at M=16, three times at M=17
    rows = [("w=nvfp4", n, n, m, f * (1e-6 + 1e-12 * n * n)) for n in (1024, 4096) for m, f in ((1, 1), (16, 2), (17, 3))]
    c = MeasuredCost(_table(rows))
    at = lambda m, n: c.kind_seconds("w=nvfp4", m, n, n)  # noqa: E731
    assert at(1, 4096) == pytest.approx(1e-6 + 1e-12 * 4096 ** 2)  # on a table point
    assert at(1, 2048) == pytest.approx(1e-6 + 1e-12 * 2048 ** 2)  # between two shapes
    assert at(1, 8192) == pytest.approx(1e-6 + 1e-12 * 8192 ** 2)  # above them: the last segment extended
    assert at(1, 256) == pytest.approx(1e-6 + 1e-12 * 1024 ** 2)  # below them: the smallest shape's time
    assert at(8, 2048) == pytest.approx((1 + 7 / 15) * (1e-6 + 1e-12 * 2048 ** 2))  # linear in M between 1 and 16
    assert at(34, 2048) == pytest.approx(2 * 3 * (1e-6 + 1e-12 * 2048 ** 2))  # above the table: in proportion to M
    with pytest.raises(AutoError, match="no timings for w=mxfp4.*regenerate it"):
        c.kind_seconds("w=mxfp4", 1, 64, 64)
    with pytest.raises(AutoError, match="version 0"):
        MeasuredCost(_table(rows, version=0))


def test_the_shipped_sm90_table_covers_every_kernel_path():
    """A new cuda-sm90 kernel path needs the table regenerated on the GPU (bench_cuda cost-table)."""
    from mxc.kernels.kinds import GEMV_MAX_M
    from mxc.selection.cost import cost_model, kind_key
    from mxc.targets import get_target
    from mxc.tools.bench_cuda import cost_kinds

    c = cost_model(get_target("cuda-sm90"))
    assert {kind_key(w, a) for w, a in cost_kinds()} | {"f32", "bf16", "cublas-f32", "cublas-bf16"} == set(c.lines)
    for lines in c.lines.values():  # the decode/GEMM switch is on the grid: no interpolation across it
        assert {GEMV_MAX_M, GEMV_MAX_M + 1} <= set(lines)
        assert all(t >= 0 for curve in lines.values() for _, t in curve)


@pytest.mark.parametrize("target", ["cuda-sm90", "cuda-sm100"])
def test_speed_budget_respected_and_recorded(write_model, tmp_path, target):
    path = write_model(GATED)
    auto = _auto(path, tmp_path / "a", auto="speedup=1.5", target=target, weights_only=True)["auto"]
    speed = auto["speed"]
    assert speed["target"] == target and speed["estimated_gemm_s"] <= speed["budget_gemm_s"]
    assert speed["budget_gemm_s"] == pytest.approx(speed["high_precision_gemm_s"] / 1.5, rel=1e-9)
    assert speed["estimated_speedup"] >= 1.5
    assert sum(d["estimated_gemm_s"] for d in auto["layers"].values()) == pytest.approx(speed["estimated_gemm_s"])
    assert ("measured on" if target == "cuda-sm90" else "roofline") in speed["cost_model"]["source"]
    assert "estimated GEMM time" in (tmp_path / "a" / "policy.toml").read_text()
    again = _auto(path, tmp_path / "b", auto="speedup=1.5", target=target, weights_only=True)
    assert (tmp_path / "a" / "policy.toml").read_bytes() == (tmp_path / "b" / "policy.toml").read_bytes()
    slower = _auto(path, None, auto="speedup=1.1", target=target, weights_only=True)["auto"]
    assert slower["predicted_score"] <= auto["predicted_score"]  # a looser budget never predicts more loss
    t = _auto(path, None, auto=f"time={speed['estimated_gemm_s'] * 1e6:.6f}us", target=target,
              weights_only=True)["auto"]
    assert t["speed"]["estimated_gemm_s"] <= t["speed"]["budget_gemm_s"]
    assert again["auto"]["frontier"] and all(s >= 1.0 for s, _ in again["auto"]["frontier"])


def test_speed_budget_errors(write_model):
    path = write_model(GATED)
    code, _, err = run_mxc("compile", path, "-o", path.parent / "o", "--auto", "speedup=2")
    assert code == 2 and "need a GPU target's cost model: --target cuda-sm90" in err and "cpu has none" in err
    code, _, err = run_mxc("compile", path, "-o", path.parent / "o", "--auto", "speedup=1000", "--target",
                           "cuda-sm90", "--weights-only", "--compile-to", "formats")
    assert code == 2 and "the smallest achievable is" in err and "us of estimated GEMM time" in err


def test_iree_matmuls_for_the_cost_table_compile(tmp_path, monkeypatch):
    """`bench_cuda iree-matmuls` (here, no GPU): the high-precision matmuls the cost table times, for cuda-sm90."""
    from mxc.tools import bench_cuda

    monkeypatch.setattr(bench_cuda, "IREE_SHAPES", ((256, 256),))
    monkeypatch.setattr(bench_cuda, "IREE_M", (16,))
    bench_cuda.iree_matmuls(tmp_path)
    names = sorted(p.name for p in (tmp_path / "iree").glob("*.vmfb"))
    assert names == ["bf16_256x256_m16.vmfb", "call_1024x1024_m1.vmfb", "f32_256x256_m16.vmfb"]


def test_cost_table_retimes_some_shapes_of_a_table_from_the_same_device():
    """`bench_cuda cost-table DIR --shapes`: the other shapes' rows and IREE's matmuls kept, the named shapes'
    rows dropped (to be timed again); another device or a shape off the grid refused."""
    from mxc.selection.cost import TABLES
    from mxc.tools.bench_cuda import COST_SHAPES, _kept_rows

    path = TABLES / "cuda-sm90-gemm.json"
    old = json.loads(path.read_text())
    big = COST_SHAPES[-1]
    kept = _kept_rows(old, (big,), old["device"], path)
    assert kept and all((r["n"], r["k"]) != big or r["kind"] in ("f32", "bf16") for r in kept)
    assert len(kept) == len([r for r in old["rows"] if (r["n"], r["k"]) != big]) + \
        len([r for r in old["rows"] if (r["n"], r["k"]) == big and r["kind"] in ("f32", "bf16")])
    assert {(r["n"], r["k"]) for r in kept} >= set(COST_SHAPES[:-1])
    with pytest.raises(SystemExit, match="measured on .* this is NVIDIA H100"):
        _kept_rows(old, (big,), "NVIDIA H100 80GB HBM3", path)
    with pytest.raises(SystemExit, match="not among the table's"):
        _kept_rows(old, ((123, 456),), old["device"], path)


def test_cost_table_records_when_each_shape_was_timed():
    """`timed`: today for the shapes a cost-table run times (and IREE's matmuls in a full run), the old table's
    date for the rest; the shipped table names a date for every shape and for IREE's matmuls."""
    from mxc.selection.cost import TABLES
    from mxc.tools.bench_cuda import COST_SHAPES, _timed

    keys = {f"{n}x{k}" for n, k in COST_SHAPES} | {"iree"}
    assert _timed(None, COST_SHAPES, "2026-12-09") == dict.fromkeys(keys, "2026-12-09")
    old = {"date": "2026-12-04", "timed": dict.fromkeys(keys, "2026-12-04")}
    (n, k), rest = COST_SHAPES[0], COST_SHAPES[1:]
    one = _timed(old, [(n, k)], "2026-12-09")
    assert one[f"{n}x{k}"] == "2026-12-09" and all(one[f"{a}x{b}"] == "2026-12-04" for a, b in rest)
    assert one["iree"] == "2026-12-04"
    assert _timed({"date": "2026-11-30"}, [(n, k)], "2026-12-09")["iree"] == "2026-11-30"  # a table without `timed`
    shipped = json.loads((TABLES / "cuda-sm90-gemm.json").read_text())
    assert set(shipped["timed"]) == keys and shipped["date"] == ", ".join(sorted(set(shipped["timed"].values())))

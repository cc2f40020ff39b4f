"""`--auto`: calibrate, score every layer's candidates, solve the budget, write the decided policy.

    layers (from convert-torch-to-mxq) -> candidates per layer (candidates.py)
      -> one forward + backward per calibration batch, taps at every layer (sensitivity.py)
      -> each candidate's gradient-weighted output error, estimated on a subsample of tokens (scoring.py)
      -> the cost classes (bits, activation format) not dominated on every layer (undominated_classes)
      -> one spec per cost class, the one whose uniform policy has the least held-out loss (check.py)
      -> the kept candidates (one per class) scored on every calibration token (scoring.py)
      -> the exact choice under the budget, coupled layers sharing one activation format (solver.py)
      -> the knapsack's policy or the best uniform one within the budget, by held-out loss (check.py)
      -> a TOML policy (one rule per layer) that mxq-select-formats reads like any other

The calibration batches are split (`split_batches`): the scores are fit on the first ones, the
end-to-end checks run on the last quarter (at least one), which the scores never saw, so a policy is
not judged on the data it was fit to. A single batch serves both. (On SmolLM2 at 4.5 bits this did
not change the verdict: the knapsack's mix beat uniform IF4 on the fit batches by 0.022 nats and on
the held-out window by 0.021, and lost to it on the evaluation text by 0.007.)

Layers a user's `--policy` names in a rule are pinned: left out of the search and of the average.
The bits budget counts every searched layer's weights, block scales included (MXFP4 4.25, NVFP4
4.5, MXFP8 8.25 bits/weight); a layer kept in high precision counts its dtype's 32 or 16. A speed
budget (speedup=Y, time=T) counts the searched layers' estimated GEMM time on the target
(cost.py: measured kernel times for cuda-sm90, the roofline for cuda-sm100), at the compiled shapes.
"""

from __future__ import annotations

import dataclasses
import re
import time
import warnings
from dataclasses import dataclass, field

import torch

from mxc.errors import MxcWarning
from mxc.numerics.options import spec_text
from mxc.policy import Choice, Policy
from mxc.targets import Target

from .budget import AutoError, AutoSpec
from .candidates import LayerInfo, bits_per_weight, candidates
from .check import PolicyCheck
from .cost import CostModel, cost_model
from .frontier import check_plotting, frontier, plot, time_frontier
from .report import checked_on, final_text
from .scoring import LayerScores, Scored
from .sensitivity import calibrate
from .solver import Coupling, Infeasible, solve

QUARTER = 4  # costs in quarter bits: every format's bits per weight is a multiple of 1/4
PICO = 1e12  # time costs in picoseconds (integers)


@dataclass(frozen=True)
class Decision:
    layer: str
    choice: Choice
    score: float
    bits: float
    runner_up: Scored | None  # the best other candidate at no more cost (None: nothing cheaper)
    candidates: int
    scored: int  # candidates scored on every token (the rest were estimated on a subsample)
    seconds: float
    gemm_s: float | None = None  # estimated GEMM time of the choice (speed budgets)

    def to_dict(self) -> dict:
        up = self.runner_up
        return {"choice": _choice_text(self.choice), "score": self.score, "bits_per_weight": self.bits,
                "runner_up": None if up is None else {"choice": _choice_text(up.choice), "score": up.score,
                                                      "scored": up.full},
                "candidates": self.candidates, "scored": self.scored, "seconds": round(self.seconds, 3),
                **({"estimated_gemm_s": self.gemm_s} if self.gemm_s is not None else {})}


@dataclass
class Selection:
    """What the search decided, for the manifest (`record`) and the artifact (`policy`)."""

    auto: AutoSpec
    decisions: list[Decision]
    pinned: dict[str, Choice]
    groups: list[list[str]]
    effective_bits: float
    calibration: dict
    timings: dict = field(default_factory=dict)
    frontier: list = field(default_factory=list)  # (bits per weight or speedup, least predicted score) per budget
    speed: dict | None = None  # speed budgets: the cost model and the estimated GEMM times
    check: dict = field(default_factory=dict)  # the end-to-end checks (check.py): representatives, final

    def record(self) -> dict:
        return {"budget": self.auto.to_dict(), "objective": "sum over layers of sum g^2 (Y_q - Y)^2",
                "effective_bits": round(self.effective_bits, 4),
                **({"speed": self.speed} if self.speed else {}),
                "predicted_score": sum(d.score for d in self.decisions),
                "check": self.check,
                "calibration": self.calibration, "coupled_groups": self.groups,
                "frontier": [[round(b, 4), s] for b, s in self.frontier],
                "pinned": {k: _choice_text(c) for k, c in self.pinned.items()},
                "layers": {d.layer: d.to_dict() for d in self.decisions},
                "timings_s": {k: round(v, 3) for k, v in self.timings.items()}}

    def policy(self, calibrate: str = "") -> str:
        """A TOML policy with one rule per layer: reusable with --policy, readable by a person (with
        `calibrate`, --calibrate's method as its top-level key, so the policy alone reproduces the compile)."""
        head = [f"# mxc --auto {self.auto.text}: {self.effective_bits:.4f} bits/weight over "
                f"{len(self.decisions)} searched layers (scales counted)",
                "# objective: the gradient-weighted output error, sum g^2 (Y_q - Y)^2, per layer, one spec per cost "
                "class;", f"# end-to-end check on {checked_on(self.calibration)}: {final_text(self.check.get('final'))}",
                *([f"# estimated GEMM time on {self.speed['target']}: {self.speed['estimated_gemm_s'] * 1e6:.1f} us, "
                   f"{self.speed['estimated_speedup']:.2f}x the high-precision "
                   f"{self.speed['high_precision_gemm_s'] * 1e6:.1f} us"] if self.speed else []),
                'default = "none"', 'scale_rule = "floor"', 'rounding = "rne"', 'error_metric = "mse"',
                'hadamard = "none"', "weights_only = false", *([f'calibrate = "{calibrate}"'] if calibrate else []),
                "", "[layers]"]
        rules = [f"{_pattern(k)} = {_rule(c)}  # pinned by --policy" for k, c in self.pinned.items()]
        rules += [f"{_pattern(d.layer)} = {_rule(d.choice)}  # score {d.score:.4g}" for d in self.decisions]
        return "\n".join(head + rules) + "\n"


def _choice_text(c: Choice) -> str:
    return "none" if c.weight is None else c.decision()


def _pattern(layer: str) -> str:
    """The layer's name as a TOML key that fnmatch matches only literally."""
    escaped = re.sub(r"([*?\[])", r"[\1]", layer)
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _rule(c: Choice) -> str:
    if c.weight is None:
        return '"none"'
    if c.act is None:
        return f'{{ format = "{spec_text(c.weight)}", weights_only = true }}'
    return f'{{ format = "{spec_text(c.weight)}", act_format = "{c.act.name}", weights_only = false }}'


def calibration_batches(spec, who: str = "--auto") -> tuple[list[tuple], str]:
    """model.py's calibration batches (or its example inputs, with a warning) and where they came from."""
    data = spec.calibration_inputs
    if data is None:
        what = "the layers are scored" if who == "--auto" else "the weights are calibrated"
        warnings.warn(f"{who}: {spec.path.name} defines no get_calibration_inputs(); {what} on "
                      "get_example_inputs() alone. Add get_calibration_inputs() returning a list of input "
                      "tuples (a few batches of real data)", MxcWarning, stacklevel=2)
        return [tuple(spec.example_inputs)], "get_example_inputs()"
    items = [data] if isinstance(data, (torch.Tensor, tuple)) else list(data)
    batches = [(b,) if isinstance(b, torch.Tensor) else tuple(b) for b in items]
    shapes = [[tuple(t.shape) for t in b] for b in batches]
    if not batches or any(s != shapes[0] for s in shapes):
        raise AutoError(f"{spec.path.name}: get_calibration_inputs() must return a non-empty list of input "
                        f"tuples of one shape (the graph is exported once); got shapes {shapes[:4]}")
    return batches, "get_calibration_inputs()"


HELD_OUT = 4  # one calibration batch in this many (at least one) is held out of the scores for the checks


def split_batches(batches: list[tuple]) -> tuple[list[tuple], list[tuple]]:
    """(the batches the scores are fit on, the held-out ones the end-to-end checks run on): the last
    len // HELD_OUT, at least one, held out; a single batch is both (the same list)."""
    if len(batches) < 2:
        return batches, batches
    held = max(1, len(batches) // HELD_OUT)
    return batches[:-held], batches[-held:]


def _cost_class(layer: LayerInfo):
    return lambda c: (bits_per_weight(c, layer), None if c.act is None else c.act.name)


def search(spec, layers: list[LayerInfo], auto: AutoSpec, target: Target, weights_only: bool,
           policy: Policy | None = None, progress: bool = False) -> Selection:
    """Choose every layer's format under `auto`'s budget (see the module docstring)."""
    costing = cost_model(target) if auto.kind != "bits" else None  # before the search: a target without one fails now
    if auto.png:
        check_plotting()  # before the search, not after it
    t0 = time.perf_counter()
    chosen = {lay.name: policy.choose(lay.name) for lay in layers} if policy is not None else {}
    pinned = {name: choice for name, (choice, source) in chosen.items() if source != "default"}
    searched = [lay for lay in layers if lay.name not in pinned]
    if not searched:
        raise AutoError("--auto: every quantizable layer is pinned by the policy's rules; nothing to search")
    batches, source = calibration_batches(spec)
    fit, held = split_batches(batches)
    if spec.loss is None:
        warnings.warn(f"--auto: {spec.path.name} defines no get_loss(output, *inputs); the layers are scored by "
                      "their effect on the outputs (a random projection). Define get_loss for the model's own "
                      "loss (e.g. next-token cross-entropy)", MxcWarning, stacklevel=2)
    graph: list = []
    with _bar(progress, len(fit), "calibrate") as bar:
        records = calibrate(spec.model, fit, {lay.name for lay in searched}, spec.loss, bar.update, graph)
    check = PolicyCheck(graph[0], records, held, spec.loss)
    searched = [dataclasses.replace(lay, dtype_bits=records[lay.name].dtype_bits) for lay in searched]
    groups = _groups(searched, records)
    t1 = time.perf_counter()
    acts = auto.acts_for(weights_only)
    menus = [candidates(lay, acts, target, auto.formats) for lay in searched]
    full_bits = [[round(bits_per_weight(c, lay) * QUARTER) * lay.numel for c in menu] for lay, menu in zip(searched, menus)]
    total = sum(lay.numel for lay in searched)
    if costing is None:
        full_costs, budget = full_bits, int(auto.bits * QUARTER * total)
    else:
        full_costs, budget, none_ps = _time_costs(searched, menus, costing, auto)
    least = sum(map(min, full_costs))  # (without the couplings: the solver names the least with them)
    if least > budget:  # before any scoring
        raise _infeasible(auto, least, total, none_ps if costing else None)
    layer_scores, seconds = [], []
    with _bar(progress, len(searched), "estimate") as bar:  # the first pass: every candidate on a subsample
        for lay, menu in zip(searched, menus):
            t = time.perf_counter()
            layer_scores.append(LayerScores(records[lay.name], menu))
            seconds.append(time.perf_counter() - t)
            bar.update()
    t2 = time.perf_counter()
    estimated = [ls.scored(_cost_class(lay)) for ls, lay in zip(layer_scores, searched)]
    live, dominated = undominated_classes(searched, menus, estimated, full_costs)
    # one weight spec per cost class, decided end to end (check.py); the knapsack solves over those
    kept, reps, class_losses = representatives(searched, menus, estimated, check, progress, live)
    t3 = time.perf_counter()
    scored = []
    with _bar(progress, len(searched), "score") as bar:  # the second pass: what the knapsack weighs, on every token
        for i, lay in enumerate(searched):
            t = time.perf_counter()
            layer_scores[i].refine(kept[i])
            scored.append(layer_scores[i].scored(_cost_class(lay)))
            rec = records.pop(lay.name)
            rec.acts.clear(), rec.grads.clear(), rec.rhs.clear()  # (the tapped graph still holds the record)
            layer_scores[i] = None
            seconds[i] += time.perf_counter() - t
            bar.update()
    t4 = time.perf_counter()
    menus = [[menu[j] for j in ks] for menu, ks in zip(menus, kept)]
    costs = [[row[j] for j in ks] for row, ks in zip(full_costs, kept)]
    bits = [[row[j] for j in ks] for row, ks in zip(full_bits, kept)]
    scores = [[scored_row[j].score for j in ks] for scored_row, ks in zip(scored, kept)]
    couplings = _couplings(searched, menus, groups, auto.same_weights)
    try:
        picks = solve(costs, scores, budget, couplings)
    except Infeasible as e:
        raise _infeasible(auto, e.least, total, none_ps if costing else None) from None
    t = time.perf_counter()
    picks, verdict = final_check(searched, menus, costs, budget, couplings, picks, class_losses, check)
    t_final = time.perf_counter() - t
    verdict["representatives"] = reps
    verdict["dominated"] = [_class_text(key) for key in dominated]
    used = sum(bits[i][j] for i, j in enumerate(picks))
    picked = [ks[j] for ks, j in zip(kept, picks)]  # indices into the full menus (runner-ups from all candidates)
    decisions = [_decision(lay, row, j, secs, crow, costing is not None)
                 for lay, row, j, secs, crow in zip(searched, scored, picked, seconds, full_costs)]
    t5 = time.perf_counter()
    speed = None
    if costing is None:
        points = frontier(costs, scores, couplings, QUARTER * total)
    else:
        spent = sum(costs[i][j] for i, j in enumerate(picks))
        points = time_frontier(costs, scores, couplings, none_ps)
        speed = {"cost_model": costing.record(), "target": target.name,
                 "estimated_gemm_s": spent / PICO, "high_precision_gemm_s": none_ps / PICO,
                 "estimated_speedup": none_ps / max(spent, 1), "budget_gemm_s": budget / PICO,
                 "scope": "the searched layers' GEMM kernels at the compiled shapes (attention, norms, "
                          "pinned layers and launch gaps not counted)"}
    calib = {"source": source, "batches": len(batches), "scored_on": len(fit),
             "checked_on": len(held) if len(batches) > 1 else "the same batch (one batch: nothing held out)",
             "shapes": [list(t.shape) for t in batches[0]],
             "loss": "get_loss()" if spec.loss else "random projection of the outputs"}
    sel = Selection(auto, decisions, pinned, groups, used / QUARTER / max(total, 1), calib,
                    {"calibrate": t1 - t0, "estimate": t2 - t1, "exact": t4 - t3, "score": t2 - t1 + t4 - t3,
                     "check": t3 - t2 + t_final, "solve": t5 - t4 - t_final,
                     "per_layer_mean": (t2 - t1 + t4 - t3) / len(searched)}, points, speed, verdict)
    if auto.png:
        x = sel.effective_bits if speed is None else speed["estimated_speedup"]
        plot(auto.png, points, (x, sum(d.score for d in decisions)),
             [(d.layer, d.bits, d.choice.weight.name if d.choice.weight else "none") for d in decisions],
             f"--auto {auto.text}", "bits per weight (scales counted)" if speed is None else
             f"estimated GEMM speedup over high precision ({target.name})")
    return sel


REPRESENTATIVE_TRIALS = 3  # specs per cost class tried end to end (the best by summed score) ...
SCORE_BAND = 1.5  # ... of those within this factor of the class's least summed score


def representatives(layers: list[LayerInfo], menus: list[list[Choice]], scored: list[list[Scored]],
                    check: PolicyCheck, progress: bool = False, live: set | None = None
                    ) -> tuple[list[list[int]], dict, dict]:
    """Each layer's menu cut to `none` and one choice per cost class (bits, activation format) of
    `live` (all: None): the
    class's spec (weights and activations) that, applied to every layer that has it, gives the lowest
    loss on the first held-out calibration batch, of the REPRESENTATIVE_TRIALS best by score summed over the
    layers that are within SCORE_BAND of the best: where the scores separate two specs clearly, they
    decide (a loss difference of a near-lossless format is mostly the text's noise: on SmolLM2 one
    batch put MXFP8 with the rceil rule before MXINT8, whose predictions are 6x closer to the
    unquantized model's, KL 0.0028 vs 0.016); where they do not, the loss does. Every class has its
    representative's loss: it ranks final_check's uniform policies. A layer without that spec (a
    Hadamard size that does not divide its K) keeps its best-scored one of the class. Returns the kept
    indices per layer, per class (by its text) the specs tried and their losses, and per class key the
    chosen spec's loss."""
    classes: dict = {}  # class -> spec text -> [(layer index, menu index)]
    for i, (lay, menu) in enumerate(zip(layers, menus)):
        cost_class = _cost_class(lay)
        for j, c in enumerate(menu):
            if c.weight is not None and (live is None or cost_class(c) in live):
                classes.setdefault(cost_class(c), {}).setdefault(_choice_text(c), []).append((i, j))
    trials = {}  # class -> the specs to try
    for key, specs in classes.items():
        most = max(len(members) for members in specs.values())
        totals = {t: sum(scored[i][j].score for i, j in members) for t, members in specs.items() if len(members) == most}
        ranked = sorted(totals, key=totals.get)[:REPRESENTATIVE_TRIALS]
        trials[key] = [t for t in ranked if totals[t] <= SCORE_BAND * totals[ranked[0]]]
    tried: dict = {key: {} for key in trials}
    policy = lambda key, text: {layers[i].name: menus[i][j] for i, j in classes[key][text]}  # noqa: E731
    weight_spec = lambda kt: str(next(iter(policy(*kt).values())).weight)  # noqa: E731
    # policies that share a weight spec run one after the other: the check keeps its fake-quantized weights
    order = sorted(((key, text) for key, texts in trials.items() for text in texts), key=weight_spec)
    with _bar(progress, len(order), "check") as bar:
        for key, text in order:
            tried[key][text] = check.loss(policy(key, text), batches=1)
            bar.update()
    check.release()
    chosen, record, losses = {}, {}, {}
    for key, texts in trials.items():
        by_rank = {text: tried[key][text] for text in texts}
        chosen[key] = min(by_rank, key=by_rank.get)
        losses[key] = by_rank[chosen[key]]
        record[_class_text(key)] = {"chosen": chosen[key], "losses": by_rank}
    kept = []
    for i, (lay, menu) in enumerate(zip(layers, menus)):
        cost_class, best = _cost_class(lay), {}
        for j, c in enumerate(menu):
            if c.weight is None or cost_class(c) not in chosen:
                continue
            key = cost_class(c)
            if _choice_text(c) == chosen[key]:
                best[key] = (float("-inf"), j)
            elif key not in best or scored[i][j].score < best[key][0]:
                best[key] = (scored[i][j].score, j)
        kept.append([j for j, c in enumerate(menu) if c.weight is None] + sorted(j for _, j in best.values()))
    return kept, record, losses


def final_check(layers: list[LayerInfo], menus: list[list[Choice]], costs: list[list[int]], budget: int,
                couplings: list[Coupling], picks: list[int], class_losses: dict,
                check: PolicyCheck) -> tuple[list[int], dict]:
    """The knapsack's picks, or the uniform policy (one class on every layer) within the budget whose
    representative had the lowest loss (`class_losses`: cost class -> that loss), whichever has the
    lower loss on every held-out calibration batch."""
    uniform = []  # (loss on the first held-out batch, class, picks)
    for key, loss in class_losses.items():
        option = [next((j for j, c in enumerate(menu) if c.weight is not None and _cost_class(lay)(c) == key), None)
                  for lay, menu in zip(layers, menus)]
        if (any(j is None for j in option) or sum(row[j] for row, j in zip(costs, option)) > budget
                or any(len({keys[option[m]] for m, keys in zip(c.members, c.keys)}) > 1 for c in couplings)):
            continue
        uniform.append((loss, _class_text(key), option))
    if all(menu[j].weight is None for menu, j in zip(menus, picks)):
        return picks, {"final": "the knapsack keeps every layer in high precision: nothing to check"}
    if not uniform:
        return picks, {"final": "no uniform policy fits the budget"}
    _, key_text, option = min(uniform, key=lambda u: u[0])
    if option == picks:
        return picks, {"final": f"the knapsack's policy is the uniform one ({key_text})"}
    assign = lambda p: {lay.name: menu[j] for lay, menu, j in zip(layers, menus, p)}  # noqa: E731
    solved, single = check.loss(assign(picks)), check.loss(assign(option))
    check.release()
    kept = "knapsack" if solved <= single else "uniform"
    return (picks if kept == "knapsack" else option), {
        "final": {"knapsack_loss": solved, "uniform": key_text, "uniform_loss": single, "kept": kept}}


def _infeasible(auto: AutoSpec, least: int, total: int, none_ps: int | None) -> AutoError:
    """The error of a budget below the least achievable cost (quarter bits, or picoseconds with `none_ps`)."""
    text = f"{least / QUARTER / max(total, 1):.4f} bits/weight" if none_ps is None else _time_text(least, none_ps)
    return AutoError(f"--auto {auto.text}: the smallest achievable is {text} (every searched layer in its cheapest "
                     f"candidate); {'raise' if none_ps is None else 'relax'} the budget to at least that")


DOMINANCE_MARGIN = 1.25  # a class is dominated by estimates this many times lower (undominated_classes)


def undominated_classes(layers: list[LayerInfo], menus: list[list[Choice]], scored: list[list[Scored]],
                        costs: list[list[int]]) -> tuple[set, list]:
    """The cost classes worth checking, and the others (in menu order). A class is dominated on a layer
    when another class (or `none`) has a candidate of no more cost than the class's cheapest whose
    estimated score is below the class's best by DOMINANCE_MARGIN; one dominated on every layer would
    not be the knapsack's choice (for a group that shares an activation format, neither: the
    dominating class serves the whole group), so it is neither checked nor scored exactly. The margin
    covers the estimates' noise: on SmolLM2 (weights and activations, 4.5 bits) NVINT4 x NVINT4, whose
    estimates sit within 2 % of the cheaper MXFP4 x MXINT8's on every layer, still took 16-19 layers
    once scored exactly. What the margin drops there are 4 of the 19 classes, all narrow activation
    formats beside a wide one of the same weight bits (MXFP4, MXFP6 and MXFP8 E5M2 activations with
    8-bit weights, MXFP4 ones with 6-bit weights; summed over the layers, MXFP4 activations score 16x
    and 40x what MXINT8 ones do)."""
    seen: dict = {}  # class -> dominated on every layer so far
    for lay, menu, row, cost in zip(layers, menus, scored, costs):
        cost_class, best = _cost_class(lay), {}  # class -> (least cost, least score)
        for j, c in enumerate(menu):
            if c.weight is not None:
                key = cost_class(c)
                least, score = best.get(key, (cost[j], row[j].score))
                best[key] = (min(least, cost[j]), min(score, row[j].score))
        for key, (least, score) in best.items():
            beaten = any(cost[j] <= least and row[j].score * DOMINANCE_MARGIN < score  # (`none`: a speed budget's cheapest, at times)
                         for j, c in enumerate(menu) if c.weight is None or cost_class(c) != key)
            seen[key] = seen.get(key, True) and beaten
    return {k for k, d in seen.items() if not d}, [k for k, d in seen.items() if d]


def _class_text(key) -> str:
    bits, act = key
    return f"{bits:g} bits/weight, " + (f"{act} activations" if act else "weights-only")


def _groups(layers: list[LayerInfo], records) -> list[list[str]]:
    """Layers that read one activation (q/k/v, gate/up), two or more, in layer order."""
    by_input: dict[str, list[str]] = {}
    for lay in layers:
        by_input.setdefault(records[lay.name].act_node, []).append(lay.name)
    return [names for names in by_input.values() if len(names) > 1]


def _couplings(layers: list[LayerInfo], menus: list[list[Choice]], groups: list[list[str]],
               same_weights: bool) -> list[Coupling]:
    """One activation format per group (and one weight spec, with same_weights)."""
    index = {lay.name: i for i, lay in enumerate(layers)}
    keyings = [lambda c: str(c.act)] + ([lambda c: str(c.weight)] if same_weights else [])
    return [Coupling(tuple(index[n] for n in g), tuple(tuple(key(c) for c in menus[index[n]]) for n in g))
            for g in groups for key in keyings]


def _decision(lay: LayerInfo, row: list[Scored], j: int, seconds: float, costs: list[int], timed: bool) -> Decision:
    chosen = row[j]
    others = [s for i, s in enumerate(row) if i != j and costs[i] <= costs[j]]
    runner_up = min(others, key=lambda s: s.score, default=None)
    return Decision(lay.name, chosen.choice, chosen.score, bits_per_weight(chosen.choice, lay), runner_up,
                    len(row), sum(s.full for s in row), seconds, costs[j] / PICO if timed else None)


def _time_costs(layers: list[LayerInfo], menus: list[list[Choice]], costing: CostModel,
                auto: AutoSpec) -> tuple[list[list[int]], int, int]:
    """Each candidate's estimated GEMM time (picoseconds), the budget, and the all-high-precision time."""
    costs = [[max(1, round(costing.seconds(lay, c) * PICO)) for c in menu] for lay, menu in zip(layers, menus)]
    none_ps = sum(row[0] for row in costs)  # menus start with `none`
    budget = int(none_ps / auto.speedup) if auto.kind == "speedup" else int(auto.time_s * PICO)
    return costs, budget, none_ps


def _time_text(ps: int, none_ps: int) -> str:
    return f"{ps / PICO * 1e6:.1f} us of estimated GEMM time ({none_ps / max(ps, 1):.2f}x the high-precision {none_ps / PICO * 1e6:.1f} us)"


def _bar(enabled: bool, total: int, what: str):
    """A progress bar on stderr (tqdm, which transformers brings); a silent one when not `enabled`."""
    from tqdm import tqdm

    unit = {"calibrate": "batch", "score": "layer", "estimate": "layer"}.get(what, "policy")
    return tqdm(total=total, desc=f"--auto {what}", unit=unit, leave=False, disable=not enabled)

"""The exact choice under a budget: a multiple-choice knapsack, solved as an integer linear program.

    minimize  sum_ij score_ij x_ij
    subject to  sum_j x_ij = 1                  (one choice per layer)
                sum_ij cost_ij x_ij <= budget
                sum_{j: key_ij = k} x_ij = y_gk  (every layer of a coupled group g takes one key k)
                sum_k y_gk = 1
    x, y binary.

HiGHS (scipy.optimize.milp) with no relative gap: optimal up to HiGHS's absolute tolerance on the
objective, scaled here so the objective is O(1); deterministic for the same input. Costs are checked
in exact integers afterwards: a solution the solver's feasibility tolerance let past the budget is
solved again with the budget lowered by the excess and by a step past that tolerance (doubling on
each retry), so the budget is never exceeded (the answer may then be the best under a slightly lower
budget).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from .budget import AutoError


@dataclass(frozen=True)
class Coupling:
    """Layers (indices) that must take options with one key (e.g. one activation format); keys[m][j] is
    the key of option j of layer members[m]."""

    members: tuple[int, ...]
    keys: tuple[tuple[Hashable, ...], ...]


class Infeasible(AutoError):
    """No assignment meets the budget; `least` is the smallest achievable total cost."""

    def __init__(self, budget: int, least: int):
        super().__init__(f"budget {budget} is below the smallest achievable total cost {least}")
        self.budget, self.least = budget, least


def solve(costs: Sequence[Sequence[int]], scores: Sequence[Sequence[float]], budget: int,
          couplings: Sequence[Coupling] = ()) -> list[int]:
    """The option index of each layer minimizing the total score with total cost <= budget.

    Costs are integers (the caller's unit); an impossible budget raises `Infeasible`.
    """
    limit = budget
    # HiGHS's primal feasibility tolerance (1e-7) on the constraint scaled by the largest cost, in cost units
    step = max(1, int(np.ceil(1e-6 * max((max(r) for r in costs if len(r)), default=1))))
    for attempt in range(8):
        picks = _milp(costs, scores, limit, couplings)
        if picks is None:
            least = least_cost(costs, couplings)
            if least is None:
                raise AutoError("no assignment gives every coupled group one key (one activation format)")
            raise Infeasible(budget, least)
        used = sum(costs[i][j] for i, j in enumerate(picks))
        if used <= budget:
            return picks
        limit -= (used - budget) + step * (1 << attempt)
    raise AutoError(f"the solver kept exceeding budget {budget}")


def least_cost(costs, couplings) -> int | None:
    """The smallest total cost any assignment (couplings respected) reaches; None: there is none."""
    picks = _milp(costs, [[float(c) for c in row] for row in costs], None, couplings)
    return None if picks is None else sum(costs[i][j] for i, j in enumerate(picks))


def _milp(costs, scores, budget: int | None, couplings) -> list[int] | None:
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_matrix

    offsets = np.cumsum([0] + [len(r) for r in costs])
    n_x = int(offsets[-1])
    key_vars: list[tuple[int, Hashable]] = []  # (coupling index, key) of each y variable
    for g, c in enumerate(couplings):
        key_vars += [(g, k) for k in sorted({k for ks in c.keys for k in ks}, key=repr)]
    n = n_x + len(key_vars)
    flat = np.concatenate([np.asarray(s, dtype=float) for s in scores])
    objective = np.zeros(n)
    objective[:n_x] = flat / max(float(np.abs(flat).max()), 1e-300)
    entries: list[tuple[int, int, float]] = []  # (row, column, value)
    lo: list[float] = []
    hi: list[float] = []

    def row(cols_vals, low, high):
        entries.extend((len(lo), col, val) for col, val in cols_vals)
        lo.append(low), hi.append(high)

    for i in range(len(costs)):  # one option per layer
        row([(col, 1.0) for col in range(offsets[i], offsets[i + 1])], 1, 1)
    if budget is not None:
        c = np.concatenate([np.asarray(r, dtype=float) for r in costs])
        unit = max(float(c.max()), 1.0)
        row([(col, v / unit) for col, v in enumerate(c) if v], -np.inf, budget / unit)
    for g, c in enumerate(couplings):
        ys = {k: n_x + v for v, (gg, k) in enumerate(key_vars) if gg == g}
        row([(y, 1.0) for y in ys.values()], 1, 1)
        for m, keys in zip(c.members, c.keys):
            for k, y in ys.items():
                row([(offsets[m] + j, 1.0) for j, kj in enumerate(keys) if kj == k] + [(y, -1.0)], 0, 0)
    r, col, v = zip(*entries)
    a = coo_matrix((v, (r, col)), shape=(len(lo), n)).tocsr()
    res = milp(objective, integrality=np.ones(n), bounds=Bounds(0, 1),
               constraints=LinearConstraint(a, lo, hi), options={"mip_rel_gap": 0})
    if res.x is None:
        return None
    x = np.round(res.x[:n_x]).astype(int)
    return [int(np.argmax(x[offsets[i]:offsets[i + 1]])) for i in range(len(costs))]

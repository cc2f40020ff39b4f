"""The predicted-loss frontier: the solver's best total score at each budget, and its picture.

`frontier` solves the same knapsack for budgets in steps of STEP bits/weight from the least achievable
(up to SPAN bits above it), so a user sees what another half bit would buy before choosing a budget;
`time_frontier` does the same for a speed budget, at SPEEDUPS steps between the fastest achievable
and the all-high-precision time (points: estimated speedup, score); the manifest's `auto.frontier`
holds the points. `plot` draws them with the chosen budget marked,
beside each layer's choice (bits per weight, colored by format), when `--auto ...,png=FILE` asks
(matplotlib is optional: without it the search says so before it starts).
"""

from __future__ import annotations

from pathlib import Path

from .budget import AutoError
from .solver import least_cost, solve

STEP, SPAN = 0.5, 6.0  # bits per weight
SPEEDUPS = 12  # points of the speed frontier


def check_plotting() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise AutoError("--auto ...,png=FILE needs matplotlib: pip install matplotlib (or drop png=)") from None


def frontier(costs, scores, couplings, unit: float) -> list[tuple[float, float]]:
    """(bits per weight used, least total score) per budget; `unit` = cost units per bit/weight."""
    least = least_cost(costs, couplings)
    if least is None or unit <= 0:
        return []
    most = min(sum(max(row) for row in costs), least + SPAN * unit)
    budgets = [int(least + i * STEP * unit) for i in range(int((most - least) / (STEP * unit)) + 1)]
    return _solved(costs, scores, couplings, budgets, lambda spent: spent / unit)


def time_frontier(costs, scores, couplings, none_cost: int) -> list[tuple[float, float]]:
    """(estimated speedup over high precision, least total score) for SPEEDUPS time budgets, geometric
    from the fastest achievable to the all-high-precision time."""
    least = least_cost(costs, couplings)
    if least is None or least >= none_cost:
        return []
    budgets = [int(least * (none_cost / least) ** (i / (SPEEDUPS - 1))) for i in range(SPEEDUPS)]
    return _solved(costs, scores, couplings, budgets, lambda spent: none_cost / spent)


def _solved(costs, scores, couplings, budgets: list[int], x_of) -> list[tuple[float, float]]:
    """(x_of(the cost the solver spent), least total score) for each budget."""
    points = []
    for budget in budgets:
        picks = solve(costs, scores, budget, couplings)
        points.append((x_of(sum(costs[r][j] for r, j in enumerate(picks))),
                       sum(scores[r][j] for r, j in enumerate(picks))))
    return points


def plot(path: str | Path, points: list[tuple[float, float]], chosen: tuple[float, float],
         layers: list[tuple[str, float, str]], title: str, xlabel: str = "bits per weight (scales counted)") -> None:
    """The frontier (left) and each layer's bits per weight, colored by format (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [1, 2]})
    shown = [p for p in points if p[1] > 0]  # (a log scale: all-high-precision predicts 0)
    a.plot([p[0] for p in shown], [p[1] for p in shown], "o-", label="best predicted loss at each budget")
    a.plot(*chosen, "r*", markersize=14, label="chosen")
    a.set(xlabel=xlabel, ylabel="predicted loss increase (sum g^2 dY^2)",
          yscale="log", title=title)
    a.legend()
    formats = sorted({f for _, _, f in layers})
    colors = {f: plt.cm.tab20(i % 20) for i, f in enumerate(formats)}
    b.bar(range(len(layers)), [bits for _, bits, _ in layers], color=[colors[f] for _, _, f in layers], width=1.0)
    b.set(xlabel="layer (graph order)", ylabel="bits per weight", title="per-layer choice")
    b.legend(handles=[plt.Rectangle((0, 0), 1, 1, color=colors[f]) for f in formats], labels=formats,
             fontsize=7, ncol=2, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

"""Each candidate's score for one layer, from its calibration record (see sensitivity.py).

Scoring a candidate on every calibration token costs a fake-quant and a GEMM over all of them, so a
layer is scored in two passes (`LayerScores`). The first estimates every candidate on a stratified
subsample of SUBSAMPLE token rows (`_first_rows`, weighted to the full count); the search picks from the
estimates the specs it checks end to end, one per cost class (search.representatives). The second
pass scores only what the knapsack weighs, the kept candidates, on every token; the others keep their
estimates times their class's exact / estimate ratio. (Until 2026-12-05 the best two of each class by
estimate were scored exactly before the checks: 38 of the 128 weights-and-activations candidates of
a SmolLM2 layer instead of 15-19, and four times the first pass's rows.) Measured earlier on SmolLM2-135M at
4.5 bits/weight, weights-only, perplexity of the chosen policy on 4 evaluation windows (torch
fake-quant; uniform IF4: 17.35): every candidate scored exactly 16.80 (about 5 min of scoring); the
two-of-each-class scheme 16.84 (90 s); a first pass from the weight-space diagonal sum
(g^2)^T(x^2) dW^2, which drops the cross terms, 16.90 with keep = 3 and 17.22 with keep = 1 (it ranks
candidates of one class less well). A candidate with a Hadamard rotation of size h is scored in the
rotated domain (operands rotated once per size).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mxc.numerics import hadamard
from mxc.policy import Choice

from .sensitivity import _CONVS, Tapped, _fq, layer_output, product

SUBSAMPLE = 128  # token rows of the first-pass estimate
HEAVY = 32  # of those, the rows of largest |x|^2 |g|^2, each counted once (_first_rows)


@dataclass(frozen=True)
class Scored:
    choice: Choice
    score: float  # sum g^2 dY^2 over every calibration token (or the estimate, when not `full`)
    full: bool


class LayerScores:
    """One layer's candidates: estimated on construction, `refine(indices)` scores those exactly,
    `scored(cost_class)` gives every candidate's score (`cost_class(choice)` groups the choices that
    compete only on score, for the exact / estimate ratio). `none` (weight None) scores 0: it
    changes nothing. Convolutions (small) are scored exactly at once, through the reference's conv."""

    def __init__(self, rec: Tapped, choices: list[Choice]):
        self.rec, self.choices = rec, choices
        self.exact: dict[int, float] = {i: 0.0 for i, c in enumerate(choices) if c.weight is None}
        x, w, g = _operands(rec)
        if rec.target in _CONVS:
            y = layer_output(rec, x, w)
            self.exact.update({i: _weighted(layer_output(rec, x, w, c) - y, g)
                               for i, c in enumerate(choices) if c.weight is not None})
            self.estimates = [self.exact[i] for i in range(len(choices))]
            return
        if x.shape[-2] <= SUBSAMPLE:  # the subsample would be every row: score exactly
            full = _Tokens(rec, x, w, g)
            self.estimates = [full.score(c) for c in choices]
            self.exact = dict(enumerate(self.estimates))
            return
        xs, gs = _first_rows(x, g, tokens=x.dim() == 2)
        first = _Tokens(rec, xs, w, gs)
        self.estimates = [first.score(c) for c in choices]

    def refine(self, indices) -> None:
        """Score the candidates at `indices` on every calibration token."""
        todo = [i for i in indices if i not in self.exact]
        if todo:
            full = _Tokens(self.rec, *_operands(self.rec))
            self.exact.update({i: full.score(self.choices[i]) for i in todo})

    def scored(self, cost_class) -> list[Scored]:
        classes: dict = {}
        for i, c in enumerate(self.choices):
            if c.weight is not None:
                classes.setdefault(cost_class(c), []).append(i)
        scores = dict(self.exact)
        for ids in classes.values():  # estimates in the exact scale of their class's exactly scored ones
            done = [i for i in ids if i in self.exact]
            ratio = _ratio([self.exact[i] for i in done], [self.estimates[i] for i in done])
            scores.update({i: self.estimates[i] * ratio for i in ids if i not in self.exact})
        return [Scored(c, scores[i], i in self.exact) for i, c in enumerate(self.choices)]


def _first_rows(x: torch.Tensor, g: torch.Tensor | None, tokens: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The first pass's SUBSAMPLE rows and their weights (folded into g: a row counted k times has its g
    scaled by sqrt(k)), a stratified estimate of the sum over every row. With every row a token
    (`tokens`), the HEAVY rows of largest |x|^2 |g|^2 count once each and every k-th of the others k
    times. An LLM's first tokens (attention sinks) carry activations and errors far above the rest: a
    plain stride, which takes them at every window start, counted them k times and ranked the specs by
    them (on SmolLM2 at 128 rows it put Four Over Six before IF4 at 4.5 bits, whose uniform perplexity is
    18.7 vs 17.25). Otherwise (a product of two activations) every k-th row along the rows' axis."""
    rows = x.shape[-2]
    if not tokens:
        step = rows // SUBSAMPLE
        xs = x[..., ::step, :]
        weight = torch.full((1,), rows / xs.shape[-2]).sqrt()
        return xs, (weight if g is None else g[..., ::step, :] * weight)
    size = x.square().sum(-1) * (1.0 if g is None else g.square().sum(-1))
    order = torch.argsort(size, descending=True, stable=True)
    heavy, rest = order[:HEAVY].sort().values, order[HEAVY:].sort().values
    step = -(-len(rest) // (SUBSAMPLE - HEAVY))  # (rounded up: at most SUBSAMPLE rows in all)
    sample = rest[::step]
    idx = torch.cat([heavy, sample])
    weight = torch.cat([torch.ones(len(heavy)), torch.full((len(sample),), len(rest) / len(sample))]).sqrt()[:, None]
    return x[idx], (weight if g is None else g[idx] * weight)


def _operands(rec: Tapped):
    """(x, w, g) with every token a row of x and g (g None: no gradients, plain output error)."""
    x, w, g = rec.operands()
    g = g if g.numel() else None
    if rec.target not in _CONVS and not rec.rhs:  # a weight: every row of x is a token
        x, g = x.reshape(-1, x.shape[-1]), None if g is None else g.reshape(-1, g.shape[-1])
    return x, w, g


def _ratio(exact: list[float], estimates: list[float]) -> float:
    """exact / estimate of a class's exactly scored candidates (1 when the estimate is 0)."""
    return sum(exact) / sum(estimates) if sum(estimates) > 0 else 1.0


class _Cache(dict):
    def __init__(self, make):
        super().__init__()
        self.make = make

    def __missing__(self, key):
        self[key] = value = self.make(key)
        return value


class _Tokens:
    """Scores on one set of token rows. A candidate with a Hadamard rotation of size h is scored in
    the rotated domain, x H (Q(W H) - W H)^T, which equals x (fake_quantize(W) - W)^T: the operands
    are rotated once per size instead of twice per candidate. Each weight spec and each activation
    spec is fake-quantized once per pass."""

    def __init__(self, rec: Tapped, x, w, g):
        self.rec, self.x, self.g = rec, x, g
        self.y = product(rec, x, w)
        self.w = _Cache(lambda h: w if h is None else _rotate(w, h, rec.w_axis))
        self.weights = _Cache(lambda spec: _fq(self.w[spec.hadamard], spec.without_hadamard(), rec.w_axis))
        self.xs = _Cache(lambda h: x if h is None else _rotate(x, h, -1))
        self.acts = _Cache(lambda spec: _fq(self.xs[spec.hadamard], spec.without_hadamard(), -1))

    def score(self, choice: Choice) -> float:
        if choice.weight is None:
            return 0.0
        h = choice.weight.hadamard
        xq = self.xs[h] if choice.act is None else self.acts[choice.act]
        return _weighted(product(self.rec, xq, self.weights[choice.weight]) - self.y, self.g)


def _rotate(t: torch.Tensor, h: int, axis: int) -> torch.Tensor:
    return hadamard.rotate(t.movedim(axis, -1), h).movedim(-1, axis)


def _weighted(dy: torch.Tensor, g: torch.Tensor | None) -> float:
    return float((dy.square() if g is None else (g * dy).square()).sum(dtype=torch.float64))

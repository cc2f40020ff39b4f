"""Each candidate's score for one layer, from its calibration record (see sensitivity.py).

Scoring every candidate on every calibration token costs one GEMM per candidate and layer. Within
one class of equal cost and activation format only the best candidate can be chosen (the couplings
constrain activation formats, not weight options), so each candidate is first estimated on a
subsample of the tokens (SUBSAMPLE rows, an unbiased estimate scaled to the full count), and the
best `keep` of each class are then scored on every token. The estimates of the others are kept
(they are reported as estimated, not scored).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mxc.policy import Choice

from .sensitivity import _CONVS, Tapped, _fq, layer_output, product

SUBSAMPLE = 256  # token rows of the first-pass estimate


@dataclass(frozen=True)
class Scored:
    choice: Choice
    score: float  # sum g^2 dY^2 over every calibration token (or the estimate, when not `full`)
    full: bool


def _weighted(dy: torch.Tensor, g: torch.Tensor | None) -> float:
    return float((dy.square() if g is None else (g * dy).square()).sum(dtype=torch.float64))


def score_layer(rec: Tapped, choices: list[Choice], cost_class, keep: int = 2) -> list[Scored]:
    """Every choice's score (in the order given); `cost_class(choice)` groups choices that compete only
    on score. `none` (weight None) scores 0: it changes nothing."""
    x, w, g = rec.operands()
    g = g if g.numel() else None
    conv = rec.target in _CONVS
    tokens = 1 if conv or x.dim() < 2 else x.shape[-2]
    step = max(1, tokens // SUBSAMPLE)
    weights = _Cache(lambda spec: _fq(w, spec, rec.w_axis))  # one fake-quant per weight spec
    full_pass = _Pass(rec, x, w, g, weights)
    if conv or step == 1:  # nothing to gain from a first pass
        return [Scored(c, full_pass.score(c), True) for c in choices]
    first = _Pass(rec, x[..., ::step, :], w, None if g is None else g[..., ::step, :], weights)
    factor = tokens / first.x.shape[-2]
    est = {i: first.score(c) * factor for i, c in enumerate(choices) if c.weight}
    best: dict = {}
    for i in sorted(est, key=lambda i: est[i]):
        best.setdefault(cost_class(choices[i]), []).append(i)
    full = {i for ids in best.values() for i in ids[:keep]}
    return [Scored(c, 0.0, True) if c.weight is None
            else Scored(c, full_pass.score(c), True) if i in full else Scored(c, est[i], False)
            for i, c in enumerate(choices)]


class _Cache(dict):
    def __init__(self, make):
        super().__init__()
        self.make = make

    def __missing__(self, key):
        self[key] = value = self.make(key)
        return value


class _Pass:
    """Scores on one set of tokens: the exact output once, each activation format's fake-quant once."""

    def __init__(self, rec: Tapped, x, w, g, weights: _Cache):
        self.rec, self.x, self.w, self.g, self.weights = rec, x, w, g, weights
        self.y = layer_output(rec, x, w)
        self.acts = _Cache(lambda spec: _fq(x, spec, -1))

    def score(self, choice: Choice) -> float:
        if choice.weight is None:
            return 0.0
        if self.rec.target in _CONVS:
            yq = layer_output(self.rec, self.x, self.w, choice)
        else:
            xq = self.x if choice.act is None else self.acts[choice.act]
            wq = self.weights[choice.weight]
            yq = product(self.rec, xq, wq)
        return _weighted(yq - self.y, self.g)

"""Each candidate's score for one layer, from its calibration record (see sensitivity.py).

Scoring a candidate on every calibration token costs a fake-quant and a GEMM. Every candidate is
first estimated cheaply, and the best `keep` of each class (equal bits, one activation format; the
caller's `cost_class`) are then scored exactly; the solver weighs the others by their estimates. The first pass of a weight-only candidate is the
diagonal of the same sum in weight space,

    sum_nk H_nk dW_nk^2,   H = (g^2)^T (x^2)   (one GEMM per layer, then one multiply per candidate)

(it drops the cross terms of independent rounding errors); with quantized activations the score of
(x_q - x) W^T is added (one GEMM per activation spec, not per pair: the cross term of the two errors
is dropped too). A layer whose right-hand side is an activation is estimated exactly on a subsample
of SUBSAMPLE token rows, scaled to the full count. The estimates of candidates not scored exactly are
kept and reported as estimates.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mxc.numerics import hadamard
from mxc.policy import Choice

from .sensitivity import _CONVS, Tapped, _fq, layer_output, product

SUBSAMPLE = 256  # token rows of the first-pass estimate


@dataclass(frozen=True)
class Scored:
    choice: Choice
    score: float  # sum g^2 dY^2 over every calibration token (or the estimate, when not `full`)
    full: bool


def score_layer(rec: Tapped, choices: list[Choice], cost_class, keep: int = 1) -> list[Scored]:
    """Every choice's score (in the order given); `cost_class(choice)` groups choices that compete only
    on score. `none` (weight None) scores 0: it changes nothing."""
    x, w, g = rec.operands()
    g = g if g.numel() else None
    if rec.target in _CONVS:  # small layers: every candidate exactly, through the reference's conv
        y = layer_output(rec, x, w)
        return [Scored(c, 0.0 if c.weight is None else _weighted(layer_output(rec, x, w, c) - y, g), True)
                for c in choices]
    weight = not rec.rhs
    if weight:  # every row of x is a token
        x, g = x.reshape(-1, x.shape[-1]), None if g is None else g.reshape(-1, g.shape[-1])
    full = _Tokens(rec, x, w, g)
    if len(choices) <= keep + 1:
        return [Scored(c, full.score(c), True) for c in choices]
    if weight:
        est = {i: full.diagonal(c) + full.act_term(c) for i, c in enumerate(choices) if c.weight}
    else:
        step = max(1, x.shape[-2] // SUBSAMPLE)
        first = _Tokens(rec, x[..., ::step, :], w, None if g is None else g[..., ::step, :], full)
        est = {i: first.score(c) * x.shape[-2] / first.x.shape[-2] for i, c in enumerate(choices) if c.weight}
    ranked: dict = {}
    for i in sorted(est, key=lambda i: est[i]):
        ranked.setdefault(cost_class(choices[i]), []).append(i)
    exact = {i for ids in ranked.values() for i in ids[:keep]}
    return [Scored(c, 0.0, True) if c.weight is None
            else Scored(c, full.score(c), True) if i in exact else Scored(c, est[i], False)
            for i, c in enumerate(choices)]


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
    are rotated once per size instead of twice per candidate. Each weight spec is fake-quantized once
    (`weights`, shared with a subsample's pass), each activation spec once per set of rows."""

    def __init__(self, rec: Tapped, x, w, g, share: "_Tokens | None" = None):
        self.rec, self.x, self.g = rec, x, g
        self.y = product(rec, x, w)
        self.w = share.w if share else _Cache(lambda h: w if h is None else _rotate(w, h, rec.w_axis))
        self.weights = share.weights if share else _Cache(lambda spec: _fq(self.w[spec.hadamard],
                                                                             spec.without_hadamard(), rec.w_axis))
        self.xs = _Cache(lambda h: x if h is None else _rotate(x, h, -1))
        self.acts = _Cache(lambda spec: _fq(self.xs[spec.hadamard], spec.without_hadamard(), -1))
        self.h = _Cache(self._h)
        self.act_terms = _Cache(lambda spec: _weighted(product(rec, self.acts[spec] - self.xs[spec.hadamard],
                                                               self.w[spec.hadamard]), g))

    def score(self, choice: Choice) -> float:
        if choice.weight is None:
            return 0.0
        h = choice.weight.hadamard
        xq = self.xs[h] if choice.act is None else self.acts[choice.act]
        return _weighted(product(self.rec, xq, self.weights[choice.weight]) - self.y, self.g)

    def diagonal(self, choice: Choice) -> float:
        """The first-pass estimate of a weight-only candidate: sum H dW^2 with H = (g^2)^T (x^2)."""
        h = choice.weight.hadamard
        dw = self.weights[choice.weight] - self.w[h]
        return float((self.h[h] * dw.square()).sum(dtype=torch.float64))

    def act_term(self, choice: Choice) -> float:
        """The activations' share of a candidate's first-pass estimate: the score of (x_q - x) W^T."""
        return 0.0 if choice.act is None else self.act_terms[choice.act]

    def _h(self, h):
        x2 = self.xs[h].square()
        g2 = torch.ones(x2.shape[0], self.y.shape[-1]) if self.g is None else self.g.square()
        return g2.T @ x2 if self.rec.w_axis == -1 else x2.T @ g2  # [N, K] (linear) or [K, N]


def _rotate(t: torch.Tensor, h: int, axis: int) -> torch.Tensor:
    return hadamard.rotate(t.movedim(axis, -1), h).movedim(-1, axis)


def _weighted(dy: torch.Tensor, g: torch.Tensor | None) -> float:
    return float((dy.square() if g is None else (g * dy).square()).sum(dtype=torch.float64))

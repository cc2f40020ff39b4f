"""End-to-end checks of whole policies on the calibration batches, where per-layer scores mislead.

The per-layer score (sensitivity.py) adds the layers' predicted losses. Measured on SmolLM2-135M
(weights only; torch fake-quant perplexity on 16 evaluation windows, unquantized 15.23), the sum is
a fair guide to *how many bits* each layer needs but a poor one to *which format of equal bits* a
layer takes: IF4 on every layer gives 17.25, while the knapsack restricted to the 4.5-bit formats
(IF4, NVFP4, Four Over Six, NVINT4, UE5M3 scales, with their options), free to mix them per layer
by the score, gives 18.3 -- worse than the format it could have kept everywhere. The layers' losses
do not add up: quantizing one layer at a time (the logits' KL divergence on a calibration window,
summed over 35 layers) puts IF4 with a Hadamard rotation of 16 on a par with IF4 (0.99x) and NVFP4
at 1.2x, but on every layer at once they cost 1.8x and 2x as much (perplexity 19.01 and 19.44).

So the search takes one weight spec per cost class (bits, activation format) and decides it end to
end: the class's best specs by summed score are each applied to every layer of the class (the
others unquantized) and the lowest loss on a held-out calibration batch wins (`representatives` in
search.py). The knapsack then allocates the classes to the layers by score, and its policy is checked
on every held-out batch against the uniform policy within the budget whose class had the least loss
on the first of them: the lower loss is kept. Held out (search.split_batches: the last quarter of
the batches, which the scores never saw), so that no policy is judged on the data it was fit to.

The loss is model.py's `get_loss` without gradients (without one, the mean squared difference of
the outputs from the unquantized model's). Convolutions are not switched by the check: they stay
as exported in every policy it compares (the knapsack's choice for them still applies).
"""

from __future__ import annotations

import torch

from mxc.policy import Choice
from mxc.runtime.reference import _flatten

from .sensitivity import Tapped, _Tap


class PolicyCheck:
    """Whole policies' losses on the given (held-out) calibration batches, through calibrate()'s tapped graph."""

    def __init__(self, gm: torch.fx.GraphModule, records: dict[str, Tapped], batches: list[tuple], loss_fn=None):
        self.gm, self.batches, self.loss_fn = gm, batches, loss_fn
        for module in gm.modules():
            if isinstance(module, _Tap):
                module.recording = False
        self.operands = {name: (getattr(gm, f"{rec.module}_operand{rec.act_index}", None),
                                getattr(gm, f"{rec.module}_operand{rec.w_index}", None))
                         for name, rec in records.items()}
        self.evaluations = 0
        self.reference = None
        if loss_fn is None:  # the unquantized outputs, once per batch
            with torch.no_grad():
                self.reference = [self._outputs(gm(*b)) for b in batches]

    def loss(self, assignment: dict[str, Choice], batches: int | None = None) -> float:
        """The mean loss over the first `batches` calibration batches (all: None) with every layer of
        `assignment` quantized as its choice says and every other layer as it is."""
        self._set(assignment)
        try:
            with torch.no_grad():
                values = [self._loss(i, b) for i, b in enumerate(self.batches[:batches or len(self.batches)])]
        finally:
            self._set({})
        self.evaluations += 1
        return float(sum(values) / len(values))

    def _loss(self, i: int, batch: tuple) -> float:
        out = self.gm(*batch)
        if self.reference is None:
            return float(self.loss_fn(out, *batch))
        return float(sum((a - b).square().mean() for a, b in zip(self._outputs(out), self.reference[i])))

    @staticmethod
    def _outputs(out) -> list[torch.Tensor]:
        return [t.detach().float() for t in _flatten(out) if t.is_floating_point()]

    def release(self) -> None:
        """Drop the fake-quantized weights kept from the last policy (each weight keeps its last spec's
        until another spec replaces it: consecutive policies that share a weight spec reuse them)."""
        for _, weight in self.operands.values():
            if weight is not None:
                weight.release()

    def _set(self, assignment: dict[str, Choice]) -> None:
        for name, (act, weight) in self.operands.items():
            choice = assignment.get(name)
            if act is not None:
                act.spec = choice.act if choice else None
            if weight is not None:
                weight.spec = choice.weight if choice else None

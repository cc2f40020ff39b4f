"""The choices the search weighs for one layer, pruned to what the target runs.

Per weight format the options that change its codes: MX scale rules (all four for 4-bit elements,
floor and rceil for 6/8-bit ones), the per-block error metric of Four Over Six and IF4, and a
Hadamard rotation of every size that divides K (4-bit formats, default options). With activations
(`acts` wa/any) each weight spec pairs with the activation formats of its block size (the weights'
own and the wider ones; the activations take the weights' options, one rotation for both), and
the target must have a kernel for the pair. `none` (high precision) is always a candidate.
Without `formats=` the menu leaves out the formats of REDUNDANT (a user who names one gets it).
"""

from __future__ import annotations

from dataclasses import dataclass

from mxc.numerics.formats import FORMATS, Format
from mxc.numerics.options import HADAMARD_SIZES, FormatSpec, OptionError, QuantOptions
from mxc.policy import Choice
from mxc.targets import GemmLayer, Target
from mxc.targets.cuda import CudaTarget

from .budget import Acts

# Activation formats per block size, narrowest last: what a layer's activations may take.
ACT_MENU = {32: ("mxfp8", "mxint8", "mxfp6_e2m3", "mxfp4"), 16: ("nvfp4", "nvfp4_4over6", "if4")}
_MX_RULES = {4: ("floor", "rceil", "ceil", "even")}
_METRICS = ("mse", "mae", "max")
# Formats that quantize as another on the menu does: fp4_ue5m3's tensor scale maps the tensor's amax to
# UE5M3's max, 114688 = 256 x 448, so each block scale is exactly 256 times NVFP4's UE4M3 one with the same
# 3 mantissa bits: the decoded values are NVFP4's except in blocks whose amax is under about 2^-15 of
# the tensor's, where NVFP4's block scale is subnormal and its error per element under 2^-15 of the amax:
# noise beside the 4-bit rounding of the other blocks. Scoring it would only double NVFP4's candidates.
REDUNDANT = {"fp4_ue5m3": "nvfp4"}


@dataclass(frozen=True)
class LayerInfo:
    """What the search knows of one quantizable layer: the GEMM [m, k] x [n, k]^T it computes."""

    name: str
    m: int
    k: int
    n: int
    weight: bool  # the right-hand side is a constant weight (not an activation)
    dtype_bits: int  # bits of a weight kept in high precision: 32 (f32) or 16 (bf16/f16)
    bias: bool = False

    @property
    def numel(self) -> int:
        return self.n * self.k if self.weight else 0


def weight_specs(fmt: Format, k: int) -> list[FormatSpec]:
    """The specs of `fmt` the search tries for a layer with reduction size `k`."""
    specs = [FormatSpec(fmt)]
    if fmt.family == "mx":
        rules = _MX_RULES.get(fmt.element.bits, ("floor", "rceil"))
        specs += [FormatSpec(fmt, QuantOptions(scale_rule=r)) for r in rules if r != "floor"]
    if fmt.choice is not None:
        specs += [FormatSpec(fmt, QuantOptions(error_metric=m)) for m in _METRICS if m != "mse"]
    if fmt.element.bits == 4:
        specs += [FormatSpec(fmt, QuantOptions(hadamard=h)) for h in HADAMARD_SIZES if k % h == 0]
    return specs


def candidates(layer: LayerInfo, acts: Acts, target: Target, formats: tuple[str, ...] = ()) -> list[Choice]:
    """Every choice for `layer`: `none` first, then each weight spec weight-only and/or with each
    activation format of its block size, as `acts` asks and the target runs."""
    menu = [FORMATS[n] for n in (formats or [f for f in FORMATS if f not in REDUNDANT]) if n != "none"]
    out = [Choice(None)]
    for fmt in menu:
        for w in weight_specs(fmt, layer.k):
            if acts in ("w", "any") and layer.weight:
                out.append(Choice(w))
            if acts in ("wa", "any"):
                out += [c for a in _act_formats(fmt, formats) for c in [_pair(w, a)] if c and _runs(target, layer, c)]
    return out


def _pair(w: FormatSpec, act: Format) -> Choice | None:
    """Weights in `w`, activations in `act` with the weights' options (None: they do not apply to it)."""
    try:
        return Choice.of(w, act_format=FormatSpec(act))
    except OptionError:
        return None


def _act_formats(weight: Format, formats: tuple[str, ...]) -> list[Format]:
    names = [weight.name] + [a for a in ACT_MENU.get(weight.block_size, ()) if a != weight.name]
    return [FORMATS[a] for a in names if not formats or a in formats]


def _runs(target: Target, layer: LayerInfo, choice: Choice) -> bool:
    """Whether the target computes `choice` as asked (a CUDA target without a kernel for the pair would
    silently run it weight-only; the search must not count on that)."""
    if not isinstance(target, CudaTarget):  # the CPU emulates every pair
        return True
    picked = target.select(GemmLayer(layer.name, layer.m, choice.weight, choice.act, layer.bias))
    return not isinstance(picked, str)


def bits_per_weight(choice: Choice, layer: LayerInfo) -> float:
    """Storage bits per weight element, block scales counted; high precision: the model's dtype."""
    if choice.weight is None:
        return float(layer.dtype_bits)
    return choice.weight.format.bits_per_element

"""What `--auto` asks for: a budget, the search space's switches, parsed once at the edge.

    --auto bits=4.5                   average bits per weight (scales counted) over the searched layers
    --auto speedup=2,acts=any         estimated GEMM time <= the high-precision time / 2 (cost model of the target)
    --auto time=350us                 estimated GEMM time per forward pass
    --auto bits=5,same_weights=1,formats=mxfp4+nvfp4+mxfp8

Keys: exactly one of `bits`, `speedup`, `time`; `acts` = `w` (every candidate weight-only), `wa`
(activations quantized too) or `any` (the search decides per layer; default: `w` with
`--weights-only`, else `wa`); `same_weights` (1: layers reading one activation also take one
weight format); `formats` (the candidate formats, `+`-separated; default every format); `png=FILE`
(a picture of the predicted-loss frontier and the per-layer choices; needs matplotlib).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mxc.errors import MxcError
from mxc.numerics.formats import FORMATS

Acts = Literal["w", "wa", "any"]
_TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


class AutoError(MxcError, ValueError):
    """An `--auto` value that does not parse, or a budget no candidate set can meet."""


@dataclass(frozen=True)
class AutoSpec:
    """One `--auto` request (see the module docstring); `text` is what the user wrote."""

    bits: float | None = None
    speedup: float | None = None
    time_s: float | None = None
    acts: Acts | None = None
    same_weights: bool = False
    formats: tuple[str, ...] = ()
    png: str = ""  # where to draw the frontier and the per-layer choices ("" = no picture)
    text: str = ""

    @property
    def kind(self) -> str:
        """The budget's kind: 'bits', 'speedup' or 'time'."""
        return "bits" if self.bits is not None else "speedup" if self.speedup is not None else "time"

    def acts_for(self, weights_only: bool) -> Acts:
        return self.acts or ("w" if weights_only else "wa")

    def to_dict(self) -> dict:
        return {"text": self.text, "kind": self.kind, "bits": self.bits, "speedup": self.speedup,
                "time_s": self.time_s, "acts": self.acts, "same_weights": self.same_weights,
                "formats": list(self.formats), "png": self.png}

    @staticmethod
    def parse(text: str) -> "AutoSpec":
        fields: dict = {"text": text}
        for item in filter(None, (s.strip() for s in text.split(","))):
            key, eq, value = item.partition("=")
            if not eq or not value:
                raise AutoError(f"--auto {text}: '{item}' is not key=value (e.g. --auto bits=4.5)")
            fields.update(_field(key.strip(), value.strip(), text))
        budgets = [k for k in ("bits", "speedup", "time_s") if k in fields]
        if len(budgets) != 1:
            raise AutoError(f"--auto {text}: give exactly one budget, bits=B, speedup=Y or time=T "
                            f"(e.g. bits=4.5, speedup=2, time=300us)")
        return AutoSpec(**fields)


def _field(key: str, value: str, text: str) -> dict:
    if key in ("bits", "speedup"):
        return {key: _positive(key, value, text)}
    if key == "time":
        unit = next((u for u in sorted(_TIME_UNITS, key=len, reverse=True) if value.endswith(u)), "s")
        return {"time_s": _positive(key, value.removesuffix(unit), text) * _TIME_UNITS[unit]}
    if key == "acts":
        if value not in ("w", "wa", "any"):
            raise AutoError(f"--auto {text}: acts must be w (weights-only), wa (weights and activations) or any")
        return {"acts": value}
    if key == "same_weights":
        if value not in ("0", "1", "true", "false"):
            raise AutoError(f"--auto {text}: same_weights must be 1 or 0")
        return {"same_weights": value in ("1", "true")}
    if key == "formats":
        names = tuple(value.split("+"))
        unknown = [n for n in names if n not in FORMATS and n != "none"]
        if unknown:
            raise AutoError(f"--auto {text}: unknown formats {unknown} (formats: {', '.join(FORMATS)}, none)")
        return {"formats": names}
    if key == "png":
        return {"png": value}
    raise AutoError(f"--auto {text}: unknown key '{key}' (keys: bits, speedup, time, acts, same_weights, formats, png)")


def _positive(key: str, value: str, text: str) -> float:
    try:
        v = float(value)
    except ValueError:
        v = float("nan")
    if not v > 0:
        raise AutoError(f"--auto {text}: {key} must be a positive number, got '{value}'")
    return v

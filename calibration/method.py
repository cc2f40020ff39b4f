"""What `--calibrate` and a policy's `calibrate` key name: a method and its options, as spec text.

    rtn                                  round to nearest, block by block (the default: no calibration)
    gptq                                 GPTQ through the format's quantizer (calibration/gptq.py)
    gptq{damp=0.05,actorder=0}           with its options
    mr-gptq                              GPTQ with a block Hadamard rotation of weights and activations
                                         (the largest of 128, 32, 16 that divides K; a rotation the layer's
                                         format already names is kept)
    mr-gptq{rotate=auto}                 each weight-only layer calibrated with and without its rotation,
                                         keeping the one with the smaller output error on the calibration set

Options: `damp` (>= 0, default 0.01: added to the Hessian's diagonal times its mean), `actorder`
(0/1, default 1: static act-order over whole blocks), `scales` (MX formats: `rule`, each block's scale by
the format's scale rule, or `mse`, the block's scale exponent among the rule's e and e +- 1 that least
increases the GPTQ objective; default `mse` for mr-gptq, as MR-GPTQ defines it, `rule` for gptq), `rotate`
(mr-gptq: `always`, the default, or `auto`: a weight-only layer takes the rotation only where it lowers the
layer's calibrated output error; layers that quantize activations keep it, since it also spreads theirs).
Plain text, no torch: policies and options validate it without importing the calibration code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

METHODS = ("rtn", "gptq", "mr-gptq")
SCALE_SEARCH = {"mr-gptq": "mse"}  # a method's default `scales` (the others: "rule")
_SPEC = re.compile(r"^\s*([a-z-]+)\s*(?:\{(.*)\})?\s*$")


@dataclass(frozen=True)
class CalibrateSpec:
    """A calibration method and its options; `str()` is its canonical spec text."""

    method: str = "rtn"
    damp: float = 0.01
    actorder: bool = True
    scales: str = ""  # "rule" | "mse"; "" = the method's default (SCALE_SEARCH)
    rotate: str = "always"  # mr-gptq: "always" | "auto" (per weight-only layer, the lower output error)

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"unknown calibration method '{self.method}' (methods: {', '.join(METHODS)})")
        if not (self.damp >= 0):
            raise ValueError(f"calibrate: damp must be >= 0, got {self.damp}")
        if self.scales not in ("", "rule", "mse"):
            raise ValueError(f"calibrate: scales must be rule or mse, got {self.scales!r}")
        if self.rotate not in ("always", "auto"):
            raise ValueError(f"calibrate: rotate must be always or auto, got {self.rotate!r}")
        if self.rotate != "always" and self.method != "mr-gptq":
            raise ValueError(f"calibrate: rotate applies to mr-gptq (the rotation), not {self.method}")
        if not self.scales:
            object.__setattr__(self, "scales", SCALE_SEARCH.get(self.method, "rule"))

    @property
    def active(self) -> bool:
        return self.method != "rtn"

    @staticmethod
    def parse(text: "str | CalibrateSpec | None") -> "CalibrateSpec":
        if isinstance(text, CalibrateSpec):
            return text
        if not text:
            return CalibrateSpec()
        m = _SPEC.match(text)
        if not m:
            raise ValueError(f"calibrate: cannot parse {text!r} (e.g. gptq, mr-gptq, gptq{{damp=0.05,actorder=0}})")
        kw: dict = {}
        for item in filter(None, (s.strip() for s in (m.group(2) or "").split(","))):
            key, _, value = item.partition("=")
            key, value = key.strip(), value.strip()
            try:
                if key == "damp":
                    kw["damp"] = float(value)
                elif key == "scales":
                    if value not in ("rule", "mse"):
                        raise ValueError
                    kw["scales"] = value
                elif key == "rotate":
                    if value not in ("always", "auto"):
                        raise ValueError
                    kw["rotate"] = value
                elif key == "actorder":
                    if value not in ("0", "1", "true", "false"):
                        raise ValueError
                    kw["actorder"] = value in ("1", "true")
                else:
                    raise KeyError(key)
            except KeyError:
                raise ValueError(f"calibrate: unknown option '{key}' in {text!r} "
                                 "(options: damp, actorder, scales, rotate)") from None
            except ValueError:
                raise ValueError(f"calibrate: bad value {value!r} for {key} in {text!r}") from None
        if m.group(1) == "rtn" and kw:
            raise ValueError(f"calibrate: rtn takes no options, got {text!r}")
        return CalibrateSpec(m.group(1), **kw)

    def __str__(self) -> str:
        if not self.active:
            return "rtn"
        opts = []
        if self.damp != 0.01:
            opts.append(f"damp={self.damp:g}")
        if not self.actorder:
            opts.append("actorder=0")
        if self.scales != SCALE_SEARCH.get(self.method, "rule"):
            opts.append(f"scales={self.scales}")
        if self.rotate != "always":
            opts.append(f"rotate={self.rotate}")
        return self.method + (f"{{{','.join(opts)}}}" if opts else "")


def rotation_for(k: int, block_size: int) -> int | None:
    """MR-GPTQ's Hadamard size for a layer with K = k: the largest of 128, 32, 16 dividing K (None if none does)."""
    return next((n for n in (128, 32, 16) if k % n == 0 and n >= min(block_size, 16)), None)

"""Quantization options and format specs: "mxfp4", "mxfp4{scale_rule=rceil,hadamard=32}".

The options have the same names everywhere: keyword arguments of
`mxc.numerics.quantize`, keys of a policy file, `mxc compile` flags, and the
`{key=value,...}` suffix of a format spec, which is how the `mxq` dialect's
`format` attributes and the manifest carry them.

    scale_rule    MX formats: floor (OCP, default) | rceil | ceil | even
    rounding      rne (default) | stochastic (with `seed`, reproducible)
    seed          integer seed of stochastic rounding
    error_metric  Four Over Six and IF4 block choice: mse (default) | mae | max
    hadamard      block-diagonal Hadamard rotation along K: 16 | 32 | 128 (none by default)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .formats import Format, get_format

SCALE_RULES = ("floor", "rceil", "ceil", "even")
ROUNDINGS = ("rne", "stochastic")
ERROR_METRICS = ("mse", "mae", "max")
HADAMARD_SIZES = (16, 32, 128)
OPTION_NAMES = ("scale_rule", "rounding", "seed", "error_metric", "hadamard")


class OptionError(ValueError):
    """An option value that is unknown, or does not apply to the format it is given for."""


@dataclass(frozen=True)
class QuantOptions:
    """How a tensor is quantized beyond its format; defaults are FORMATS.md's."""

    scale_rule: str = "floor"
    rounding: str = "rne"
    seed: int = 0
    error_metric: str = "mse"
    hadamard: int | None = None

    def __post_init__(self):
        for key, valid in (("scale_rule", SCALE_RULES), ("rounding", ROUNDINGS), ("error_metric", ERROR_METRICS)):
            if getattr(self, key) not in valid:
                raise OptionError(f"{key} must be one of {', '.join(valid)}, got {getattr(self, key)!r}")
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**31:
            raise OptionError(f"seed must be an integer in [0, 2^31), got {self.seed!r}")
        if self.hadamard is not None and self.hadamard not in HADAMARD_SIZES:
            raise OptionError(f"hadamard must be one of {', '.join(map(str, HADAMARD_SIZES))} or none, "
                              f"got {self.hadamard!r}")
        if self.seed and self.rounding != "stochastic":
            raise OptionError("seed applies only to rounding=stochastic")

    def check(self, fmt: Format) -> "QuantOptions":
        """Raise OptionError when an option does not apply to `fmt`; return self."""
        if self.scale_rule != "floor" and fmt.family != "mx":
            raise OptionError(f"scale_rule applies to MX formats (E8M0 scales); {fmt.name} computes its "
                              "scales from an FP32 tensor scale (FORMATS.md)")
        if self.error_metric != "mse" and fmt.choice is None:
            raise OptionError(f"error_metric applies to formats with a per-block choice (nvfp4_4over6, if4), "
                              f"not {fmt.name}")
        return self

    def to_dict(self) -> dict:
        """Only the options that differ from the defaults."""
        default = QuantOptions()
        return {k: getattr(self, k) for k in OPTION_NAMES if getattr(self, k) != getattr(default, k)}

    @staticmethod
    def from_dict(d: dict) -> "QuantOptions":
        unknown = set(d) - set(OPTION_NAMES)
        if unknown:
            raise OptionError(f"unknown option(s) {sorted(unknown)} (valid: {', '.join(OPTION_NAMES)})")
        d = dict(d)
        if d.get("hadamard") in ("none", 0):
            d["hadamard"] = None
        return QuantOptions(**d)

    def merged(self, **overrides) -> "QuantOptions":
        """A copy with the non-None `overrides` applied."""
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})


def _value(key: str, text: str):
    if key in ("seed", "hadamard"):
        if text == "none" and key == "hadamard":
            return None
        try:
            return int(text)
        except ValueError:
            raise OptionError(f"{key} must be an integer, got {text!r}") from None
    return text


def parse_spec(spec: str) -> tuple[Format, QuantOptions]:
    """'mxfp4{scale_rule=rceil,hadamard=32}' -> (Format, QuantOptions), validated together."""
    name, _, rest = spec.partition("{")
    fmt = get_format(name.strip())
    if not rest:
        return fmt, QuantOptions()
    if not rest.endswith("}"):
        raise OptionError(f"format spec '{spec}': options go in braces, e.g. mxfp4{{scale_rule=rceil}}")
    fields = {}
    for item in filter(None, (s.strip() for s in rest[:-1].split(","))):
        key, eq, text = item.partition("=")
        if not eq:
            raise OptionError(f"format spec '{spec}': expected key=value, got {item!r}")
        fields[key.strip()] = _value(key.strip(), text.strip())
    return fmt, QuantOptions.from_dict(fields).check(fmt)


def format_spec(fmt: Format | str, opts: QuantOptions | None = None) -> str:
    """The canonical spec string: the name, then the non-default options in a fixed order."""
    name = fmt if isinstance(fmt, str) else fmt.name
    items = (opts or QuantOptions()).to_dict()
    if not items:
        return name
    return name + "{" + ",".join(f"{k}={v}" for k, v in items.items()) + "}"

"""Quantization options and format specs: "mxfp4", "mxfp4{scale_rule=rceil,hadamard=32}".

The options have the same names everywhere: keyword arguments of
`mxc.numerics.quantize`, keys of a policy file, `mxc compile` flags, and the
`{key=value,...}` suffix of a format spec, which is how the `mxq` dialect's
`format` attributes and the manifest carry them.

    scale_rule    MX formats: floor (OCP, default) | rceil | ceil | even
    rounding      rne (default) | stochastic (with `seed`, reproducible)
    seed          integer seed of stochastic rounding
    error_metric  Four Over Six and IF4 block choice: mse (default) | mae | max
    hadamard      block-diagonal Hadamard rotation along K: 16 | 32 | 128 (None: no rotation)

A spec is parsed once, at the edge (command line, policy file, IR attribute
accessor), into a `FormatSpec` value; `str(spec)` is its canonical text. High
precision (the policy value "none") is `None` wherever a `FormatSpec | None` is
expected (`parse_optional`), and so is "no Hadamard rotation" in `QuantOptions`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal, get_args

from .formats import NONE, Format, get_format

ScaleRule = Literal["floor", "rceil", "ceil", "even"]
Rounding = Literal["rne", "stochastic"]
ErrorMetric = Literal["mse", "mae", "max"]
HadamardSize = Literal[16, 32, 128]
SCALE_RULES: tuple[str, ...] = get_args(ScaleRule)
ROUNDINGS: tuple[str, ...] = get_args(Rounding)
ERROR_METRICS: tuple[str, ...] = get_args(ErrorMetric)
HADAMARD_SIZES: tuple[int, ...] = get_args(HadamardSize)
OPTION_NAMES = ("scale_rule", "rounding", "seed", "error_metric", "hadamard")


class OptionError(ValueError):
    """An option value that is unknown, or does not apply to the format it is given for."""


@dataclass(frozen=True)
class QuantOptions:
    """How a tensor is quantized beyond its format; defaults are FORMATS.md's."""

    scale_rule: ScaleRule = "floor"
    rounding: Rounding = "rne"
    seed: int = 0
    error_metric: ErrorMetric = "mse"
    hadamard: HadamardSize | None = None

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

    def applies_to(self, fmt: Format) -> bool:
        """Whether every option applies to `fmt` (see `check`)."""
        try:
            self.check(fmt)
        except OptionError:
            return False
        return True

    @staticmethod
    def of(obj) -> "QuantOptions":
        """The options held as same-named attributes of `obj` (compile options, a pass's options)."""
        return QuantOptions(**{k: getattr(obj, k) for k in OPTION_NAMES})

    def to_dict(self) -> dict:
        """Only the options that differ from the defaults."""
        default = QuantOptions()
        return {k: getattr(self, k) for k in OPTION_NAMES if getattr(self, k) != getattr(default, k)}

    @staticmethod
    def from_dict(d: dict) -> "QuantOptions":
        """From option keys (a policy table, a spec's braces); hadamard may be spelled "none"."""
        unknown = set(d) - set(OPTION_NAMES)
        if unknown:
            raise OptionError(f"unknown option(s) {sorted(unknown)} (valid: {', '.join(OPTION_NAMES)})")
        d = dict(d)
        if d.get("hadamard") == NONE:
            d["hadamard"] = None
        return QuantOptions(**d)

    def merged(self, **overrides) -> "QuantOptions":
        """A copy with the non-None `overrides` applied."""
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})


def _value(key: str, text: str):
    if key in ("seed", "hadamard"):
        if text == NONE and key == "hadamard":
            return None
        try:
            return int(text)
        except ValueError:
            raise OptionError(f"{key} must be an integer, got {text!r}") from None
    return text


@dataclass(frozen=True, repr=False)
class FormatSpec:
    """A format and the options it is quantized with: the value of "mxfp4{scale_rule=rceil}".

    Valid by construction: the options apply to the format. `str(spec)` is the
    canonical text (the name, then the non-default options in OPTION_NAMES
    order), which the `mxq` dialect's attributes and the manifest carry.
    """

    format: Format
    options: QuantOptions = QuantOptions()

    def __post_init__(self):
        self.options.check(self.format)

    @staticmethod
    def parse(text: str) -> "FormatSpec":
        """'mxfp4{scale_rule=rceil,hadamard=32}' -> FormatSpec; errors name the spec and the fix."""
        name, _, rest = text.partition("{")
        fmt = get_format(name.strip())
        if not rest:
            return FormatSpec(fmt)
        if not rest.endswith("}"):
            raise OptionError(f"format spec '{text}': options go in braces, e.g. mxfp4{{scale_rule=rceil}}")
        fields = {}
        for item in filter(None, (s.strip() for s in rest[:-1].split(","))):
            key, eq, value = item.partition("=")
            if not eq:
                raise OptionError(f"format spec '{text}': expected key=value, got {item!r}")
            fields[key.strip()] = _value(key.strip(), value.strip())
        return FormatSpec(fmt, QuantOptions.from_dict(fields))

    @staticmethod
    def of(fmt: "str | Format | FormatSpec", **overrides) -> "FormatSpec":
        """A spec from a spec string, a Format or a spec, with the non-None keyword options on top."""
        spec = FormatSpec.parse(fmt) if isinstance(fmt, str) else fmt
        spec = FormatSpec(spec) if isinstance(spec, Format) else spec
        return spec.with_options(spec.options.merged(**overrides)) if overrides else spec

    @property
    def name(self) -> str:
        return self.format.name

    @property
    def block_size(self) -> int:
        return self.format.block_size

    @property
    def hadamard(self) -> int | None:
        return self.options.hadamard

    def with_options(self, options: QuantOptions) -> "FormatSpec":
        return FormatSpec(self.format, options)

    def without_hadamard(self) -> "FormatSpec":
        return self.with_options(dataclasses.replace(self.options, hadamard=None))

    def __repr__(self) -> str:
        return f"FormatSpec.parse({str(self)!r})"

    def __str__(self) -> str:
        items = self.options.to_dict()
        if not items:
            return self.name
        return self.name + "{" + ",".join(f"{k}={v}" for k, v in items.items()) + "}"


def parse_optional(text: str) -> FormatSpec | None:
    """A spec, or None for "none" (high precision)."""
    return None if text == NONE else FormatSpec.parse(text)


def spec_text(spec: FormatSpec | None) -> str:
    """The text of `parse_optional`'s values: the canonical spec, or "none"."""
    return NONE if spec is None else str(spec)

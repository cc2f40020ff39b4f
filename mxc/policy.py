"""Format policies: which format (and options) each layer gets.

A policy file is TOML. Top-level keys are the defaults; a layer rule is a
format name (or spec) or a table of the same keys:

    default = "mxfp4"            # format of layers no rule names ("none" = high precision)
    weights_only = false         # true: activations stay in high precision
    act_format = "mxfp8"         # activations' format when it differs from the weights' (same block size)
    scale_rule = "floor"         # MX scale rule: floor | rceil | ceil | even
    rounding = "rne"             # rne | stochastic (with seed = N)
    error_metric = "mse"         # Four Over Six / IF4 block choice: mse | mae | max
    hadamard = 32                # Hadamard rotation along K: 16 | 32 | 128 | "none"
    [layers]                     # module-path patterns (fnmatch); the first match wins
    "lm_head" = "none"
    "*.mlp.down_proj" = "mxfp8{scale_rule=rceil}"
    "layers.0.*" = { format = "nvfp4_4over6", weights_only = true, error_metric = "mae" }

The option keys are the keyword arguments of `mxc.numerics.quantize`
(`mxc.numerics.options`); they apply to weights and activations alike.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from mxc.numerics.formats import NONE
from mxc.numerics.options import OPTION_NAMES, OptionError, QuantOptions, format_spec, parse_spec

from mxc.errors import MxcError

RULE_KEYS = ("format", "weights_only", "act_format", *OPTION_NAMES)


class PolicyError(MxcError):
    """A policy file that does not parse or names an unknown format, key or option."""


@dataclass(frozen=True)
class Choice:
    """What one layer gets: weight format, activation format, options."""

    format: str
    weights_only: bool = False
    act_format: str | None = None  # None: the weights' format
    options: QuantOptions = QuantOptions()

    def __post_init__(self):
        if self.format == NONE:
            return
        w_fmt, w_opts = parse_spec(self.format)  # raises with the list of valid names
        options = dataclasses.replace(self.options, **{k: v for k, v in w_opts.to_dict().items()})
        object.__setattr__(self, "format", w_fmt.name)
        object.__setattr__(self, "options", options.check(w_fmt))
        if self.act_format not in (None, NONE):
            a_fmt, _ = parse_spec(self.act_format)
            options.check(a_fmt)
            if a_fmt.block_size != w_fmt.block_size:
                raise OptionError(f"act_format {a_fmt.name} has block size {a_fmt.block_size}, the weights' "
                                 f"{w_fmt.name} {w_fmt.block_size}: a block-scaled GEMM needs one block size")

    @property
    def weight_spec(self) -> str:
        return NONE if self.format == NONE else format_spec(self.format, self.options)

    @property
    def act_spec(self) -> str:
        if self.weights_only or self.format == NONE or self.act_format == NONE:
            return NONE
        return format_spec(parse_spec(self.act_format or self.format)[0], self.options)

    def without_hadamard(self) -> "Choice":
        return dataclasses.replace(self, options=dataclasses.replace(self.options, hadamard=None))

    def to_dict(self) -> dict:
        return {"format": self.weight_spec, "weights_only": self.weights_only, "act_format": self.act_spec}


@dataclass(frozen=True)
class Policy:
    """A default choice and (pattern, choice) rules in priority order."""

    default: Choice
    rules: tuple[tuple[str, Choice], ...] = field(default_factory=tuple)

    def choose(self, layer: str) -> tuple[Choice, str]:
        """The layer's choice and where it came from (the rule pattern or 'default')."""
        for pattern, choice in self.rules:
            if fnmatch.fnmatchcase(layer, pattern):
                return choice, pattern
        return self.default, "default"

    @staticmethod
    def uniform(fmt: str, weights_only: bool = False, act_format: str | None = None,
                options: QuantOptions = QuantOptions()) -> "Policy":
        return Policy(Choice(fmt, weights_only, act_format, options))

    @staticmethod
    def from_file(path: str | Path, fmt: str | None = None, weights_only: bool = False,
                  act_format: str | None = None, options: QuantOptions = QuantOptions()) -> "Policy":
        """Load a TOML policy; the command line's format and options fill in what it omits."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise PolicyError(f"{path}: cannot read policy: {e}") from e
        valid = {"default", "layers", *RULE_KEYS} - {"format"}
        unknown = set(data) - valid
        if unknown:
            raise PolicyError(f"{path}: unknown keys {sorted(unknown)} (valid: {', '.join(sorted(valid))})")
        top = {k: v for k, v in data.items() if k not in ("default", "layers")}
        base = {"format": data.get("default", fmt or NONE), "weights_only": weights_only,
                "act_format": act_format, **options.to_dict(), **top}
        try:
            default = _choice(base, base, "default")
            rules = tuple((pat, _choice(v, base, pat)) for pat, v in data.get("layers", {}).items())
        except (ValueError, TypeError) as e:
            raise PolicyError(f"{path}: {e}") from e
        return Policy(default, rules)


def _choice(value, base: dict, where: str) -> Choice:
    """A Choice from a rule value (a format spec or a table of RULE_KEYS) over the policy's defaults."""
    if isinstance(value, str):
        value = {"format": value}
    if not isinstance(value, dict) or "format" not in value:
        raise TypeError(f"rule {where!r}: a layer rule is a format name or {{format = ..., ...}}, got {value!r}")
    unknown = set(value) - set(RULE_KEYS)
    if unknown:
        raise ValueError(f"rule {where!r}: unknown keys {sorted(unknown)} (valid: {', '.join(RULE_KEYS)})")
    merged = {**base, **value}
    if merged["format"] == NONE:
        return Choice(NONE)
    try:  # a bad format, option in braces or option key: the message names the rule
        fmt, _ = parse_spec(merged["format"])
        inherited = {k: base[k] for k in OPTION_NAMES if k in base and k not in value and _applies(k, base[k], fmt)}
        opts = QuantOptions.from_dict({**inherited, **{k: value[k] for k in OPTION_NAMES if k in value}})
        return Choice(merged["format"], bool(merged.get("weights_only", False)), merged.get("act_format"), opts)
    except ValueError as e:
        raise ValueError(f"rule {where!r}: {e}") from e


def _applies(key: str, value, fmt) -> bool:
    """Whether a policy-wide option applies to `fmt` (one that does not is not inherited by its rules)."""
    try:
        QuantOptions.from_dict({key: value}).check(fmt)
    except ValueError:
        return False
    return True

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
    calibrate = "gptq"           # how weights get their codes: rtn (default) | gptq | mr-gptq (mxc.calibration)
    kv_cache = "mxfp8"           # with --generate: the KV cache's format, as --kv-cache (top level only)
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
from mxc.numerics.options import OPTION_NAMES, FormatSpec, OptionError, QuantOptions, parse_optional

from mxc.errors import MxcError
from mxc.layers import lm_path, split_layer

RULE_KEYS = ("format", "weights_only", "act_format", *OPTION_NAMES, "calibrate")
PROGRAM_KEYS = ("kv_cache",)  # top-level keys about the program, not a layer (read by mxc.options)


class PolicyError(MxcError):
    """A policy file that does not parse or names an unknown format, key or option."""


@dataclass(frozen=True)
class Choice:
    """What one layer gets: the weights' spec and the activations' spec (None: high precision).

    `act` None with a `weight` is weights-only. Valid by construction: both
    specs share one block size (a block-scaled GEMM contracts blocks of both)
    and one Hadamard rotation (the rotations cancel only in pairs). `calibrate`:
    how the weights' codes are chosen (`mxc.calibration.method` spec text; "" is
    round to nearest).
    """

    weight: FormatSpec | None
    act: FormatSpec | None = None
    calibrate: str = ""

    def __post_init__(self):
        w, a = self.weight, self.act
        if self.calibrate:
            from mxc.calibration.method import CalibrateSpec

            spec = CalibrateSpec.parse(self.calibrate)  # raises ValueError naming the bad method/option
            object.__setattr__(self, "calibrate", str(spec) if spec.active and w is not None else "")
        if a is None:
            return
        if w is None:
            raise OptionError(f"activations in {a} need quantized weights; these are kept in high precision")
        if a.block_size != w.block_size:
            raise OptionError(f"act_format {a.name} has block size {a.block_size}, the weights' "
                              f"{w.name} {w.block_size}: a block-scaled GEMM needs one block size")
        if a.hadamard != w.hadamard:
            raise OptionError("activations and weights must use the same hadamard rotation")

    @staticmethod
    def of(fmt: FormatSpec | None, weights_only: bool = False, act_format: FormatSpec | None = None,
           options: QuantOptions = QuantOptions(), calibrate: str = "") -> "Choice":
        """The choice for weights in `fmt` (None: high precision) and activations in `act_format`.

        `act_format` None: the weights' format. `options` apply to both; the
        options in `fmt` itself win over them (`mxfp4{scale_rule=rceil}`), and
        the activations take the weights' options (one rotation, one recipe).
        """
        if fmt is None:
            return Choice(None)
        options = dataclasses.replace(options, **fmt.options.to_dict())
        weight = FormatSpec(fmt.format, options)  # raises when an option does not apply
        both = Choice(weight, FormatSpec((act_format or fmt).format, options), calibrate)  # checks act_format anyway
        return Choice(weight, None, calibrate) if weights_only else both

    def without_hadamard(self) -> "Choice":
        return Choice(*(s and s.without_hadamard() for s in (self.weight, self.act)), self.calibrate)

    def with_hadamard(self, n: int) -> "Choice":
        """Both operands rotated by a block Hadamard of size n (MR-GPTQ's rotation)."""
        return Choice(*(s and s.with_options(dataclasses.replace(s.options, hadamard=n))
                        for s in (self.weight, self.act)), self.calibrate)

    def decision(self) -> str:
        """The decision text of a quantized layer: 'mxfp4 x mxfp8 activations', 'nvfp4 weights-only'."""
        cal = f", calibrated {self.calibrate}" if self.calibrate else ""
        if self.act is None:
            return f"{self.weight} weights-only{cal}"
        return f"{self.weight}" + (f" x {self.act} activations" if self.act != self.weight else "") + cal


@dataclass(frozen=True)
class Policy:
    """A default choice and (pattern, choice) rules in priority order."""

    default: Choice
    rules: tuple[tuple[str, Choice], ...] = field(default_factory=tuple)

    def choose(self, layer: str) -> tuple[Choice, str]:
        """The layer's choice and where it came from (the rule pattern or 'default'). A layer of a module with
        several entry points ('decode:lm.model...') matches by its module path too, and by its path in the
        causal LM ('model...'), so a policy written for the model compiled without --generate (--auto's
        policy.toml) applies to its --generate compile."""
        names = dict.fromkeys((layer, split_layer(layer)[1], lm_path(layer)))  # one name without entry points
        for pattern, choice in self.rules:
            if any(fnmatch.fnmatchcase(n, pattern) for n in names):
                return choice, pattern
        return self.default, "default"

    @staticmethod
    def uniform(fmt: FormatSpec | None, weights_only: bool = False, act_format: FormatSpec | None = None,
                options: QuantOptions = QuantOptions(), calibrate: str = "") -> "Policy":
        return Policy(Choice.of(fmt, weights_only, act_format, options, calibrate))

    @staticmethod
    def from_file(path: str | Path, fmt: FormatSpec | None = None, weights_only: bool = False,
                  act_format: FormatSpec | None = None, options: QuantOptions = QuantOptions(),
                  calibrate: str = "") -> "Policy":
        """Load a TOML policy; the command line's format and options fill in what it omits."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise PolicyError(f"{path}: cannot read policy: {e}") from e
        valid = {"default", "layers", *RULE_KEYS, *PROGRAM_KEYS} - {"format"}
        unknown = set(data) - valid
        if unknown:
            raise PolicyError(f"{path}: unknown keys {sorted(unknown)} (valid: {', '.join(sorted(valid))})")
        top = {k: v for k, v in data.items() if k not in ("default", "layers", *PROGRAM_KEYS)}
        base = {"format": data.get("default", fmt), "weights_only": weights_only,
                "act_format": act_format, **options.to_dict(), "calibrate": calibrate, **top}
        try:
            default = _choice(base, base, "default")
            rules = tuple((pat, _choice(v, base, pat)) for pat, v in data.get("layers", {}).items())
        except (ValueError, TypeError) as e:
            raise PolicyError(f"{path}: {e}") from e
        return Policy(default, rules)


def program_key(path: str | Path, key: str) -> str | None:
    """A top-level PROGRAM_KEYS value of a policy file (None when absent), as text."""
    try:
        value = tomllib.loads(Path(path).read_text()).get(key)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise PolicyError(f"{path}: cannot read policy: {e}") from e
    if value is not None and not isinstance(value, str):
        raise PolicyError(f"{path}: {key} must be a format spec string, got {value!r}")
    return value


def _spec(value) -> FormatSpec | None:
    """A policy value: spec text from the file ("none": None), or the command line's parsed spec."""
    return parse_optional(value) if isinstance(value, str) else value


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
    try:  # a bad format, option in braces or option key: the message names the rule
        fmt = _spec(merged["format"])
        if fmt is None:
            return Choice(None)
        inherited = {k: base[k] for k in OPTION_NAMES
                     if k in base and k not in value and _applies(k, base[k], fmt)}
        opts = QuantOptions.from_dict({**inherited, **{k: value[k] for k in OPTION_NAMES if k in value}})
        act = merged.get("act_format")
        weights_only = bool(merged.get("weights_only", False)) or act == NONE  # "none": weights-only
        return Choice.of(fmt, weights_only, _spec(act), opts, merged.get("calibrate") or "")
    except ValueError as e:
        raise ValueError(f"rule {where!r}: {e}") from e


def _applies(key: str, value, spec: FormatSpec) -> bool:
    """Whether a policy-wide option applies to `spec` (one that does not is not inherited by its rules)."""
    try:
        return QuantOptions.from_dict({key: value}).applies_to(spec.format)
    except ValueError:
        return False

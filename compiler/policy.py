"""Format policies: which format each layer gets.

A policy file is TOML:

    default = "mxfp4"            # format of layers no rule names ("none" = high precision)
    weights_only = false         # true: activations stay in high precision
    [layers]                     # module-path patterns (fnmatch); the first match wins
    "lm_head" = "none"
    "*.mlp.down_proj" = "mxfp8"
    "layers.0.*" = { format = "nvfp4", weights_only = true }
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from mxc.numerics.formats import NONE, get_format

from .errors import MxcError


class PolicyError(MxcError):
    """A policy file that does not parse or names an unknown format or key."""


@dataclass(frozen=True)
class Choice:
    """What one layer gets: the weight format and whether activations are quantized too."""

    format: str
    weights_only: bool = False

    def __post_init__(self):
        if self.format != NONE:
            get_format(self.format)  # raises with the list of valid names

    @property
    def act_format(self) -> str:
        return NONE if self.weights_only else self.format

    def to_dict(self) -> dict:
        return {"format": self.format, "weights_only": self.weights_only}


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
    def uniform(fmt: str, weights_only: bool = False) -> "Policy":
        return Policy(Choice(fmt, weights_only))

    @staticmethod
    def from_file(path: str | Path, fmt: str | None = None, weights_only: bool = False) -> "Policy":
        """Load a TOML policy; `fmt` / `weights_only` from the command line fill in what it omits."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise PolicyError(f"{path}: cannot read policy: {e}") from e
        unknown = set(data) - {"default", "weights_only", "layers"}
        if unknown:
            raise PolicyError(f"{path}: unknown keys {sorted(unknown)} (valid: default, weights_only, layers)")
        wo = bool(data.get("weights_only", weights_only))
        try:
            default = Choice(data.get("default", fmt or NONE), wo)
            rules = tuple((pat, _choice(v, wo)) for pat, v in data.get("layers", {}).items())
        except (ValueError, TypeError) as e:
            raise PolicyError(f"{path}: {e}") from e
        return Policy(default, rules)


def _choice(value, weights_only: bool) -> Choice:
    if isinstance(value, str):
        return Choice(value, weights_only)
    if isinstance(value, dict) and set(value) <= {"format", "weights_only"} and "format" in value:
        return Choice(value["format"], bool(value.get("weights_only", weights_only)))
    raise TypeError(f"a layer rule is a format name or {{format = ..., weights_only = ...}}, got {value!r}")

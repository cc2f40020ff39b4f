"""What the user asks `mxc compile` for: one validated `Options` value.

    import mxc
    mxc.Options(format="nvfp4", act_format="mxfp8")  # OptionsError: one block size, not 16 and 32

The fields are the command line's flags (`--scale-rule` is `scale_rule`) and
the keys of the manifest's "options"; every error is an `OptionsError` (an
`MxcError`) raised when the value is built, before anything is compiled.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal, get_args

from mxc.errors import MxcError
from mxc.numerics.options import (
    ErrorMetric,
    FormatSpec,
    HadamardSize,
    QuantOptions,
    Rounding,
    ScaleRule,
    parse_optional,
    spec_text,
)
from mxc.policy import Choice
from mxc.targets import TARGET_NAMES

Contraction = Literal["decomposed", "scaled-generic", "amx", "fma", "dpbf16"]  # lower-mxq-to-linalg's forms of the CPU contraction
CONTRACTIONS: tuple[str, ...] = get_args(Contraction)
# --contraction's values: "auto" is amx where the compiling CPU has AMX bf16 tiles, else fma where it has
# AVX2 and FMA, else decomposed
CONTRACTION_CHOICES: tuple[str, ...] = ("auto", *CONTRACTIONS)
ActDtype = Literal["f32", "bf16"]  # what weight-only layers round their activations to before the GEMM
ACT_DTYPES: tuple[str, ...] = get_args(ActDtype)
DEFAULT_MAX_SEQ_LEN = 256  # --generate's KV cache length when --max-seq-len is not given


class OptionsError(MxcError, ValueError):
    """A compile option that is unknown, malformed or does not apply; the message names it and the valid ones."""


def _spec(key: str, value) -> FormatSpec | None:
    """A format option given as a FormatSpec, None, or spec text ("none": None)."""
    if value is None or isinstance(value, FormatSpec):
        return value
    try:
        return parse_optional(value)
    except ValueError as e:
        raise OptionsError(f"{key}: {e}" if key != "format" else str(e)) from None


@dataclass(frozen=True)
class Options:
    """The options of one compilation, typed and validated when built.

    `format` and `act_format` hold parsed `FormatSpec`s (spec text is accepted
    and parsed once, here): `format` None keeps every layer in high precision
    ("none"); `act_format` None gives the activations the weights' format, and
    "none" means weights-only. `act_dtype` "bf16" rounds the activations of
    weight-only layers to bf16 before the GEMM, as cuda-sm90's tensor-core
    kernels do (the CPU target then computes what they compute, up to the order
    of the float32 sums; the `--compare` reference rounds alike). `contraction` "auto" becomes "amx" for
    the cpu target where this CPU has AMX bf16 tiles, else "dpbf16" where it has AVX512-BF16, else "fma"
    where it has AVX2 and FMA, else "decomposed". The five quantization options stay flat fields
    (the flags' names); `quant_options` is them as a `QuantOptions`, which the
    options in `format`'s braces override. Without a `policy` the whole choice
    is checked here (options that apply, one block size); a policy file is
    checked when it is read, against its own defaults. `to_dict()` is the
    manifest's "options" object.
    """

    target: str = "cpu"
    format: FormatSpec | None = FormatSpec.parse("mxfp4")
    policy: str = ""
    weights_only: bool = False
    contraction: str = "auto"  # resolved when built: one of CONTRACTIONS (the manifest records which)
    act_format: FormatSpec | None = None
    scale_rule: ScaleRule = "floor"
    rounding: Rounding = "rne"
    seed: int = 0
    error_metric: ErrorMetric = "mse"
    hadamard: HadamardSize | None = None
    act_dtype: ActDtype = "f32"
    auto: str = ""  # `--auto bits=4.5`: mxc chooses every layer's format (mxc.selection); "" = off
    calibrate: str = ""  # `--calibrate gptq`: how weights get their codes (mxc.calibration); "" = rtn
    generate: bool = False  # `--generate`: prefill + decode entry points over a KV cache (mxc.generation)
    max_seq_len: int = 0  # `--max-seq-len`: the KV cache's length with --generate (0: DEFAULT_MAX_SEQ_LEN)
    checkpoint: str = ""  # `--checkpoint DIR`: a compressed-tensors checkpoint's codes, compiled as they are
    kv_cache: str = ""  # `--kv-cache F`: with --generate, the KV cache holds format F's values ("": model dtype)

    def __post_init__(self):
        if self.target not in TARGET_NAMES:
            raise OptionsError(f"unknown target '{self.target}' (targets: {', '.join(TARGET_NAMES)})")
        if self.contraction not in CONTRACTION_CHOICES:
            raise OptionsError(f"contraction must be one of {', '.join(CONTRACTION_CHOICES)}, "
                               f"got {self.contraction!r}")
        if self.contraction == "auto":
            from mxc.runtime.amx import host_has_amx, host_has_dpbf16, host_has_fma

            auto = "decomposed"
            if self.target == "cpu":
                auto = ("amx" if host_has_amx() else "dpbf16" if host_has_dpbf16() else "fma" if host_has_fma()
                        else "decomposed")
            object.__setattr__(self, "contraction", auto)
        if self.contraction != "decomposed" and self.target != "cpu":
            raise OptionsError(f"--contraction {self.contraction} applies to --target cpu only (it picks the "
                               f"CPU contraction's linalg form); {self.target} runs mxc's kernels: "
                               "drop --contraction")
        if self.act_dtype not in ACT_DTYPES:
            raise OptionsError(f"act_dtype must be one of {', '.join(ACT_DTYPES)}, got {self.act_dtype!r}")
        # Spec text is parsed here, once; frozen, so through object.__setattr__.
        object.__setattr__(self, "format", _spec("format", self.format))
        if self.act_format == "none":  # the activations in high precision
            object.__setattr__(self, "weights_only", True)
        object.__setattr__(self, "act_format", _spec("act_format", self.act_format or None))
        if self.auto:
            self._check_auto()
        if self.checkpoint:
            self._check_checkpoint()
        self._check_generate()
        if self.calibrate:
            from mxc.calibration.method import CalibrateSpec

            try:
                spec = CalibrateSpec.parse(self.calibrate)
            except ValueError as e:
                raise OptionsError(str(e)) from None
            object.__setattr__(self, "calibrate", str(spec) if spec.active else "")
        try:
            quant = self.quant_options
            if not self.policy and not self.auto:
                Choice.of(self.format, self.weights_only, self.act_format, quant, self.calibrate)
        except ValueError as e:
            raise OptionsError(str(e)) from None

    def _check_auto(self) -> None:
        from mxc.selection.budget import AutoSpec

        try:
            AutoSpec.parse(self.auto)
        except ValueError as e:
            raise OptionsError(str(e)) from None
        given = [k for k in QuantOptions.of(self).to_dict() if k != "seed"] + ["act_format"] * bool(self.act_format)
        if given:
            flags = ", ".join("--" + k.replace("_", "-") for k in given)
            raise OptionsError(f"--auto chooses formats and their options per layer: drop {flags} "
                               "(name candidate formats with --auto ...,formats=mxfp4+nvfp4)")

    def _check_checkpoint(self) -> None:
        """--checkpoint: its quantization_config chooses the formats (format None here: the rest stays in high
        precision) and its codes are compiled as they are, so nothing may choose formats or codes again."""
        given = [k for k in QuantOptions.of(self).to_dict() if k != "seed"] + ["act_format"] * bool(self.act_format)
        given += [f for f in ("policy", "auto", "calibrate") if getattr(self, f)]
        if given:
            flags = ", ".join("--" + k.replace("_", "-") for k in given)
            raise OptionsError(f"--checkpoint compiles the checkpoint's formats and codes as they are: drop {flags} "
                               "(--weights-only still keeps its layers' activations in high precision)")
        object.__setattr__(self, "format", None)

    def _check_generate(self) -> None:
        if self.policy and self.generate:  # the policy's kv_cache key, as --kv-cache (a plain compile ignores it)
            from mxc.policy import program_key

            kv_policy = program_key(self.policy, "kv_cache")
            if kv_policy is not None and self.kv_cache and \
                    str(_spec("kv_cache", kv_policy)) != str(_spec("--kv-cache", self.kv_cache)):
                raise OptionsError(f"--kv-cache {self.kv_cache} and the policy's kv_cache = \"{kv_policy}\" differ: "
                                   "give the cache's format in one place")
            if kv_policy is not None:
                object.__setattr__(self, "kv_cache", kv_policy)
        kv = _spec("--kv-cache", self.kv_cache or None)  # "none": the model dtype
        object.__setattr__(self, "kv_cache", str(kv) if kv is not None else "")
        if kv is not None and kv.hadamard:
            raise OptionsError("--kv-cache: a Hadamard rotation of the cache is not supported; drop hadamard=")
        if not self.generate:
            if self.max_seq_len or self.kv_cache:
                flag = "--max-seq-len sets the KV cache's length" if self.max_seq_len else "--kv-cache its format"
                raise OptionsError(f"{flag} of --generate: add --generate or drop the flag")
            return
        if not isinstance(self.max_seq_len, int) or self.max_seq_len < 0:
            raise OptionsError(f"--max-seq-len must be a positive number of tokens, got {self.max_seq_len!r}")
        if not self.max_seq_len:
            object.__setattr__(self, "max_seq_len", DEFAULT_MAX_SEQ_LEN)

    @property
    def quant_options(self) -> QuantOptions:
        """The quantization options as one value (raises the numerics' OptionError for a bad one)."""
        return QuantOptions.of(self)

    def to_dict(self) -> dict:
        """The manifest's "options": every field, as `mxc compile` has always written them.

        Formats are spec text (`act_format` "" when it is the weights'), `hadamard` 0 when none.
        """
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        act = "" if self.act_format is None else str(self.act_format)
        return {**d, "format": spec_text(self.format), "act_format": act, "hadamard": self.hadamard or 0}

    @staticmethod
    def from_dict(d: dict) -> "Options":
        """The inverse of `to_dict` (a manifest's "options"), validated again."""
        return Options(**{**d, "act_format": d.get("act_format") or None, "hadamard": d.get("hadamard") or None,
                          "act_dtype": d.get("act_dtype") or "f32", "auto": d.get("auto") or "",
                          "calibrate": d.get("calibrate") or "", "generate": bool(d.get("generate")),
                          "max_seq_len": d.get("max_seq_len") or 0, "checkpoint": d.get("checkpoint") or "",
                          "kv_cache": d.get("kv_cache") or ""})

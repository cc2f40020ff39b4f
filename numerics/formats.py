"""The format table: every block-scaled format mxc knows is one entry here.

Element types, scale encodings and formats are plain frozen dataclasses, so a
new format is a new row, not a new code path: the numerics reference, the
`mxq` dialect verifiers and the CPU lowering all read these rows.
Definitions: docs/FORMATS.md (normative).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ElementType:
    """An element (or scale) encoding: a small float or a scaled integer, saturating.

    Floats are S1 E<ebits> M<mbits> (no sign bit when `signed` is false).
    Integers are two's complement codes q in [-qmax, qmax] with value q * 2**-mbits
    (MXINT8: q / 64, so mbits = 6; INT4: mbits = 0).
    `max` is the largest finite magnitude; `mlir` the MLIR type of one element
    in the `mxq` dialect (`i8`/`i4` where MLIR has no builtin type).
    """

    name: str
    bits: int
    mlir: str
    ebits: int = 0
    mbits: int = 0
    bias: int = 0
    max: float = 0.0
    kind: str = "float"  # "float" | "int"
    signed: bool = True
    has_inf: bool = False  # E5M2: exponent all ones is Inf/NaN (never produced from finite input)
    qmax: int = 0  # int kinds: largest code magnitude

    @property
    def emin(self) -> int:
        """Exponent of the smallest normal number."""
        return 1 - self.bias

    @property
    def emax(self) -> int:
        """Exponent of the largest normal number (OCP `emax_elem`)."""
        return int.bit_length(int(self.max)) - 1

    @property
    def nan_code(self) -> int | None:
        """Code that encodes NaN (sign bit clear), or None when the type has none."""
        if self.kind == "int" or self.ebits + self.mbits + int(self.signed) != self.bits:
            return None
        if self.name in ("e4m3", "e5m2", "ue5m3"):
            return (1 << (self.bits - int(self.signed))) - 1
        return None


E4M3 = ElementType("e4m3", 8, "f8E4M3FN", 4, 3, 7, 448.0)
E5M2 = ElementType("e5m2", 8, "f8E5M2", 5, 2, 15, 57344.0, has_inf=True)
E2M3 = ElementType("e2m3", 6, "f6E2M3FN", 2, 3, 1, 7.5)
E3M2 = ElementType("e3m2", 6, "f6E3M2FN", 3, 2, 3, 28.0)
E2M1 = ElementType("e2m1", 4, "f4E2M1FN", 2, 1, 1, 6.0)
INT8 = ElementType("int8", 8, "i8", mbits=6, max=127 / 64, kind="int", qmax=127)
INT4 = ElementType("int4", 4, "i4", mbits=0, max=7.0, kind="int", qmax=7)
UE5M3 = ElementType("ue5m3", 8, "i8", 5, 3, 15, 114688.0, signed=False)


@dataclass(frozen=True)
class ScaleType:
    """The encoding of a block scale: E8M0 (a power of two) or the values of `element`.

    `flag`: bit 7 of the scale byte is IF4's INT-block flag (the value is in bits 0-6).
    """

    name: str
    mlir: str
    element: ElementType | None = None
    flag: bool = False


E8M0 = ScaleType("e8m0", "f8E8M0FNU")
UE4M3 = ScaleType("ue4m3", "f8E4M3FN", E4M3)
UE4M3_FLAG = ScaleType("ue4m3+flag", "i8", E4M3, flag=True)
UE5M3_SCALE = ScaleType("ue5m3", "i8", UE5M3)


@dataclass(frozen=True)
class Format:
    """A block-scaled format: element type, block size, scale encoding.

    `tensor_scale` marks the NVFP4 family's FP32 second-level scale;
    `tensor_scale_max` is its scale-of-scales numerator (448 for NVFP4,
    256 for Four Over Six). `choice` names a per-block adaptive choice
    (Four Over Six's map-4 vs map-6, IF4's FP vs INT); `elements_mlir`
    overrides the element type where codes are not one float type (IF4).
    """

    name: str
    element: ElementType
    block_size: int
    scale: ScaleType
    tensor_scale: bool = False
    tensor_scale_max: float = 448.0
    choice: str | None = None
    elements_mlir: str = ""
    description: str = ""

    @property
    def family(self) -> str:
        """'mx' (E8M0 scales, OCP rules) or 'nv' (scaled scales over an FP32 tensor scale)."""
        return "nv" if self.tensor_scale else "mx"

    @property
    def storage_mlir(self) -> str:
        """MLIR element type of the `mxq` elements tensor."""
        return self.elements_mlir or self.element.mlir

    @property
    def bits_per_element(self) -> float:
        """Storage bits per element, block scales included (tensor scale not)."""
        return self.element.bits + 8 / self.block_size

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "element": self.element.name,
            "block_size": self.block_size,
            "scale": self.scale.name,
            "tensor_scale": self.tensor_scale,
            "choice": self.choice,
            "bits_per_element": self.bits_per_element,
            "description": self.description,
        }


def _mx(name: str, elem: ElementType, what: str) -> Format:
    return Format(name, elem, 32, E8M0, description=f"OCP {what}, E8M0 scale per 32")


def _nv(name: str, elem: ElementType, scale: ScaleType, what: str, **kw) -> Format:
    return Format(name, elem, 16, scale, tensor_scale=True, description=what, **kw)


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        _mx("mxfp8", E4M3, "MXFP8 (E4M3)"),
        _mx("mxfp8_e5m2", E5M2, "MXFP8 (E5M2)"),
        _mx("mxfp6_e2m3", E2M3, "MXFP6 (E2M3)"),
        _mx("mxfp6_e3m2", E3M2, "MXFP6 (E3M2)"),
        _mx("mxfp4", E2M1, "MXFP4 (E2M1)"),
        _mx("mxint8", INT8, "MXINT8 (q/64)"),
        _nv("nvfp4", E2M1, UE4M3, "NVIDIA NVFP4: E2M1, UE4M3 scale per 16, FP32 tensor scale"),
        _nv("nvfp4_4over6", E2M1, UE4M3, "Four Over Six: NVFP4 with per-block map-4/map-6 choice",
            tensor_scale_max=256.0, choice="4over6"),
        _nv("if4", E2M1, UE4M3_FLAG, "IF4: per-block E2M1 or INT4 (x6/7), flag in scale bit 7",
            choice="if4", elements_mlir="i4"),
        _nv("nvint4", INT4, UE4M3, "NVINT4: INT4 in [-7, 7], UE4M3 scale per 16, FP32 tensor scale"),
        _nv("fp4_ue5m3", E2M1, UE5M3_SCALE, "E2M1, UE5M3 scale per 16, FP32 tensor scale",
            tensor_scale_max=UE5M3.max),
    )
}

NONE = "none"  # the policy value that keeps a layer in high precision


class UnknownFormatError(ValueError):
    """Raised for a format name not in the table; the message lists the valid ones."""


def get_format(name: str) -> Format:
    """Look a format up by name (options in braces are ignored here: see options.FormatSpec.parse)."""
    base = name.split("{", 1)[0].strip()
    try:
        return FORMATS[base]
    except KeyError:
        valid = ", ".join(sorted(FORMATS))
        raise UnknownFormatError(
            f"unknown format '{name}': valid formats are {valid} (or '{NONE}' to keep a layer in high precision)"
        ) from None

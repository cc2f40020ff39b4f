"""The format table: every block-scaled format mxc knows is one entry here.

Element types, scale encodings and formats are plain frozen dataclasses, so a
new format is a new row, not a new code path: the numerics reference, the
`mxq` dialect verifiers and the CPU lowering all read these rows.
Definitions: ../shared/FORMATS.md (normative).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ElementType:
    """A small floating-point element type, S1 E<ebits> M<mbits>, saturating.

    `max` is the largest finite magnitude; `mlir` the builtin MLIR type name.
    """

    name: str
    ebits: int
    mbits: int
    bias: int
    max: float
    mlir: str

    @property
    def bits(self) -> int:
        return 1 + self.ebits + self.mbits

    @property
    def emin(self) -> int:
        """Exponent of the smallest normal number."""
        return 1 - self.bias

    @property
    def emax(self) -> int:
        """Exponent of the largest normal number (OCP `emax_elem`)."""
        return int.bit_length(int(self.max)) - 1


@dataclass(frozen=True)
class ScaleType:
    """The encoding of a block scale."""

    name: str  # "e8m0" (power of two) or "ue4m3" (E4M3 with the sign unused)
    mlir: str


E4M3 = ElementType("e4m3", 4, 3, 7, 448.0, "f8E4M3FN")
E2M1 = ElementType("e2m1", 2, 1, 1, 6.0, "f4E2M1FN")
ELEMENTS = {e.name: e for e in (E4M3, E2M1)}

E8M0 = ScaleType("e8m0", "f8E8M0FNU")
UE4M3 = ScaleType("ue4m3", "f8E4M3FN")
SCALES = {s.name: s for s in (E8M0, UE4M3)}


@dataclass(frozen=True)
class Format:
    """A block-scaled format: element type, block size, scale encoding.

    `tensor_scale` marks the NVFP4 family's FP32 second-level scale;
    `tensor_scale_max` is the scale-of-scales numerator (448 for NVFP4).
    """

    name: str
    element: ElementType
    block_size: int
    scale: ScaleType
    tensor_scale: bool = False
    tensor_scale_max: float = 448.0
    description: str = ""

    @property
    def family(self) -> str:
        return "nv" if self.tensor_scale else "mx"

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
            "bits_per_element": self.bits_per_element,
        }


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("mxfp8", E4M3, 32, E8M0, description="OCP MXFP8 (E4M3), E8M0 scale per 32"),
        Format("mxfp4", E2M1, 32, E8M0, description="OCP MXFP4 (E2M1), E8M0 scale per 32"),
        Format(
            "nvfp4",
            E2M1,
            16,
            UE4M3,
            tensor_scale=True,
            description="NVIDIA NVFP4: E2M1, UE4M3 scale per 16, FP32 tensor scale",
        ),
    )
}

NONE = "none"  # the policy value that keeps a layer in high precision


class UnknownFormatError(ValueError):
    """Raised for a format name not in the table; the message lists the valid ones."""


def get_format(name: str) -> Format:
    """Look a format up by name, with an error that lists the valid names."""
    try:
        return FORMATS[name]
    except KeyError:
        valid = ", ".join(sorted(FORMATS))
        raise UnknownFormatError(
            f"unknown format '{name}': valid formats are {valid} (or '{NONE}' to keep a layer in high precision)"
        ) from None

"""mxc.numerics: the one reference implementation of every block-scaled format.

`quantize(x, fmt)` returns a `QTensor`; its codes are what every lowering of
mxc must reproduce bit for bit (the CPU lowering emits the same float32 steps).
Definitions: ../shared/FORMATS.md.
"""

from .formats import FORMATS, NONE, Format, UnknownFormatError, get_format
from .quantize import QTensor, fake_quantize, pack_nibbles, quantize, unpack_nibbles

__all__ = [
    "FORMATS",
    "NONE",
    "Format",
    "QTensor",
    "UnknownFormatError",
    "fake_quantize",
    "get_format",
    "pack_nibbles",
    "quantize",
    "unpack_nibbles",
]

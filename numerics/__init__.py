"""mxc.numerics: the one reference implementation of every block-scaled format.

`quantize(x, fmt, **options)` returns a `QTensor`; its codes are what every
lowering of mxc must reproduce bit for bit (the CPU lowering emits the same
float32 steps). Definitions: docs/FORMATS.md; options: `options.py`.
"""

from .formats import FORMATS, NONE, Format, UnknownFormatError, get_format
from .options import FormatSpec, OptionError, QuantOptions, parse_optional
from .quantize import (
    QTensor,
    dot_general,
    fake_quantize,
    from_row_bytes,
    pack_fp6,
    pack_nibbles,
    quantize,
    row_bytes,
    row_nbytes,
    unpack_fp6,
    unpack_nibbles,
)

__all__ = [
    "FORMATS",
    "NONE",
    "Format",
    "FormatSpec",
    "OptionError",
    "QTensor",
    "QuantOptions",
    "UnknownFormatError",
    "dot_general",
    "fake_quantize",
    "from_row_bytes",
    "get_format",
    "pack_fp6",
    "pack_nibbles",
    "parse_optional",
    "quantize",
    "row_bytes",
    "row_nbytes",
    "unpack_fp6",
    "unpack_nibbles",
]

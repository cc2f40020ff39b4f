"""mxc: a quantizing compiler for block-scaled number formats (MX, NVFP4, ...)."""

__version__ = "0.1.0"

"""mxc's targets, one module each: what a target compiles to, how it runs, which kernels a layer gets."""

TARGET_NAMES = ("cpu", "cuda-sm90", "cuda-sm100")

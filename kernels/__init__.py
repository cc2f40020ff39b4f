"""mxc's CUDA kernels for the `cuda-sm90` and `cuda-sm100` targets.

    kinds.py     one class per kernel kind: name, bindings, constants, grid, shared memory, C++ call
    operands.py  native format pairs, tile units and sizes, weights re-packed into tiles
    launches.py  the launches of one layer (used by lower-mxq-to-cuda and the GPU runner)
    codegen.py   one CUDA translation unit for a list of variants
    build.py     nvcc -> PTX, ptxas -> cubin, cached by content
    catalog.py   every variant of an architecture (what CI assembles)
    tcgen05.py   Blackwell's instruction descriptor; layouts.py the tile and 128x4 scale layouts

Which kernels a layer gets is the target's decision (`mxc.targets`).
"""

from .build import Built, build
from .catalog import every_kernel
from .codegen import KernelError, source
from .kinds import EPILOGUES, KINDS, Kernel
from .launches import Launch, layer_launches

__all__ = ["EPILOGUES", "KINDS", "Built", "Kernel", "KernelError", "Launch", "build", "every_kernel",
           "layer_launches", "source"]

"""What every target is: its phases after fusion, IREE flags, how it runs, which kernels a layer gets.

A target is one module (`cpu.py`, `cuda_sm90.py`, `cuda_sm100.py`) defining a `Target` subclass;
`mxc.targets` registers it by name. Adding a target is adding one module. Nothing here imports the
compiler (torch-mlir): the runtime reads `device`, `driver` and `not_runnable` on machines that
only run artifacts; passes are imported when `lowering()` is called.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from mxc.numerics.formats import Format
from mxc.numerics.options import FormatSpec

if TYPE_CHECKING:
    from mxc.kernels import Kernel
    from mxc.weights import WeightStore


@dataclass(frozen=True)
class GemmLayer:
    """What kernel selection sees of a fused layer [m, k] x [n, k]^T."""

    layer: str
    m: int
    weights: FormatSpec
    acts: FormatSpec | None  # None: activations in high precision (weight-only)
    bias: bool
    n: int = 0  # output features (0: unknown; kernels that size their grid by N take their default)
    k: int = 0  # input features (0: unknown)

    @property
    def w_format(self) -> str:
        return self.weights.name

    @property
    def a_format(self) -> str | None:
        return self.acts and self.acts.name


@dataclass(frozen=True)
class Roofline:
    """Peak rates of a device, for `mxc inspect --target` estimates: FLOP/s by tensor-core path, bytes/s."""

    device: str
    bf16: float
    fp8: float
    fp4: float
    bandwidth: float
    cuda_cores: float  # FP32 FMA FLOP/s (the gemv path)


class Target:
    """Base class; subclasses are singletons registered in `mxc.targets.TARGETS`."""

    name: ClassVar[str] = ""
    help: ClassVar[str] = ""  # one line for `mxc compile --help`
    device: ClassVar[str | None] = None  # the `mxc run --device` that runs its artifacts (None: none here)
    driver: ClassVar[str] = ""  # IREE's runtime driver
    not_runnable: ClassVar[str] = ""  # why no --device runs it (when device is None)
    iree_flags: ClassVar[tuple[str, ...]] = ()
    lowering_phases: ClassVar[tuple[str, ...]] = ()  # the phases after `fuse`, before `iree-input`
    annotating_phases: ClassVar[tuple[str, ...]] = ()  # of those, the ones that keep the layers' mxq ops
    roofline: ClassVar[Roofline | None] = None

    def lowering(self, options, weights: "WeightStore", libraries: list | None = None) -> list[tuple[str, object]]:
        """(phase, pass) for `lowering_phases`, configured by the compile options; passes that assemble
        kernels append the library (`mxc.kernels.Built`) to `libraries`."""
        raise NotImplementedError

    def select(self, layer: GemmLayer) -> "list[Kernel] | str":
        """The kernels that compute `layer`, or the reason there are none."""
        return f"target {self.name} runs no kernels of mxc's own"

    def format_path(self, fmt: Format) -> str:
        """How this target runs a format, in words (`mxc formats`)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<target {self.name}>"

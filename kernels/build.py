"""Assembly: nvcc (CUDA C++ -> PTX) and ptxas (PTX -> cubin) for one architecture, cached by content."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from .codegen import KernelError, check_arch, source
from .kinds import Kernel

HERE = Path(__file__).resolve().parent
RECIPE = "nvcc -std=c++17 -O3 -arch=compute_<arch> -ptx | ptxas -v -O3 -arch=<arch>"  # part of the cache key
HEADERS = ("mxc_sm90.cuh", "mxc_sm90_prefill.cuh", "mxc_bs.cuh", "mxc_bs_atoms.cuh")


def nvcc() -> str:
    """Path of nvcc (PATH, $CUDA_HOME/bin, /usr/local/cuda/bin)."""
    for cand in (shutil.which("nvcc"), os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"), "bin", "nvcc")):
        if cand and os.path.isfile(cand):
            return cand
    raise KernelError("nvcc not found: the cuda-sm90 target assembles its kernels with CUDA 12.8+ nvcc/ptxas "
                      "(install the CUDA toolkit or put nvcc on PATH)")


@dataclass(frozen=True)
class Built:
    """An assembled kernel library: the CUDA source, its PTX and cubin (content-addressed cache files)."""

    source: str
    ptx_path: Path
    cubin_path: Path

    @property
    def cubin(self) -> bytes:
        return self.cubin_path.read_bytes()

    @property
    def ptx(self) -> bytes:
        return self.ptx_path.read_bytes()

    @property
    def ptxas_log(self) -> str:
        """What `ptxas -v` said: registers, spills, and performance notes such as C7510 (wgmma serialized)."""
        return self.cubin_path.with_suffix(".log").read_text()


def _cache_dir() -> Path:
    d = Path(os.environ.get("MXC_CACHE", Path.home() / ".cache" / "mxc")) / "kernels"
    d.mkdir(parents=True, exist_ok=True)
    return d


@cache
def _header_digest() -> str:
    return hashlib.sha256(b"".join((HERE / f).read_bytes() for f in HEADERS)).hexdigest()


def build(kernels: list[Kernel]) -> Built:
    """nvcc -> PTX, ptxas -> cubin, for the kernels' architecture; cached by the source's hash
    (MXC_CACHE, ~/.cache/mxc)."""
    src = source(kernels)
    arch = check_arch(kernels)
    key = hashlib.sha256((src + _header_digest() + arch + RECIPE).encode()).hexdigest()[:24]
    d = _cache_dir()
    ptx_path, cubin_path = d / f"{key}.ptx", d / f"{key}.cubin"
    if not (ptx_path.is_file() and cubin_path.is_file() and cubin_path.with_suffix(".log").is_file()):
        # Every file goes through a name of this process and is renamed into place: concurrent
        # compilers (pytest workers) may build the same library.
        cu, tmp_cu = d / f"{key}.cu", d / f"{key}.cu.{os.getpid()}"
        tmp_cu.write_text(src)
        tmp_cu.replace(cu)  # atomic: a concurrent nvcc keeps reading the file it opened
        tool = nvcc()
        ptxas = str(Path(tool).with_name("ptxas"))
        steps = (  # nvcc: CUDA C++ -> PTX; ptxas: PTX -> cubin
            ([tool, "-std=c++17", "-O3", f"-I{HERE}", f"-arch=compute_{arch[3:]}", "-ptx", str(cu), "-o"], ptx_path),
            ([ptxas, "-v", f"-arch={arch}", "-O3", str(ptx_path), "-o"], cubin_path),
        )
        for cmd, out in steps:
            tmp = out.with_suffix(out.suffix + f".{os.getpid()}")
            r = subprocess.run(cmd + [str(tmp)], capture_output=True, text=True)
            if r.returncode:
                raise KernelError(f"{Path(cmd[0]).name} failed for {cu}:\n{r.stderr[-4000:]}")
            if out == cubin_path:
                tmp_log = cubin_path.with_suffix(f".log.{os.getpid()}")
                tmp_log.write_text(r.stdout + r.stderr)
                tmp_log.replace(cubin_path.with_suffix(".log"))
            tmp.replace(out)
    return Built(src, ptx_path, cubin_path)

"""How long GPTQ takes on one Llama-8B-sized layer (synthetic weights and activations), on a GPU when torch sees one.

    python -m mxc.tools.bench_gptq [--shapes 4096x14336 14336x4096] [--tokens 262144] [--formats nvfp4 mxfp4]

Shapes are N x K (outputs x inputs; 4096 x 14336 is Llama-3-8B's down_proj, 14336 x 4096 its gate/up).
The Hessian X^T X of --tokens calibration tokens (default 128 x 2048) is accumulated in chunks of
4096 tokens; activations are Gaussian mixed by a random matrix, with a few outlier channels, as a real
layer's are. Prints, per shape and format, the Hessian's time, GPTQ's time (the sweep: linear algebra on
the device, the format's quantizer on the CPU) and the relative output error of round-to-nearest and GPTQ.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def hessian(k: int, tokens: int, dev, seed: int = 0, chunk: int = 4096) -> torch.Tensor:
    g = torch.Generator(device=dev).manual_seed(seed)
    mix = torch.eye(k, device=dev) + torch.randn(k, k, generator=g, device=dev) / k**0.5
    h = torch.zeros(k, k, dtype=torch.float64, device=dev)
    for i in range(0, tokens, chunk):
        x = torch.randn(min(chunk, tokens - i), k, generator=g, device=dev) @ mix
        x[:, :8] *= 10
        h += (x.T @ x).double()
    return h


def main(argv=None) -> int:
    from mxc.calibration.gptq import gptq
    from mxc.numerics import FormatSpec

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", nargs="+", default=["4096x14336", "14336x4096"])
    ap.add_argument("--tokens", type=int, default=128 * 2048)
    ap.add_argument("--formats", nargs="+", default=["nvfp4", "mxfp4"])
    a = ap.parse_args(argv)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"
    print(f"device: {name}; {a.tokens} calibration tokens; torch {torch.__version__}", flush=True)
    print("| N x K | format | Hessian s | GPTQ s | output error RTN | output error GPTQ |")
    print("|---|---|---|---|---|---|")
    for shape in a.shapes:
        n, k = map(int, shape.split("x"))
        t0 = time.perf_counter()
        h = hessian(k, a.tokens, dev)
        _sync(dev)
        t_h = time.perf_counter() - t0
        w = torch.randn(n, k, generator=torch.Generator().manual_seed(1)) * 0.02
        for fmt in a.formats:
            t0 = time.perf_counter()
            r = gptq(w, h, FormatSpec.parse(fmt), layer=f"{shape}")
            _sync(dev)
            t_g = time.perf_counter() - t0
            print(f"| {n} x {k} | {fmt} | {t_h:.2f} | {t_g:.2f} | {r.err_rtn:.4g} | {r.err_gptq:.4g} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark (not a test): the numerics reference's quantize + dequantize throughput, every format.

    python -m mxc.tools.bench_numerics [--size 4096] [--repeats 7]

Times `mxc.numerics.fake_quantize` on a [size, size] float32 Gaussian tensor,
median of timed runs after one warm-up, and in the same run torchao's CPU
implementation (`MXTensor.to_mx(...).dequantize()`, `NVFP4Tensor.to_nvfp4`)
where torchao has the format, printing the ratio and the fraction of values on
which the two agree bit for bit (same scale rule: FLOOR; NVFP4 with torchao's
per-tensor scale amax / (448 * 6)).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from mxc.numerics import FORMATS, fake_quantize


def _median_s(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def torchao_fns() -> dict:
    """format name -> torchao quantize+dequantize function, for the formats torchao has."""
    import torchao  # noqa: F401  (ImportError is handled by the caller)
    from torchao.prototype.mx_formats.mx_tensor import MXTensor
    from torchao.prototype.mx_formats.nvfp4_tensor import NVFP4Tensor, per_tensor_amax_to_scale

    def mx(dtype):
        return lambda x: MXTensor.to_mx(x, dtype, 32).dequantize(torch.float32)

    def nvfp4(x):
        scale = per_tensor_amax_to_scale(x.abs().amax())
        return NVFP4Tensor.to_nvfp4(x, per_tensor_scale=scale).dequantize(torch.float32)

    return {
        "mxfp8": mx(torch.float8_e4m3fn), "mxfp8_e5m2": mx(torch.float8_e5m2),
        "mxfp6_e2m3": mx("fp6_e2m3"), "mxfp6_e3m2": mx("fp6_e3m2"),
        "mxfp4": mx(torch.float4_e2m1fn_x2), "nvfp4": nvfp4,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--repeats", type=int, default=7)
    a = p.parse_args(argv)
    x = torch.randn(a.size, a.size, generator=torch.Generator().manual_seed(0))
    try:
        ao = torchao_fns()
        import torchao

        ao_note = f"torchao {torchao.__version__}"
    except ImportError as e:
        ao, ao_note = {}, f"torchao not importable ({e}); pip install -e '.[bench]'"
    print(f"quantize+dequantize of a {a.size}x{a.size} float32 tensor, median of {a.repeats} after a warm-up, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; {ao_note}")
    print(f"{'format':14s} {'mxc ms':>8s} {'GB/s':>6s} {'torchao ms':>10s} {'mxc/torchao':>11s} {'equal values':>12s}")
    nbytes = x.numel() * 4
    for name, fmt in FORMATS.items():
        t = _median_s(lambda: fake_quantize(x, fmt), a.repeats)
        row = f"{name:14s} {t * 1e3:8.1f} {nbytes / t / 1e9:6.2f}"
        if name in ao:
            t_ao = _median_s(lambda: ao[name](x), a.repeats)
            same = (ao[name](x) == fake_quantize(x, fmt)).float().mean().item()
            verdict = "faster" if t < t_ao else "slower"
            row += f" {t_ao * 1e3:10.1f} {t / t_ao:10.2f}x {same:12.6f}  mxc {verdict}"
        print(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark (not a test): text generation with a `--generate` artifact vs torch, in one process.

Loads an artifact compiled with `mxc compile MODEL.py --generate` and times, after a warm-up and as the
median of `--reps` runs, a prompt of `--prompt-tokens` tokens then `--new-tokens` greedy tokens:

* mxc: the artifact (`--device cpu|cuda`), the KV cache kept on the device between steps;
* torch eager: transformers' own `generate` on model.py's causal LM as written (unquantized, its
  dtype or `--torch-dtype`, its own dynamic cache), greedy, on the same device;
* torch compiled (`--torch-compile`, CUDA only): transformers' `generate` with a static cache
  (`cache_implementation="static"`), whose forward transformers compiles with
  `torch.compile(mode="reduce-overhead", fullgraph=True)`: the CUDA-graph decode gpt-fast uses.

Prints prefill ms and decode tokens/s for each and the decode ratio mxc / torch (> 1: mxc faster).
`--profile` adds where mxc's greedy decode step goes: the time of one `decode` call when the calls are
chained on their own outputs with nothing read back (the device's step time plus the call's host time),
and the time of reading the token history, one token and the logits back to the host (medians).
The prompt is token ids 1.. (content does not matter for speed); EOS is ignored so every run decodes
the same number of steps.

    python -m mxc.tools.bench_generate OUT [--device cpu|cuda] [--prompt-tokens 128] [--new-tokens 128]
        [--torch-dtype bf16] [--torch-compile] [--model MODEL.py] [--profile] [--decode-steps N]

`--decode-steps N` runs only the prefill and N chained decode calls, for a profiler (`mxc.tools.ncu_summary`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time


def _torch_generate(lm, ids, new_tokens: int, device: str, static: bool = False):
    import torch

    kwargs = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, use_cache=True,
                  pad_token_id=0)
    if static:
        kwargs["cache_implementation"] = "static"
    x = torch.tensor([ids], device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    t = time.perf_counter()
    lm.generate(x, max_new_tokens=1, do_sample=False, use_cache=True, pad_token_id=0,
                **({"cache_implementation": "static"} if static else {}))
    sync()
    prefill = time.perf_counter() - t
    t = time.perf_counter()
    lm.generate(x, **kwargs)
    sync()
    total = time.perf_counter() - t
    return prefill * 1e3, (new_tokens - 1) / max(total - prefill, 1e-9)


def _profile(art, ids: list[int], steps: int = 64, reads: bool = True) -> dict:
    """ms of one chained greedy `decode` call and of reading the history, a token and the logits back."""
    import numpy as np
    import torch

    from mxc.generation import ENTRY_POINTS

    prefill, decode = (art.functions[f] for f in ENTRY_POINTS)
    s = art.manifest["generate"]["max_seq_len"]
    x = torch.zeros(1, s, dtype=torch.long)
    x[0, :len(ids)] = torch.tensor(ids)
    logits, k, v, token, position, history = art._call(prefill, (x, torch.tensor([len(ids)])))
    np.asarray(history)
    n = max(1, min(steps, s - len(ids) - 1))
    t = time.perf_counter()
    for _ in range(n):
        logits, k, v, token, position, history = art._call(decode, (token, position, k, v, history))
    out = {"decode_call_ms": (time.perf_counter() - t) / n * 1e3}
    if not reads:
        np.asarray(history)
        return out
    for name, arr in (("history", history), ("token", token), ("logits", logits)):
        times = []
        for _ in range(10):
            t = time.perf_counter()
            np.asarray(arr)
            times.append(time.perf_counter() - t)
        out[f"read_{name}_ms"] = statistics.median(times) * 1e3
    return {k: round(v, 3) for k, v in out.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mxc.tools.bench_generate", description=__doc__.splitlines()[0])
    p.add_argument("artifact")
    p.add_argument("--device", default="cpu")
    p.add_argument("--prompt-tokens", type=int, default=128)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--torch-compile", action="store_true", help="also torch.compile reduce-overhead, static cache")
    p.add_argument("--no-torch", action="store_true", help="time the artifact only")
    p.add_argument("--torch-dtype", default="", choices=["", "bf16", "f32"],
                   help="the torch peers' dtype (default: model.py's)")
    p.add_argument("--model", default=None, help="model.py, where it is not at the path the manifest records")
    p.add_argument("--profile", action="store_true", help="also time a chained decode call and the reads back")
    p.add_argument("--decode-steps", type=int, default=0,
                   help="only the prefill then this many chained decode calls, nothing timed (for a profiler)")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)

    import torch

    import mxc

    art = mxc.load(a.artifact, a.device)
    ids = list(range(1, a.prompt_tokens + 1))
    if a.decode_steps:
        _profile(art, ids, a.decode_steps, reads=False)
        return 0
    runs = []
    art.generate(ids, 4, stop_at_eos=False)  # warm-up
    for _ in range(a.reps):
        runs.append(art.generate(ids, a.new_tokens, stop_at_eos=False))
    rows = {"mxc": (statistics.median(r.prefill_ms for r in runs),
                    statistics.median(r.decode_tokens_per_s for r in runs))}
    if not a.no_torch:
        from mxc.compiler.frontend import load_model_file
        from mxc.generation import causal_lm

        device = "cuda" if a.device == "cuda" else "cpu"
        lm = causal_lm(load_model_file(a.model or art.manifest["model"]).model).to(device)
        if a.torch_dtype:
            lm = lm.to({"bf16": torch.bfloat16, "f32": torch.float32}[a.torch_dtype])
        lm.generation_config.eos_token_id = None
        with torch.no_grad():
            kinds = [("torch eager", False)] + [("torch compiled", True)] * a.torch_compile
            for name, static in kinds:
                if static:  # transformers compiles the forward itself with a static cache: reduce-overhead
                    from transformers import CompileConfig

                    lm.generation_config.compile_config = CompileConfig(fullgraph=True, mode="reduce-overhead")
                _torch_generate(lm, ids, 4, device, static)  # warm-up (and compile)
                if static:
                    _torch_generate(lm, ids, a.new_tokens, device, static)
                res = [_torch_generate(lm, ids, a.new_tokens, device, static) for _ in range(a.reps)]
                rows[name] = (statistics.median(r[0] for r in res), statistics.median(r[1] for r in res))
    result = {k: {"prefill_ms": round(v[0], 2), "decode_tokens_per_s": round(v[1], 2)} for k, v in rows.items()}
    for k in rows:
        if k != "mxc":
            result[k]["mxc_decode_speedup"] = round(rows["mxc"][1] / rows[k][1], 3)
    if a.profile:
        result["mxc"]["profile"] = _profile(art, ids)
    if a.json:
        print(json.dumps(result))
        return 0
    print(f"{a.artifact}: {a.prompt_tokens} prompt tokens, {a.new_tokens} new, --device {a.device}, medians of {a.reps}")
    print(f"{'':16s} {'prefill ms':>11s} {'decode tok/s':>13s} {'mxc decode speedup':>19s}")
    for k, r in result.items():
        print(f"{k:16s} {r['prefill_ms']:11.1f} {r['decode_tokens_per_s']:13.1f} "
              f"{r.get('mxc_decode_speedup', float('nan')):19.2f}")
    if a.profile:
        print("mxc greedy decode step:", ", ".join(f"{k} {v}" for k, v in result["mxc"]["profile"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

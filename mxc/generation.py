"""Causal-LM generation as two programs over a KV cache the caller holds: `prefill` and `decode`.

`mxc compile MODEL.py --generate` exports these two wrappers of model.py's causal LM and compiles both
into one module sharing one `.irpa`. The KV cache is passed through: each entry point takes the cache
tensors and returns the updated ones (K and V each [layers, batch 1, kv heads, max_seq_len, head dim]),
so the program is a pure function and the runtime keeps the cache on the device between calls (IREE
hands the returned buffers straight back in).

    prefill(ids [1, T] int64, length [1] int64)
        -> logits [1, vocab] at position length-1, K, V, token [1, 1], position [1] (= length), history
    decode(token [1, 1] int64, position [1] int64, K, V, history [1, S+1] int64)
        -> logits [1, vocab], K, V, token [1, 1], position [1] (+ 1), history

S = max_seq_len. T is the prompt's length (`dynamic_prefill`, what `mxc compile --generate` builds on every
target: T is a dynamic dimension of the exported prefill, 1..S-1; the CUDA targets choose their kernels by T
at run time) or S (`dynamic_prefill` off: the prompt padded to S, the positions past `length` masked for
every later query by the causal mask and overwritten as decoding reaches them). The attention mask is built here, 4-D,
from the positions (key j is visible to a query at position p when j <= p), so the transformers model
neither builds one nor keeps a cache of its own.

Each step also chooses the greedy next token on the device (argmax of its logits) and returns it with
its position, ready to go straight back into `decode`, and writes it into `history` (token ids by
position; the prompt's positions stay 0). Greedy generation therefore runs ahead without the host: no
logits leave the device, no token goes in, and the host reads `history` once every few steps
(`generate_ids`' `read_every`) to collect the tokens and see an end-of-sequence token. Sampling (a
temperature) reads the logits every step and sends its own token and position instead.

Needs only torch and transformers: the torch reference loop and the compiled one share this file.
"""

from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass, field

import torch

from mxc.errors import MxcError

ENTRY_POINTS = ("prefill", "decode")


@torch.library.custom_op("mxc::kv_store", mutates_args=())
def kv_store_op(x: torch.Tensor, spec: str) -> torch.Tensor:
    """Keys or values [..., D] float32 -> the KV cache's bytes, int8 [..., row_nbytes]: each vector quantized
    along D in `spec` (one quantize over all of x: an NV format's tensor scale is x's) and stored as
    `mxc.numerics.row_bytes` lays it out. One graph op: torch runs the numerics reference, convert-torch-to-mxq
    makes it mxq.quantize -> mxq.pack (lowered bit-exactly)."""
    from mxc.numerics import quantize, row_bytes

    return row_bytes(quantize(x, spec, axis=-1)).view(torch.int8)


@kv_store_op.register_fake
def _(x, spec):
    from mxc.numerics import FormatSpec, row_nbytes

    return x.new_empty((*x.shape[:-1], row_nbytes(FormatSpec.parse(spec).format, x.shape[-1])), dtype=torch.int8)


@torch.library.custom_op("mxc::kv_load", mutates_args=())
def kv_load_op(rows: torch.Tensor, spec: str, dim: int) -> torch.Tensor:
    """The KV cache's bytes, int8 [..., row_nbytes] -> the values [..., dim] float32 (`from_row_bytes`, then
    dequantize: each row with its own tensor scale). convert-torch-to-mxq: mxq.unpack -> mxq.dequantize."""
    from mxc.numerics import from_row_bytes

    return from_row_bytes(rows, spec, dim).dequantize()


@kv_load_op.register_fake
def _(rows, spec, dim):
    return rows.new_empty((*rows.shape[:-1], dim), dtype=torch.float32)


class GenerateError(MxcError):
    """A model or prompt that --generate / `mxc generate` cannot take; the message names the fix."""


class _PassedLayer:
    """One layer's K/V cache slot for a transformers model: `update` writes the new keys/values at the
    given positions out of place, so the exported graph has no mutation."""

    is_sliding = False
    is_compileable = True
    is_initialized = True

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, positions: torch.Tensor, kv_cache: str = "",
                 prefill: bool = False):
        self.keys, self.values, self.positions, self.kv_cache = keys, values, positions, kv_cache
        self.prefill = prefill
        self.max_cache_len = keys.shape[2]
        self.updated = False

    def update(self, key_states, value_states, *args, **kwargs):
        self.updated = True
        self.keys = self._write(self.keys, key_states)
        self.values = self._write(self.values, value_states)
        return self._read(self.keys, key_states), self._read(self.values, value_states)

    def _read(self, cache: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """What attention reads: the cache itself, or (a KV-cache format) its codes decoded to `like`'s dtype."""
        if not self.kv_cache:
            return cache
        return torch.ops.mxc.kv_load(cache, self.kv_cache, like.shape[-1]).to(like.dtype)

    def _write(self, cache: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        """`cache` with `new` [1, heads, T, dim] at `positions` along dim 2: the first T (prefill: all S when
        padded, else the prompt's, zero-padded to S) or one position (decode) by a select, not a scatter
        (IREE's CPU backend cannot compile the scatter that index_copy becomes). A KV-cache format: `new`
        quantized along the head dimension (one quantize per write: an NV format's tensor scale is over the
        prompt's keys at prefill, the token's at decode) and written as its rows of bytes."""
        if self.kv_cache:
            new = torch.ops.mxc.kv_store(new.to(torch.float32), self.kv_cache)
        new = new.to(cache.dtype)
        if self.prefill:  # (the cache prefill starts from is zeros)
            t = new.shape[2]
            if isinstance(t, int) and t == cache.shape[2]:  # padded to S: the whole cache (no zero-width pad)
                return new
            return torch.nn.functional.pad(new, (0, 0, 0, cache.shape[2] - t))
        if new.shape[2] != 1:
            raise GenerateError(f"a KV cache update of {new.shape[2]} positions: only prefill (all) and decode "
                                "(one) are supported")
        hit = torch.arange(cache.shape[2], device=cache.device)[:, None] == self.positions  # [S, 1]
        return torch.where(hit, new, cache)

    def get_seq_length(self):
        return self.max_cache_len

    def get_max_length(self):
        return self.max_cache_len

    def get_mask_sizes(self, *args, **kwargs):
        return self.max_cache_len, 0


def _passed_cache(keys: torch.Tensor, values: torch.Tensor, positions: torch.Tensor, kv_cache: str = "",
                  prefill: bool = False):
    from transformers.cache_utils import Cache

    layers = [_PassedLayer(keys[i], values[i], positions, kv_cache, prefill) for i in range(keys.shape[0])]
    return Cache(layers=layers)


def cache_shape(config, max_seq_len: int) -> tuple[int, ...]:
    """[layers, 1, kv heads, max_seq_len, head dim] of a transformers config."""
    heads = config.num_attention_heads
    kv = getattr(config, "num_key_value_heads", None) or heads
    dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return (config.num_hidden_layers, 1, kv, max_seq_len, dim)


def cache_layout(lm: torch.nn.Module, max_seq_len: int, kv_cache: str = "") -> tuple[tuple[int, ...], torch.dtype]:
    """(shape, dtype) of each of K and V as the programs hold them: `cache_shape` in the model's dtype, or (a
    KV-cache format) each head's vector at each position as `mxc.numerics.row_bytes` of the format, int8."""
    shape = cache_shape(lm.config, max_seq_len)
    if not kv_cache:
        return shape, lm.get_input_embeddings().weight.dtype
    from mxc.numerics import FormatSpec, row_nbytes

    return (*shape[:-1], row_nbytes(FormatSpec.parse(kv_cache).format, shape[-1])), torch.int8


def _cache_kwarg(lm) -> str:
    params = inspect.signature(lm.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


ARGMAX_CHUNK = 512  # the first stage's rows of the greedy token's reductions


def greedy_index(logits: torch.Tensor) -> torch.Tensor:
    """The index of the first of the largest logits, [B, V] -> [B, 1] float32 (exact below 2^24), as torch's argmax;
    NaN logits match nothing (index V). In two stages of reductions (IREE's CUDA codegen runs a 128256-wide one as
    one workgroup's loop, and cannot distribute reductions that track an index (aten.argmax) nor int64 ones): per
    row of ARGMAX_CHUNK logits its largest and the first index holding it, then over the rows the largest and the
    least index of the rows holding it (rows in index order, so the first of the maxima). The logits padded with
    -inf, which no row's first index can land on (each row starts with real logits)."""
    b, v = logits.shape
    rows = -(-v // ARGMAX_CHUNK)
    x = torch.nn.functional.pad(logits, (0, rows * ARGMAX_CHUNK - v), value=float("-inf")) if rows * ARGMAX_CHUNK != v \
        else logits
    x = x.reshape(b, rows, ARGMAX_CHUNK)
    row_max = x.amax(-1, keepdim=True)
    index = torch.arange(rows * ARGMAX_CHUNK, device=logits.device, dtype=torch.float32).reshape(rows, ARGMAX_CHUNK)
    row_first = torch.where(x == row_max, index, float(v)).amin(-1)
    row_max = row_max.squeeze(-1)
    best = row_max.amax(-1, keepdim=True)
    return torch.where(row_max == best, row_first, float(v)).amin(-1, keepdim=True)


class _Step(torch.nn.Module):
    def __init__(self, lm: torch.nn.Module, max_seq_len: int, kv_cache: str = ""):
        super().__init__()
        self.lm, self.max_seq_len, self.kv_cache = lm, max_seq_len, kv_cache
        self._kw = _cache_kwarg(lm)

    def _run(self, ids, positions, keys, values, keep, prefill=False):
        mask = (torch.arange(self.max_seq_len, device=ids.device)[None, :] <= positions[:, None])[None, None]
        cache = _passed_cache(keys, values, positions, self.kv_cache, prefill)
        out = self.lm(input_ids=ids, attention_mask=mask, position_ids=positions[None], use_cache=True,
                      logits_to_keep=keep, **{self._kw: cache})
        if not all(layer.updated for layer in cache.layers):
            raise GenerateError(f"{type(self.lm).__name__} did not write its KV cache through the transformers Cache "
                                "object it was given, so it cannot be compiled with a cache: --generate takes "
                                "families that do (Llama, Qwen2/3, Mistral, Phi-3, GPT-2, ...); compile it "
                                "without --generate")
        k = torch.stack([layer.keys for layer in cache.layers])
        v = torch.stack([layer.values for layer in cache.layers])
        return out.logits[:, -1], k, v

    def _next(self, logits, position, history):
        """The greedy token after `position` ([1, 1], the first of equal maxima, as torch's argmax), its
        position, and `history` [1, S+1] with it written there (a select, as the cache's writes)."""
        # (greedy_index: two stages of reductions; one over the whole vocabulary took 80 + 46 µs a step on the H200)
        token = greedy_index(logits).clamp(max=logits.shape[-1] - 1).to(torch.long)  # (NaN logits: the last id)
        at = position + 1
        hit = torch.arange(self.max_seq_len + 1, device=logits.device)[None, :] == at[:, None]
        return token, at, torch.where(hit, token, history)


class Prefill(_Step):
    """prompt ids [1, T] (T = S padded, or the prompt's length), length [1] -> logits of position length-1
    [1, vocab], K, V, the greedy next token [1, 1], its position [1] (= length) and the history [1, S+1]
    holding it there. `dynamic_shapes`: torch.export's, when T is dynamic (1..S-1)."""

    def __init__(self, lm: torch.nn.Module, max_seq_len: int, kv_cache: str = "", dynamic: bool = False):
        super().__init__(lm, max_seq_len, kv_cache)
        # a prompt leaves room for one new token (generate_ids), so 1..S-1: torch.export needs the bound
        self.dynamic_shapes = ({1: torch.export.Dim("prompt", min=1, max=max_seq_len - 1)}, None) if dynamic else None

    def forward(self, ids, length):
        shape, dtype = cache_layout(self.lm, self.max_seq_len, self.kv_cache)
        zeros = torch.zeros(shape, dtype=dtype, device=ids.device)
        positions = torch.arange(ids.shape[1], device=ids.device)
        logits, k, v = self._run(ids, positions, zeros, zeros, length - 1, prefill=True)
        history = torch.zeros(1, self.max_seq_len + 1, dtype=torch.long, device=ids.device)
        return (logits, k, v, *self._next(logits, length - 1, history))


class Decode(_Step):
    """token [1, 1], position [1], K, V, history [1, S+1] -> logits [1, vocab], K, V with the token's keys/values
    written, the greedy next token [1, 1], its position [1] (position + 1), history with it there."""

    def forward(self, token, position, keys, values, history):
        logits, k, v = self._run(token, position, keys, values, 1)
        return (logits, k, v, *self._next(logits, position, history))


def causal_lm(model: torch.nn.Module, where: str = "model.py") -> torch.nn.Module:
    """The transformers causal LM in get_model()'s result: the model itself, or the one submodule that is
    one (a wrapper such as `Logits(lm)` that returns only the logits)."""
    from transformers import GenerationMixin, PreTrainedModel

    def is_lm(m):
        return isinstance(m, PreTrainedModel) and isinstance(m, GenerationMixin)

    if is_lm(model):
        return model
    found = [m for m in model.modules() if is_lm(m)]
    outer = [m for m in found if not any(m is not o and any(c is m for c in o.modules()) for o in found)]
    if len(outer) != 1:
        what = "none" if not outer else f"{len(outer)} ({', '.join(type(m).__name__ for m in outer)})"
        raise GenerateError(f"--generate needs a transformers causal LM (AutoModelForCausalLM) from {where}'s "
                            f"get_model(), found {what} in {type(model).__name__}: return the causal LM, or a "
                            "module holding exactly one")
    return outer[0]


def programs(lm: torch.nn.Module, max_seq_len: int, kv_cache: str = "",
             dynamic_prefill: bool = False) -> dict[str, tuple[torch.nn.Module, tuple]]:
    """{entry point: (module, example inputs)} of --generate: `prefill` and `decode` over `lm`; `kv_cache`: the
    format spec the cache's values are quantized to (--kv-cache; "" keeps the model's dtype);
    `dynamic_prefill`: prefill takes the prompt at its length (a dynamic dimension, 1..S-1; its example has
    max(2, S // 2) tokens, torch.export fixing a size of 1) instead of padded to S."""
    limit = getattr(lm.config, "max_position_embeddings", None)
    if limit and max_seq_len > limit:
        raise GenerateError(f"--max-seq-len {max_seq_len} is longer than the model's {limit} positions "
                            f"(config.max_position_embeddings): use --max-seq-len {limit} or less")
    vocab = vocab_size(lm)
    if vocab > 2**24:
        raise GenerateError(f"a vocabulary of {vocab} tokens: the programs' greedy choice indexes it in float32, "
                            "exact up to 2^24 tokens")
    shape, dtype = cache_layout(lm, max_seq_len, kv_cache)
    cache = torch.zeros(shape, dtype=dtype)
    ids = torch.zeros(1, max_seq_len, dtype=torch.long)
    history = torch.zeros(1, max_seq_len + 1, dtype=torch.long)
    if dynamic_prefill and max_seq_len < 3:
        raise GenerateError(f"--max-seq-len {max_seq_len}: a prefill at the prompt's length needs 3 or more")
    example = (ids[:, :max(2, max_seq_len // 2)], torch.tensor([max(2, max_seq_len // 2)])) if dynamic_prefill \
        else (ids, torch.tensor([1]))
    return {"prefill": (Prefill(lm, max_seq_len, kv_cache, dynamic_prefill), example),
            "decode": (Decode(lm, max_seq_len, kv_cache),
                       (ids[:, :1], torch.tensor([1]), cache, cache.clone(), history))}


def vocab_size(lm: torch.nn.Module) -> int:
    """The logits' width: the output embedding's rows, or the config's vocab_size."""
    out = lm.get_output_embeddings()
    return out.weight.shape[0] if out is not None else lm.config.vocab_size


def cache_format(manifest: dict | None) -> str:
    """The --kv-cache format spec a manifest records ("" for the model's dtype, or no manifest)."""
    kv = (manifest or {}).get("generate", {}).get("kv_cache", "none")
    return "" if kv == "none" else kv


def dynamic_prefill(manifest: dict | None) -> bool:
    """Whether a manifest's prefill takes the prompt at its length (else padded to max_seq_len)."""
    return bool((manifest or {}).get("generate", {}).get("dynamic_prefill", False))


def record(lm: torch.nn.Module, max_seq_len: int, kv_cache: str = "", dynamic: bool = False) -> dict:
    """The manifest's "generate" object: what `mxc generate` needs besides the program."""
    config = lm.config
    eos = getattr(getattr(lm, "generation_config", None), "eos_token_id", None) or config.eos_token_id
    shape, dtype = cache_layout(lm, max_seq_len, kv_cache)
    return {"max_seq_len": max_seq_len, "entry_points": list(ENTRY_POINTS),
            "cache_shape": list(shape), "cache_dtype": str(dtype).removeprefix("torch."),
            "head_dim": cache_shape(config, max_seq_len)[-1],
            "cache_bytes": 2 * math.prod(shape) * dtype.itemsize,
            "vocab_size": vocab_size(lm),
            "eos_token_id": eos if isinstance(eos, list) else [eos] if eos is not None else [],
            "model_type": getattr(config, "model_type", type(lm).__name__), "tokenizer": TOKENIZER_DIR,
            "kv_cache": kv_cache or "none", "dynamic_prefill": dynamic}


TOKENIZER_DIR = "tokenizer"  # in the artifact: model.py's get_tokenizer(), saved with save_pretrained


@dataclass
class Sampling:
    """Greedy (temperature 0) by default; otherwise softmax(logits / temperature) over the top_k (0: all),
    drawn with a generator seeded by `seed`."""

    temperature: float = 0.0
    top_k: int = 0
    seed: int = 0

    def __post_init__(self):
        if self.temperature < 0 or self.top_k < 0:
            raise GenerateError(f"--temperature and --top-k must be >= 0, got {self.temperature} and {self.top_k}")
        self._gen = torch.Generator().manual_seed(self.seed)

    def __call__(self, logits: torch.Tensor) -> int:
        logits = logits.reshape(-1).to(torch.float32)
        if self.temperature == 0:
            return int(logits.argmax())
        if self.top_k:
            kth = torch.topk(logits, min(self.top_k, logits.numel())).values[-1]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = torch.softmax(logits / self.temperature, dim=-1)
        return int(torch.multinomial(probs, 1, generator=self._gen))


@dataclass
class Generated:
    """What one generation produced, and how fast."""

    tokens: list[int]
    prompt_tokens: int
    prefill_ms: float
    decode_s: float
    stopped: str  # "max_new_tokens", "eos" or "max_seq_len"
    text: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def decode_tokens_per_s(self) -> float:
        steps = max(len(self.tokens) - 1, 0)  # the first token comes from prefill
        return steps / self.decode_s if self.decode_s > 0 else float("nan")

    def to_dict(self) -> dict:
        return {"text": self.text, "tokens": self.tokens, "prompt_tokens": self.prompt_tokens,
                "prefill_ms": round(self.prefill_ms, 3), "decode_tokens_per_s": round(self.decode_tokens_per_s, 3),
                "stopped": self.stopped, **self.extra}


READ_EVERY = 16  # greedy decode steps between two reads of the device's token history


def generate_ids(prefill, decode, prompt: list[int], max_new_tokens: int, max_seq_len: int,
                 eos: list[int] = (), sampling: Sampling | None = None, to_host=lambda t: t,
                 read_every: int = READ_EVERY, dynamic: bool = False) -> Generated:
    """The generation loop over the two step functions (compiled or torch; see the module docstring).

    `to_host` turns a step's output into a torch tensor (the runtime's arrays stay on the device
    otherwise). Greedy: the steps' own tokens go straight back in and the history is read every
    `read_every` steps, so up to `read_every - 1` steps past an end-of-sequence token are computed and
    dropped. Sampling: the logits are read and a token sent every step. Stops after `max_new_tokens`, at
    an `eos` token, or when the cache is full. `dynamic`: prefill takes the prompt at its length (else
    padded to max_seq_len)."""
    sampling = sampling or Sampling()
    n = len(prompt)
    if n == 0:
        raise GenerateError("the prompt is empty: give at least one token")
    if n >= max_seq_len:
        raise GenerateError(f"the prompt is {n} tokens, the artifact's KV cache holds {max_seq_len} "
                            f"(--max-seq-len): shorten the prompt or recompile with --max-seq-len {n + max_new_tokens}")
    ids = torch.zeros(1, n if dynamic else max_seq_len, dtype=torch.long)
    ids[0, :n] = torch.tensor(prompt, dtype=torch.long)
    # token i (0: prefill's) is written at cache position n + i - 1 by the step that makes token i + 1, so
    # at most max_seq_len - n + 1 tokens
    limit = min(max_new_tokens, max_seq_len - n + 1)
    t0 = time.perf_counter()
    logits, k, v, token, position, history = prefill(ids, torch.tensor([n]))
    greedy = sampling.temperature == 0
    tokens = [int(to_host(token).reshape(-1)[0]) if greedy else sampling(to_host(logits))]
    t1 = time.perf_counter()
    while tokens[-1] not in eos and len(tokens) < limit:
        if greedy:
            run = min(read_every, limit - len(tokens))
            for _ in range(run):
                logits, k, v, token, position, history = decode(token, position, k, v, history)
            got = to_host(history).reshape(-1)[n + len(tokens):n + len(tokens) + run].tolist()
            for t in got:
                tokens.append(int(t))
                if t in eos:
                    break
        else:
            pos = torch.tensor([n + len(tokens) - 1])  # where the last token goes
            logits, k, v, _, _, history = decode(torch.tensor([[tokens[-1]]]), pos, k, v, history)
            tokens.append(sampling(to_host(logits)))
    t2 = time.perf_counter()
    stopped = ("eos" if tokens[-1] in eos else "max_new_tokens" if len(tokens) >= max_new_tokens
               else "max_seq_len")
    return Generated(tokens, n, (t1 - t0) * 1e3, t2 - t1, stopped)


def entry_manifest(manifest: dict, entry: str) -> dict:
    """The manifest as if `entry` were the whole model: its layers only, named by module path (as the fake-quant
    reference's graph of that entry point names them)."""
    from mxc.layers import split_layer

    rows = [dict(r, layer=split_layer(r["layer"])[1]) for r in manifest["layers"]
            if split_layer(r["layer"])[0] == entry]
    return {**manifest, "layers": rows}


def torch_steps(lm: torch.nn.Module, max_seq_len: int, manifest: dict | None = None, stored: dict | None = None):
    """(prefill, decode) in torch: the model as it is (manifest None), or the fake-quant reference of an
    artifact's layers (mxc.runtime.reference) when the manifest is given; `stored`: layer -> the decoded codes
    of its layers whose codes are not the model's weight's (mxc.runtime.reference.calibrated_weights)."""
    from mxc.layers import split_layer

    steps = []
    for entry, (module, inputs) in programs(lm, max_seq_len, cache_format(manifest), dynamic_prefill(manifest)).items():
        if manifest is not None:
            from mxc.runtime.reference import fake_quant_module

            mine = {split_layer(k)[1]: v for k, v in (stored or {}).items() if split_layer(k)[0] == entry}
            module = fake_quant_module(module, inputs, entry_manifest(manifest, entry), stored=mine)

        def step(*args, _m=module):
            with torch.no_grad():
                return tuple(_m(*args))
        steps.append(step)
    return tuple(steps)

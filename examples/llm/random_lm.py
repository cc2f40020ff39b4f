"""A causal LM with seeded random weights, for `mxc compile --generate` without a download.

$RANDOM_LM_FAMILY picks the transformers family (llama, qwen2, qwen3, mistral, phi3, gpt2; default
llama) and $RANDOM_LM_SIZE its size: `tiny` (the default: 2 layers, hidden 64, for tests) or `1b`
(Llama-3.2-1B's shapes: 16 layers, hidden 2048, 32 query / 8 KV heads, MLP 8192, vocabulary 128256,
tied embeddings; for the decode-speed benchmark). The tokenizer is byte-level (one token per byte of
UTF-8, plus <eos>), built in code, so nothing is fetched; random weights make the text meaningless,
but every token is deterministic, which is what the equality checks need.

    RANDOM_LM_SIZE=tiny mxc compile examples/llm/random_lm.py --generate --format nvfp4 --weights-only -o /tmp/g
    mxc generate /tmp/g --prompt "Hello"
"""

import os
import zlib

import torch

FAMILY = os.environ.get("RANDOM_LM_FAMILY", "llama")
SIZE = os.environ.get("RANDOM_LM_SIZE", "tiny")
BYTES = 256  # token ids 0..255 are the bytes; 256 is <eos>

SIZES = {
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=BYTES + 64, max_position_embeddings=512,
                 initializer_range=0.25),  # large enough that the greedy tokens vary
    "1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
               num_key_value_heads=8, vocab_size=128256, max_position_embeddings=8192),
}


def config():
    from transformers import AutoConfig

    if SIZE not in SIZES:
        raise ValueError(f"RANDOM_LM_SIZE={SIZE}: choose from {', '.join(SIZES)}")
    c = dict(SIZES[SIZE])
    if FAMILY == "gpt2":  # GPT-2 spells its sizes its own way and has no grouped KV heads
        c = dict(n_embd=c["hidden_size"], n_inner=c["intermediate_size"], n_layer=c["num_hidden_layers"],
                 n_head=c["num_attention_heads"], vocab_size=c["vocab_size"], n_positions=c["max_position_embeddings"],
                 **{k: v for k, v in c.items() if k == "initializer_range"})
    else:
        c["tie_word_embeddings"] = True
        if FAMILY == "qwen3":
            c["head_dim"] = c["hidden_size"] // c["num_attention_heads"]
    return AutoConfig.for_model(FAMILY, **c, eos_token_id=BYTES, bos_token_id=BYTES, pad_token_id=BYTES)


def get_model():
    """The weights come from here, not from transformers' initialisation (which changes between versions):
    each matrix N(0, initializer_range) from a generator seeded by its name, norms 1, biases 0, so the same
    torch gives the same model on any machine (what `mxc write-weights` on a GPU host relies on)."""
    import contextlib

    from transformers import AutoModelForCausalLM

    try:  # skip transformers' own initialisation (every weight is set below)
        from transformers.initialization import no_init_weights
    except ImportError:
        no_init_weights = contextlib.nullcontext
    c = config()
    with no_init_weights():
        lm = AutoModelForCausalLM.from_config(c, dtype=torch.float32, attn_implementation="sdpa")
    with torch.no_grad():
        for name, p in lm.named_parameters():
            if p.dim() >= 2:
                g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
                p.copy_(torch.randn(p.shape, generator=g) * c.initializer_range)
            else:
                p.fill_(1.0 if name.endswith("weight") else 0.0)  # norm scales, biases
    lm.tie_weights()
    lm.config.use_cache = False  # a plain compile returns the logits (--generate passes its own cache)
    return lm.eval()


def get_tokenizer():
    """Byte-level: each UTF-8 byte one token (ids 0..255), <eos> 256."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()  # the 256 byte characters, in byte order
    vocab = {ch: b for b, ch in enumerate(sorted(alphabet, key=lambda ch: _byte_of(ch)))}
    vocab["<eos>"] = BYTES
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>")


def _byte_of(ch: str) -> int:
    """The byte a ByteLevel alphabet character stands for (GPT-2's bytes_to_unicode, inverted)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in printable]
    return ord(ch) if ord(ch) in printable else extra[ord(ch) - 256]


def get_example_inputs():
    return (torch.tensor([list(b"The quick brown fox jumps over the lazy dog.")]),)

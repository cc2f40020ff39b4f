"""A small Llama-style decoder (transformers LlamaConfig, random weights, GQA, rotary).

LLAMA_TOKENS=N (environment) sets the example input's token count (default 64); e.g. 16 for
decode-sized GEMMs (M <= 16), the shapes where a GPU's quantized kernels are faster than its
high-precision ones.
"""

import os

import torch
from transformers import LlamaConfig, LlamaForCausalLM

CONFIG = dict(
    vocab_size=1024,
    hidden_size=256,
    intermediate_size=704,
    num_hidden_layers=4,
    num_attention_heads=8,
    num_key_value_heads=2,
    max_position_embeddings=256,
)
TOKENS = int(os.environ.get("LLAMA_TOKENS", "64"))


class Decoder(torch.nn.Module):
    """Logits of a causal LM for a batch of token ids (no KV cache)."""

    def __init__(self, **overrides):
        super().__init__()
        config = LlamaConfig(**{**CONFIG, **overrides})
        config._attn_implementation = "sdpa"
        self.lm = LlamaForCausalLM(config)

    def forward(self, input_ids):
        return self.lm(input_ids=input_ids, use_cache=False).logits


def get_model():
    torch.manual_seed(0)
    return Decoder()


def get_example_inputs():
    torch.manual_seed(1)
    return (torch.randint(0, CONFIG["vocab_size"], (1, TOKENS)),)

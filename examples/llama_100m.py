"""The Llama-style decoder at ~110M parameters (for the compile-time / memory benchmark); LLAMA_TOKENS
as in llama.py."""

import torch

from llama import CONFIG, TOKENS, Decoder

SIZE = dict(vocab_size=32000, hidden_size=768, intermediate_size=2048, num_hidden_layers=10,
            num_attention_heads=12, num_key_value_heads=4)


def get_model():
    torch.manual_seed(0)
    return Decoder(**SIZE)


def get_example_inputs():
    torch.manual_seed(1)
    return (torch.randint(0, SIZE["vocab_size"], (1, TOKENS)),)


assert CONFIG  # the base config this one overrides

"""The MLP example (`mlp.py`) in bfloat16: bf16 weights, bf16 inputs, bf16 compute.

Most checkpoints are bf16 or fp16. mxc quantizes their matmuls like float32
ones (codes and scales from the weights' exact float32 extension) and keeps the
rest of the model in bf16.
"""

import torch

from mlp import MLP


def get_model():
    torch.manual_seed(0)
    return MLP().to(torch.bfloat16)


def get_example_inputs():
    torch.manual_seed(1)
    return (torch.randn(8, 256).to(torch.bfloat16),)

"""A small MLP over [batch, tokens, features] whose batch and token counts vary: `get_dynamic_shapes()`.

The artifact takes any batch of 1-8 and 1-512 tokens (`mxc run OUT --inputs x.pt`); the weights and the
feature sizes are fixed. torch.export's `Dim` gives each varying size a name and a range.
"""

import torch


class MLP(torch.nn.Module):
    def __init__(self, d_in=256, d_hidden=512, d_out=64):
        super().__init__()
        self.norm = torch.nn.LayerNorm(d_in)
        self.up = torch.nn.Linear(d_in, d_hidden)
        self.down = torch.nn.Linear(d_hidden, d_out, bias=False)

    def forward(self, x):
        return self.down(torch.nn.functional.gelu(self.up(self.norm(x))))


def get_model():
    torch.manual_seed(0)
    return MLP()


def get_example_inputs():
    torch.manual_seed(1)
    return (torch.randn(2, 16, 256),)


def get_dynamic_shapes():
    """torch.export's dynamic_shapes for get_example_inputs(): input 0's dims 0 and 1 vary."""
    return ({0: torch.export.Dim("batch", min=1, max=8), 1: torch.export.Dim("tokens", min=1, max=512)},)

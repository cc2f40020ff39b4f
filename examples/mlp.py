"""A small MLP: three linear layers with GELU and ReLU."""

import torch


class MLP(torch.nn.Module):
    def __init__(self, d_in=256, d_hidden=512, d_out=64):
        super().__init__()
        self.fc1 = torch.nn.Linear(d_in, d_hidden)
        self.fc2 = torch.nn.Linear(d_hidden, d_hidden)
        self.head = torch.nn.Linear(d_hidden, d_out, bias=False)

    def forward(self, x):
        x = torch.nn.functional.gelu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.head(x)


def get_model():
    torch.manual_seed(0)
    return MLP()


def get_example_inputs():
    torch.manual_seed(1)
    return (torch.randn(8, 256),)

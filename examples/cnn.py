"""A small CNN: two convolutions (quantized as GEMMs over C_in*kh*kw) and a linear classifier head."""

import torch


class CNN(torch.nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(16, 32, 3, padding=1, stride=2)
        self.fc = torch.nn.Linear(32 * 8 * 8, 128)
        self.head = torch.nn.Linear(128, classes)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        x = torch.nn.functional.max_pool2d(x, 2)
        x = torch.relu(self.fc(x.flatten(1)))
        return self.head(x)


def get_model():
    torch.manual_seed(0)
    return CNN()


def get_example_inputs():
    torch.manual_seed(1)
    return (torch.randn(4, 3, 32, 32),)

# RUN: %PYTHON %s | filecheck %s
# The frontend keeps module paths as NameLocs, weights out of line as mxq.param,
# and imports models with non-persistent buffers (transformers' rotary inv_freq).

import torch
from torch_mlir import ir

from mxc.compiler import frontend, importer
from mxc.compiler.context import make_context
from mxc.weights import WeightStore


def run(name, model, inputs):
    print(f"TEST: {name}")
    ctx, weights = make_context(), WeightStore()
    with ctx, ir.Location.unknown():
        module = importer.import_program(frontend.export(model, inputs), ctx, weights)
        print(module.operation.get_asm(enable_debug_info=True))
    print("WEIGHTS:", sorted(weights.tensors))


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.down_proj = torch.nn.Linear(32, 8)
        self.register_buffer("inv_freq", torch.arange(4.0), persistent=False)

    def forward(self, x):
        return self.down_proj(x) + self.inv_freq.sum()


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = torch.nn.ModuleList([Block(), Block()])

    def forward(self, x):
        return self.layers[1](x) + self.layers[0](x)


# CHECK-LABEL: TEST: nested_modules
# CHECK: "mxq.param"() {name = "layers.1.down_proj.weight"} : () -> tensor<8x32xf32>
# CHECK: torch.aten.linear {{.*}} loc(#[[L1:loc[0-9]+]])
# CHECK: "mxq.param"() {name = "layers.1.inv_freq"} : () -> tensor<4xf32>
# CHECK: #[[L1]] = loc("layers.1.down_proj"
# CHECK: WEIGHTS: ['layers.0.down_proj.bias', 'layers.0.down_proj.weight', 'layers.0.inv_freq', 'layers.1.down_proj.bias', 'layers.1.down_proj.weight', 'layers.1.inv_freq']
run("nested_modules", Model().eval(), (torch.randn(2, 32),))

"""Layer names: the module path of an fx node, made unique per matmul.

The frontend writes these names into every op's location, convert-torch-to-mxq
gives them to `mxq.matmul {layer}`, and the fake-quant reference matches its
graph's nodes to the manifest's layers with them. One definition for all three,
needing only torch.
"""

from __future__ import annotations

import torch


def module_path(node: torch.fx.Node) -> str:
    """The innermost module path of an fx node ('' at the top level)."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path, _ = list(stack.values())[-1]
    # torch.export spells paths like "L['self'].layers[3].mlp" or "layers.3.mlp"
    for old, new in (("L['self'].", ""), ("L['self']", ""), ("['", "."), ("']", ""), ("[", "."), ("]", "")):
        path = path.replace(old, new)
    return path.strip(".")


def unique_layer_names(names: list[str]) -> list[str]:
    """'attn', 'attn', 'mlp' -> 'attn', 'attn#2', 'mlp': a second matmul in a module gets '#k'."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}#{seen[n]}")
    return out


# A module with several entry points (--generate's prefill and decode) names its layers
# '<entry point>:<module path>' (the importer); policies match the module path.
ENTRY_SEP = ":"
LM_PATH = "lm."  # --generate's entry points hold the causal LM as `.lm`: their layers' module paths start so


def split_layer(layer: str) -> tuple[str, str]:
    """'decode:lm.model.layers.0.mlp.up_proj' -> ('decode', 'lm.model.layers.0.mlp.up_proj'); ('', layer)
    for a layer of a one-function module."""
    entry, sep, path = layer.partition(ENTRY_SEP)
    return (entry, path) if sep and entry.isidentifier() else ("", layer)


def lm_path(layer: str) -> str:
    """A layer as the causal LM names it: 'decode:lm.model.layers.0.mlp.up_proj' -> 'model.layers.0.mlp.up_proj'
    (a layer of a one-function module: unchanged)."""
    entry, path = split_layer(layer)
    return path.removeprefix(LM_PATH) if entry else layer

"""Hashes that tie an artifact to what it was built from.

* `weights_fingerprint(model)`: sha256 over every parameter and buffer's name,
  dtype, shape and bytes, sorted by name. The manifest records it at compile
  time; `mxc run --compare` rebuilds the model with `get_model()` and refuses to
  compare when the fingerprint differs (model.py edited, or an unseeded init),
  because the reference would then be another model's and the numbers nonsense.
* `file_sha256(path)`: the manifest's `files` map, so that `mxc run` refuses a
  directory whose files come from different compiles.

Needs only torch and hashlib (the GPU machine runs artifacts without the compiler).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch


def weights_fingerprint(model: torch.nn.Module) -> str:
    """sha256 hex digest of the model's parameters and buffers (non-persistent ones included)."""
    tensors = dict(model.named_buffers())
    tensors.update(model.named_parameters())
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}\0{str(t.dtype).removeprefix('torch.')}\0{list(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 hex digest of a file, read in 16 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()

"""mxc: a quantizing compiler for block-scaled number formats (MX, NVFP4, ...).

Python API beside the CLI:

    import mxc
    result = mxc.compile("model.py", "out/", mxc.Options(format="nvfp4"), keep_ir=True)
    result.ir["fuse"]            # the IR after each phase
    model = mxc.load("out/")     # run it: model(*model.example_inputs())
"""

import os as _os
import sys as _sys

__version__ = "0.1.0"

# A checkout's top-level directories (kernels/, runtime/, tools/, ...) are mxc's subpackages (mxc.kernels,
# ...), installed under mxc. With the checkout's root on sys.path (`python -m ...` or `python -c` run from
# it) they would also be importable as top-level packages and shadow installed ones: transformers imports
# the `kernels` package (Hugging Face's hub kernels) where it is installed. mxc never imports them so.
_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if _os.path.isdir(_os.path.join(_root, "kernels")):
    _sys.path[:] = [p for p in _sys.path if _os.path.abspath(p or _os.curdir) != _root]


def compile(model_path, out_dir, options=None, **kwargs):
    """Compile a model.py (see mxc.compiler.driver.compile_file)."""
    from mxc.compiler.driver import compile_file
    from mxc.options import Options

    return compile_file(model_path, out_dir, options or Options(), **kwargs)


def load(path, device: str = "cpu"):
    """Load an artifact directory for running (see mxc.runtime.artifact.load)."""
    from mxc.runtime.artifact import load as _load

    return _load(path, device)


def __getattr__(name):
    if name == "Options":  # lazily: mxc.options imports the numerics (torch)
        from mxc.options import Options

        return Options
    raise AttributeError(name)

"""mxc: a quantizing compiler for block-scaled number formats (MX, NVFP4, ...).

Python API beside the CLI:

    import mxc
    result = mxc.compile("model.py", "out/", mxc.Options(format="nvfp4"), keep_ir=True)
    result.ir["fuse"]            # the IR after each phase
    model = mxc.load("out/")     # run it: model(*model.example_inputs())
"""

__version__ = "0.1.0"


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

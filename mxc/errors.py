"""Errors mxc reports to users: each names the thing at fault and the fix."""


class MxcError(Exception):
    """Base of user-facing errors (the CLI prints the message, no traceback)."""


class ModelFileError(MxcError):
    """model.py is missing, does not import, or lacks/raises in a required function."""


class ExportError(MxcError):
    """torch.export or the torch-mlir import failed."""


class PipelineError(MxcError):
    """A compiler phase failed; the message says where a reproducer was written."""


class ArtifactError(MxcError):
    """An artifact directory is missing, incomplete or corrupt."""


class InputError(MxcError, ValueError):
    """Inputs that do not match what an artifact was compiled for (count, dtype, shape, a dynamic size's range)."""


class MxcWarning(UserWarning):
    """Something the user should fix but the compilation survives (e.g. NaN in weights)."""

"""Every error the package raises on purpose, under one base class.

An :class:`MhcMupError` means bad input or a file that cannot be used, never a bug: its message is one
line that names the bad value (the width, the rule, the file, the tensor). The command line catches the
base class once and prints that line with exit code 2. Each class also derives from the built-in error a
caller would expect (``ValueError`` for a bad value, ``ImportError`` for a missing package), so
``except ValueError`` keeps working.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "CorpusError",
    "ExpressionError",
    "FolderBusyError",
    "KernelUnavailableError",
    "MhcMupError",
    "MissingExtraError",
    "ModelConfigError",
    "ParameterizationError",
    "ResourceError",
    "ResultsError",
    "TransferError",
    "UsageError",
    "WidthParamError",
]


class MhcMupError(Exception):
    """Base of every error raised on purpose; the message is one line naming the bad value."""


class UsageError(MhcMupError):
    """Bad command-line input."""


class ConfigError(MhcMupError, ValueError):
    """A configuration that cannot be run (a sweep's, a coordinate check's); the message names the bad value."""


class ResourceError(ConfigError):
    """Work that cannot fit on this machine (memory), refused before anything is allocated."""


class TransferError(ConfigError):
    """A transfer sweep that cannot run (bad settings, an output folder made by another sweep)."""


class FolderBusyError(MhcMupError):
    """An output folder that another process is writing."""


class ExpressionError(MhcMupError, ValueError):
    """An expression that cannot be parsed or evaluated; the message quotes it."""


class ParameterizationError(MhcMupError, ValueError):
    """A parameterization that cannot be built or evaluated; the message names it, the rule and the width."""


class ModelConfigError(MhcMupError, ValueError):
    """A model configuration that cannot be built; the message names the bad value."""


class WidthParamError(MhcMupError, ValueError):
    """A width parameterization that cannot be built; the message names the bad value."""


class CorpusError(MhcMupError, ValueError):
    """A corpus that cannot be used; the message names the path and what is wrong."""


class ResultsError(MhcMupError, ValueError):
    """A results folder or file that cannot be read; the message names the file and what is wrong."""


class CheckpointError(MhcMupError, ValueError):
    """A checkpoint that cannot be inspected; the message names the file or tensor."""


class MissingExtraError(MhcMupError, ImportError):
    """An optional package is not installed; the message says what to install."""


class KernelUnavailableError(MhcMupError, RuntimeError):
    """``kernels='triton'`` was asked for where the fused kernels cannot run; the message says why."""

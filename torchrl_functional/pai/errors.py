"""Exceptions raised by the PerforatedAI adapter.

Every error names the group (and, where it applies, the network) at fault. Each class
also derives from the builtin exception a caller would naturally catch
(``ValueError`` for a bad setting or shape, ``ImportError`` when ``perforatedai`` is
missing, ``RuntimeError`` for a call made in the wrong state).
"""

from __future__ import annotations

__all__ = [
    "PAIError",
    "PAINotInstalledError",
    "PAIConfigError",
    "PAIShapeError",
    "PAIStateError",
    "PAIInterruptError",
    "PAICheckpointError",
]


class PAIError(Exception):
    """Base class of every error raised by :mod:`torchrl_functional.pai`."""


class PAINotInstalledError(PAIError, ImportError):
    """``perforatedai`` (extra ``pai``) is not installed."""


class PAIConfigError(PAIError, ValueError):
    """A group, network or PAI setting is invalid (caught before PAI sees it)."""


class PAIShapeError(PAIError, ValueError):
    """A layer with dendrites received a tensor of a rank or size PAI was not set up for.

    PAI itself would call ``sys.exit`` from the first backward pass.
    """


class PAIStateError(PAIError, RuntimeError):
    """A call was made in a state where it cannot be honoured (e.g. scoring while some
    networks are temporarily frozen, or using a group after PAI failed mid-call)."""


class PAIInterruptError(PAIError, RuntimeError):
    """PAI tried to open the debugger (``pdb.set_trace``) or to exit the process.

    Raised instead, with PAI's last printed lines. The PAI state of the group may be
    half-updated afterwards: reload a checkpoint before training on.
    """


class PAICheckpointError(PAIError, ValueError):
    """A checkpoint file is missing, truncated, corrupted or from another group."""

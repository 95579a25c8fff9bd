"""Exceptions raised for bad input to a torchrl-functional loss or kernel.

Every exception names the loss (or kernel) that rejected the input and the entry
or hyperparameter at fault. Each class also derives from the builtin exception a
caller would naturally catch (``KeyError`` for a missing entry, ``ValueError`` for
a bad shape or value, ``TypeError`` for a bad dtype), so
``except KeyError`` keeps working while ``except LossInputError`` catches them all.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "LossInputError",
    "MissingEntryError",
    "EntryShapeError",
    "EntryDtypeError",
    "EntryRequiresGradError",
    "NonFiniteEntryError",
    "HyperparameterError",
    "EmptyMaskError",
    "ZeroFilledEntryError",
    "MaskShapeError",
]


def _format_entry(entry: Any) -> str:
    if entry is None:
        return ""
    if isinstance(entry, tuple):
        return repr(tuple(entry))
    return repr(entry)


class LossInputError(Exception):
    """Base class of every input error raised by torchrl-functional.

    Attributes:
        loss: name of the loss or kernel that rejected the input (e.g. ``"clip_ppo_loss"``).
        entry: the offending TensorDict entry or hyperparameter name (``None`` if global).
    """

    def __init__(self, loss: str, entry: Any, message: str) -> None:
        self.loss = loss
        self.entry = entry
        self.message = message
        where = _format_entry(entry)
        text = f"{loss}: {where}: {message}" if where else f"{loss}: {message}"
        super().__init__(text)

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return self.args[0]

    def __reduce__(self):  # picklable across processes (DDP, pytest-xdist)
        return (type(self), (self.loss, self.entry, self.message))


class MissingEntryError(LossInputError, KeyError):
    """A required TensorDict entry is absent."""


class EntryShapeError(LossInputError, ValueError):
    """An entry has a shape that does not match the others (and could silently broadcast)."""


class EntryDtypeError(LossInputError, TypeError):
    """An entry has the wrong dtype (e.g. a float ``done`` flag, an integer log-prob)."""


class EntryRequiresGradError(LossInputError, ValueError):
    """An entry carries a gradient where the algorithm requires a constant.

    (e.g. the behaviour log-prob or the action of an on-policy loss.)
    """


class NonFiniteEntryError(LossInputError, ValueError):
    """An entry holds NaN or infinite values (raised only when finiteness checks are on)."""


class HyperparameterError(LossInputError, ValueError):
    """A hyperparameter is out of range or of an unsupported kind."""


class EmptyMaskError(LossInputError, ValueError):
    """A sequence has no token selected by the loss's mask (TorchRL's LLM classes refuse it)."""


class ZeroFilledEntryError(LossInputError, RuntimeError):
    """Teacher log-probs zero-filled off the assistant tokens but used on all tokens (as TorchRL refuses)."""


class MaskShapeError(EntryShapeError, RuntimeError):
    """A padding mask has more dimensions than the loss it masks (TorchRL raises ``RuntimeError``)."""

"""The opening every imitation loss shares: the input is a TensorDict, the reduction is known,
the keys are resolved; then float entries read by field name and a prediction checked against
the shape of its target. Every error names the loss and the entry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tensordict import TensorDictBase
from torch import Tensor

from ...errors import EntryShapeError
from .._offpolicy import check_input
from .._td import check_reduction, read_float
from ..keys import K, resolve_keys


def open_loss(loss: str, td: Any, reduction: str, keys: Any, cls: type[K]) -> K:
    """Check ``td`` and ``reduction``; the keys as a ``cls`` instance (:func:`resolve_keys`)."""
    check_input(loss, td)
    check_reduction(loss, reduction)
    return resolve_keys(keys, cls, loss)


def read_floats(loss: str, td: TensorDictBase, keys: Any, hints: Mapping[str, str], *fields: str) -> list[Tensor]:
    """The floating-point entries ``keys.<field>`` of ``td``, in order (each read by
    :func:`~torchrl_functional.functional._td.read_float`); a missing one is explained by
    ``hints[field]``."""
    return [read_float(loss, td, getattr(keys, field), hints[field]) for field in fields]


def check_same_shape(loss: str, key: Any, x: Tensor, ref_key: Any, ref: Tensor, what: str) -> None:
    """``x`` (entry ``key``) must have the shape of ``ref`` (``what``, entry ``ref_key``)."""
    if x.shape != ref.shape:
        raise EntryShapeError(loss, key, f"shape {tuple(x.shape)} differs from the shape {tuple(ref.shape)} of "
                                         f"{what} {ref_key!r}")

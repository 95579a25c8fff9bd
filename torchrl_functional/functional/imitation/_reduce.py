"""Reduction of an imitation loss under TorchRL's two kinds of mask (``LossModule._reduce_loss``):
a padding mask given by the loss (``pad_mask``: ``reduction="none"`` keeps the unpadded elements
only, as a flat tensor) and validity masks read from the input (``loss_mask_key``: the loss keeps
its shape, masked elements are 0)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ...errors import MaskShapeError
from .._td import expand_mask, reduce_loss


def padding_mask(loss: str, key: Any, pad: Tensor, value: Tensor) -> Tensor:
    """``~pad`` broadcast to ``value``'s shape; a mask with more dims than the loss is refused."""
    if pad.ndim > value.ndim:
        raise MaskShapeError(
            loss, key,
            f"the padding mask has more dimensions ({pad.ndim}) than the computed loss ({value.ndim}, shape "
            f"{tuple(value.shape)}): per-element masking requires an elementwise loss (e.g. loss_function='l1'), "
            "not a distribution-based (NLL) or cross-entropy loss",
        )
    return expand_mask(loss, ~pad, value, key)


def reduce_masked(
    loss: str,
    value: Tensor,
    reduction: str,
    *,
    valid: Tensor | None = None,
    pad_valid: Tensor | None = None,
) -> Tensor:
    """Reduce an elementwise loss under both kinds of mask, as TorchRL's ``_reduce_loss``.

    :func:`~torchrl_functional.functional._td.reduce_loss` (without its squeeze) over the valid
    elements, except that ``"none"`` with a padding mask keeps the unpadded elements only.

    Args:
        loss: name used in error messages.
        value: the loss ``[*B, ...]``.
        reduction: ``"mean"`` (over valid elements), ``"sum"`` or ``"none"``.
        valid: a validity mask read from the input, ``[*B]``/``[*B, 1]`` (broadcast).
        pad_valid: the unpadded elements, already of ``value``'s shape.

    Returns:
        A scalar, or for ``"none"`` the loss (masked elements 0), or with ``pad_valid`` the flat
        tensor of the valid elements (a data-dependent shape).
    """
    if pad_valid is None:
        return reduce_loss(loss, value, reduction, valid, squeeze=False)
    if valid is not None:
        pad_valid = pad_valid & expand_mask(loss, valid, value)
    return value[pad_valid] if reduction == "none" else reduce_loss(loss, value, reduction, pad_valid)

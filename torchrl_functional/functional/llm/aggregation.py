"""Reducing per-token losses: over tokens, over sequences, over the batch (TorchRL's rules).

Masked-out tokens are *selected away* (``where``, not multiplied), so a NaN or an infinity
there changes neither the value nor the gradient.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

__all__ = ["AGGREGATIONS", "aggregate_token_loss", "sequence_sum", "reduce_sequences"]

#: TorchRL's ``GRPOLoss(aggregation=...)`` choices.
AGGREGATIONS = ("token_mean", "prompt_mean", "none")


def aggregate_token_loss(
    value: Tensor, mask: Tensor, aggregation: Literal["token_mean", "prompt_mean", "none"] = "token_mean"
) -> Tensor:
    """Aggregate a per-token loss as TorchRL's ``GRPOLoss``.

    Args:
        value: ``[B, L, F]`` per-token loss.
        mask: bool ``[B, L]`` or ``[B, L, F]``: the tokens that count.
        aggregation: ``"token_mean"``: mean over every valid token of the batch (long
            sequences weigh more; DAPO's token-level loss); ``"prompt_mean"``: mean over the
            valid tokens of each sequence, then over sequences (GRPO's original
            sample-level loss), returned with shape ``[F]`` as TorchRL; ``"none"``: the
            per-token loss with masked tokens set to 0.

    Returns:
        ``[]`` (token_mean), ``[F]`` (prompt_mean) or ``[B, L, F]`` (none).
    """
    if mask.ndim == value.ndim - 1:
        mask = mask.unsqueeze(-1)
    mask = mask.expand_as(value)
    masked = torch.where(mask, value, torch.zeros_like(value))
    if aggregation == "none":
        return masked
    if aggregation == "prompt_mean":
        count = mask.sum(-2).to(value.dtype).clamp_min(1.0)
        return (masked.sum(-2) / count).mean(0)
    return masked.sum() / mask.sum().clamp_min(1)


def sequence_sum(value: Tensor, mask: Tensor, normalize: bool = False) -> Tensor:
    """Sum of a per-token quantity over each sequence's valid tokens, optionally divided by
    their number (at least 1).

    Args:
        value: ``[B, L]``.
        mask: bool ``[B, L]``.
        normalize: divide by the number of valid tokens of the sequence.

    Returns:
        ``[B]``.
    """
    summed = torch.where(mask, value, torch.zeros_like(value)).sum(-1)
    if normalize:
        summed = summed / mask.sum(-1).clamp(min=1)
    return summed


def reduce_sequences(value: Tensor, reduction: Literal["mean", "sum", "none"]) -> Tensor:
    """``mean``/``sum`` over the sequences of a per-sequence loss ``[B]``, or ``[B]`` as is."""
    if reduction == "mean":
        return value.mean()
    if reduction == "sum":
        return value.sum()
    return value

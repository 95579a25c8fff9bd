"""Group-relative advantages: TorchRL's ``MCAdvantage`` as tensor kernels.

Shao et al. 2024, "DeepSeekMath" (GRPO, arXiv 2402.03300): each prompt is answered ``n``
times and every answer's advantage is its reward standardised within its group,
``A = (r - mean_group r) / std_group r``. Yu et al. 2025, "DAPO" (arXiv 2503.14476):
groups whose answers all succeed or all fail carry no signal and are dropped ("dynamic
sampling").

``MCAdvantage(grpo_size=n)`` maps onto these kernels as follows (rewards of one group):

- ``trajectory_return=None``: :func:`group_relative_advantage` over every per-step reward
  of the group's trajectories at once (``dim=(-2, -1)`` on ``[n, T]``, with ``mask`` for
  trajectories of different lengths);
- ``trajectory_return="sum"|"max"|"mean"``: :func:`trajectory_return` per trajectory, then
  :func:`group_relative_advantage` over the ``n`` returns, broadcast to the steps;
- ``keep_return_bounds=(low, high)``: :func:`dynamic_sampling_mask` on the returns.

The standard deviation is the unbiased one and is clamped at ``eps`` (``1e-6``), as TorchRL.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from ...errors import EntryShapeError
from .._td import check_bool
from .._validation import check_choice

__all__ = ["group_relative_advantage", "trajectory_return", "dynamic_sampling_mask"]

Dims = int | tuple[int, ...]


def _dims(dim: Dims) -> tuple[int, ...]:
    return (dim,) if isinstance(dim, int) else tuple(dim)


def _check_mask(kernel: str, mask: Tensor | None, values: Tensor) -> None:
    if mask is None:
        return
    check_bool(kernel, "mask", mask)
    if mask.shape != values.shape:
        raise EntryShapeError(kernel, "mask", f"expected the shape of the rewards {tuple(values.shape)}, got {tuple(mask.shape)}")


def group_relative_advantage(
    rewards: Tensor, mask: Tensor | None = None, *, dim: Dims = -1, eps: float = 1e-6
) -> Tensor:
    """``(r - mean(r)) / max(std(r), eps)`` with the statistics taken over ``dim`` (the group).

    Args:
        rewards: ``[*G, n]`` (one return per answer, ``dim=-1``) or per-step rewards
            ``[*G, n, T]`` normalised over ``dim=(-2, -1)``.
        mask: optional bool, same shape: only valid entries enter the statistics; the
            others get advantage 0.
        dim: the dimension(s) holding one group.
        eps: lower bound of the standard deviation.

    Returns:
        Advantages of the shape of ``rewards``, differentiable w.r.t. ``rewards``.
    """
    kernel = "group_relative_advantage"
    dims = _dims(dim)
    _check_mask(kernel, mask, rewards)
    if not rewards.is_floating_point():
        rewards = rewards.to(torch.get_default_dtype())
    size = 1
    for d in dims:
        size *= rewards.shape[d]
    if size < 2:
        raise EntryShapeError(kernel, "rewards", f"a group needs at least 2 values to standardise, got {size} along dim {dim}")
    if mask is None:
        mean = rewards.mean(dims, keepdim=True)
        std = rewards.std(dims, keepdim=True)
        return (rewards - mean) / std.clamp_min(eps)
    weight = mask.to(rewards.dtype)
    count = weight.sum(dims, keepdim=True)
    mean = torch.where(mask, rewards, 0.0).sum(dims, keepdim=True) / count
    centred = torch.where(mask, rewards - mean, 0.0)
    std = ((centred**2).sum(dims, keepdim=True) / (count - 1)).sqrt()
    return torch.where(mask, centred / std.clamp_min(eps), 0.0)


def trajectory_return(
    rewards: Tensor, mask: Tensor | None = None, *, reduction: Literal["sum", "max", "mean"] = "sum", dim: int = -1
) -> Tensor:
    """A trajectory's scalar return from its per-step rewards (``MCAdvantage``'s ``trajectory_return``).

    Args:
        rewards: ``[*B, T]`` per-step rewards (``dim`` is the step dimension).
        mask: optional bool ``[*B, T]``: the steps of each trajectory (ragged trajectories).
        reduction: ``"sum"``, ``"max"`` or ``"mean"`` over the valid steps.
        dim: the step dimension of ``rewards`` (and ``mask``).

    Returns:
        ``[*B]`` returns.
    """
    kernel = "trajectory_return"
    check_choice(kernel, "reduction", reduction, ("sum", "max", "mean"))
    _check_mask(kernel, mask, rewards)
    if reduction == "max":
        if mask is not None:
            rewards = rewards.masked_fill(~mask, float("-inf"))
        return rewards.amax(dim)
    if mask is not None:
        rewards = torch.where(mask, rewards, 0.0)
    total = rewards.sum(dim)
    if reduction == "sum":
        return total
    count = rewards.shape[dim] if mask is None else mask.sum(dim).to(rewards.dtype)
    return total / count


def dynamic_sampling_mask(returns: Tensor, low: float | Tensor, high: float | Tensor, *, dim: int = -1) -> Tensor:
    """Groups worth training on: ``low < mean(returns) < high`` (DAPO's dynamic sampling,
    ``MCAdvantage``'s ``keep_return_bounds``).

    Args:
        returns: ``[*G, n]`` returns of the ``n`` answers of each group.
        low, high: exclusive bounds on a group's mean return.
        dim: the dimension of ``returns`` holding a group's answers.

    Returns:
        Bool ``[*G]``: True for the groups to keep.
    """
    mean = returns.mean(dim)
    return (mean > low) & (mean < high)

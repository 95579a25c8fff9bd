"""Standardisation kernels: ``(x - mean) / std`` over chosen dims, under a validity mask, or
within groups. One place for every normalisation TorchRL applies to rewards and advantages
(PPO's ``normalize_advantage``, GAE's ``average_gae``, V-trace's ``average_adv``, the TD
estimators' ``average_rewards``, group-wise standardisation with ``group_key``)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["standardize", "standardize_by_group"]


def standardize(
    x: Tensor,
    *,
    exclude_dims: tuple[int, ...] = (),
    mask: Tensor | None = None,
    eps: float = 1e-4,
) -> Tensor:
    """``(x - mean) / max(std, eps)`` over every dim of ``x`` except ``exclude_dims``.

    Without ``mask``: the unbiased std (``Tensor.std``). With a boolean ``mask`` broadcastable
    to ``x`` (trailing singleton dims added as needed): mean and population std of the valid
    elements only (at least one counted), as TorchRL does for ``"shifted_valid"`` data.

    Args:
        x: ``[*S]`` float.
        exclude_dims: dims kept independent (statistics per index of these dims).
        mask: optional validity mask ``[*S']`` with ``S'`` a prefix of ``S`` (or ``S``).
        eps: lower clamp of the std.

    Returns:
        ``[*S]``, differentiable w.r.t. ``x`` (statistics included, as in TorchRL).
    """
    excluded = {d % x.ndim for d in exclude_dims} if x.ndim else set()
    dims = tuple(d for d in range(x.ndim) if d not in excluded)
    if mask is None:
        if not dims:
            return x
        if len(dims) == x.ndim:
            return (x - x.mean()) / x.std().clamp_min(eps)
        return (x - x.mean(dim=dims, keepdim=True)) / x.std(dim=dims, keepdim=True).clamp_min(eps)
    while mask.ndim < x.ndim:
        mask = mask.unsqueeze(-1)
    weight = mask.expand_as(x).to(x.dtype)
    count = weight.sum(dim=dims, keepdim=True).clamp_min(1)
    loc = (x * weight).sum(dim=dims, keepdim=True) / count
    scale = (((x - loc).pow(2) * weight).sum(dim=dims, keepdim=True) / count).sqrt().clamp_min(eps)
    return (x - loc) / scale


def standardize_by_group(x: Tensor, groups: Tensor, mask: Tensor | None = None, eps: float = 1e-4) -> Tensor:
    """Standardise ``x`` within each group of equal ``groups`` ids (unbiased std, clamped at ``eps``).

    TorchRL's ``group_key`` standardisation (e.g. GRPO-style per-prompt advantages). The groups
    are the distinct values of ``groups``: the reduction is data dependent (``torch.unique``),
    so this kernel is not traceable by ``torch.compile`` and does not ``vmap``.

    Args:
        x: ``[*S]`` float.
        groups: integer ids ``[*S']`` whose leading dims match ``x`` (a trailing ``1`` is fine).
        mask: optional boolean mask broadcastable to ``x``; masked-out elements do not count.
        eps: lower clamp of the std.
    """
    while groups.ndim < x.ndim:
        groups = groups.unsqueeze(-1)
    if groups.ndim > x.ndim:
        raise ValueError(f"group ids of shape {tuple(groups.shape)} cannot index values of shape {tuple(x.shape)}")
    flat_groups = groups.expand(x.shape).reshape(-1)
    flat = x.reshape(-1)
    if mask is None:
        weight = torch.ones_like(flat)
    else:
        while mask.ndim < x.ndim:
            mask = mask.unsqueeze(-1)
        weight = mask.expand(x.shape).reshape(-1).to(flat.dtype)
    _, index = torch.unique(flat_groups, return_inverse=True)
    size = int(index.max()) + 1
    count = torch.zeros(size, dtype=flat.dtype, device=flat.device).index_add(0, index, weight)
    mean = torch.zeros_like(count).index_add(0, index, flat * weight) / count.clamp_min(1)
    centered = flat - mean[index]
    variance = torch.zeros_like(count).index_add(0, index, centered.square() * weight) / (count - 1).clamp_min(1)
    return (centered / variance.sqrt().clamp_min(eps)[index]).reshape(x.shape)

"""Random Network Distillation: the predictor's loss as a pure function of precomputed
features, and the observation statistics (normalisation, running update) as tensor kernels.

Burda et al. 2018, "Exploration by Random Network Distillation" (arXiv 1810.12894). Same
output and numbers as TorchRL 0.14's ``RNDLoss``; the statistics kernels are the math of
TorchRL's ``RunningMeanStd`` (``normalize``, ``update``) with the statistics as inputs and the
updated statistics as outputs (TorchRL's ``RNDTransform`` updates them in place while
collecting; its loss only reads them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor

from ..errors import EntryShapeError
from ._td import _and, check_per_sample, check_reduction, loss_mask, pack, read_float, reduce_loss
from ._validation import check_range
from .keys import NestedKey, RNDKeys, resolve_keys

__all__ = ["rnd_loss", "rnd_normalize_observation", "running_mean_std_update"]


def rnd_normalize_observation(observation: Tensor, mean: Tensor, var: Tensor, *, obs_clip: float | Tensor = 5.0) -> Tensor:
    """``clamp((x - mean) / sqrt(max(var, 1e-8)), -obs_clip, obs_clip)`` (TorchRL's RND normalisation).

    Args:
        observation: ``[*B, *S]`` (cast to float32 as TorchRL does).
        mean: running mean ``[*S]``.
        var: running variance ``[*S]``.
        obs_clip: clipping radius in standard deviations.

    Returns:
        The normalised observation ``[*B, *S]``.
    """
    return ((observation.float() - mean) / var.clamp_min(1e-8).sqrt()).clamp(-obs_clip, obs_clip)


def running_mean_std_update(x: Tensor, mean: Tensor, var: Tensor, count: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Merge a batch into running statistics (Chan et al.'s parallel Welford update,
    TorchRL's ``RunningMeanStd.update``), without state: the statistics in, the updated ones out.

    Args:
        x: a batch ``[*N, *S]``: every leading dim is a sample dim (cast to float32 as TorchRL).
        mean: running mean ``[*S]``.
        var: running (population) variance ``[*S]``.
        count: number of samples seen so far, ``[]`` (TorchRL starts it at ``1e-4``).

    Returns:
        ``(mean, var, count)`` after the batch, shapes as given.
    """
    x = x.float()
    shape = mean.shape
    if x.ndim < len(shape) or tuple(x.shape[x.ndim - len(shape):]) != tuple(shape):
        raise EntryShapeError("running_mean_std_update", "x",
                              f"expected trailing dims {tuple(shape)} (the statistics' shape), got {tuple(x.shape)}")
    x = x.reshape(-1, *shape)
    n = x.shape[0]
    batch_mean = x.mean(0)
    batch_var = x.var(0, unbiased=False) if n > 1 else torch.zeros_like(batch_mean)
    delta = batch_mean - mean
    total = count + n
    new_mean = mean + delta * (n / total)
    m2 = var * count + batch_var * n + delta.pow(2) * (count * n / total)
    return new_mean, m2 / total, total


def rnd_loss(
    td: TensorDictBase,
    *,
    update_fraction: float = 0.25,
    reduction: Literal["mean", "sum", "none"] = "mean",
    loss_mask_key: NestedKey | None = "auto",
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
    keys: RNDKeys | Mapping[str, NestedKey] | None = None,
) -> TensorDict:
    """RND predictor loss: ``mean_F (f_pred - f_target)^2`` per sample, on a random
    ``update_fraction`` of the samples.

    A sample counts when ``u < update_fraction``, ``u ~ U(0, 1)`` per sample (the paper's
    25 %); ``"mean"`` divides by the number of samples that count. The target features are
    detached (frozen random network). Masks from the input as every loss
    (``loss_mask_key``); a masked or unselected sample is 0 under ``reduction="none"``.

    Args:
        td: input TensorDict of batch ``[*B]`` (not modified): ``predictor_features`` and
            ``target_features`` ``[*B, F]`` (see :class:`RNDKeys`), optional masks ``[*B]``.
        update_fraction: fraction of the samples used, in ``[0, 1]`` (``1``: all, no draw).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        loss_mask_key: ``"auto"`` (``("collector", "mask")`` and ``"shifted_valid"``), an entry, or ``None``.
        noise: the uniform draws ``u`` ``[*B]``; drawn here when ``None`` (and
            ``update_fraction < 1``): from ``generator``, or from the global RNG exactly as
            TorchRL's ``RNDLoss`` (``torch.rand``).
        generator: :class:`torch.Generator` for that draw, or ``None``.
        keys: entry names (:class:`RNDKeys` or a mapping).

    Returns:
        TensorDict with ``loss_predictor`` (scalar, or ``[*B]`` with ``reduction="none"``).
    """
    name = "rnd_loss"
    if not isinstance(td, TensorDictBase):
        raise TypeError(f"{name}: expected a TensorDict, got {type(td).__name__}")
    check_reduction(name, reduction)
    if isinstance(update_fraction, Tensor):
        raise TypeError(f"{name}: update_fraction must be a number (it decides whether samples are drawn)")
    check_range(name, "update_fraction", update_fraction, 0.0, 1.0)
    keys = resolve_keys(keys, RNDKeys, name)
    pred = read_float(name, td, keys.predictor_features, "the predictor network's features of the next observation")
    check_per_sample(name, keys.predictor_features, pred, td.batch_size)
    target = read_float(name, td, keys.target_features, "the frozen target network's features of the next observation",
                        pred.shape, f"the shape of {keys.predictor_features!r}")
    per_sample = (pred - (target.detach() if target.requires_grad else target)).pow(2).mean(-1, keepdim=True)
    mask = loss_mask(name, td, loss_mask_key)
    if update_fraction < 1.0:
        batch = per_sample.shape[:-1]
        if noise is None:  # drawn as [*B, 1] (the per-sample loss's shape): the same numbers as [*B]
            noise = torch.rand(per_sample.shape, generator=generator, device=per_sample.device)
        elif noise.shape != batch:
            raise EntryShapeError(name, "noise", f"expected shape {tuple(batch)}, got {tuple(noise.shape)}")
        else:
            noise = noise.unsqueeze(-1)
        selected = noise < update_fraction
        mask = selected if mask is None else _and(mask, selected)
    return pack({"loss_predictor": reduce_loss(name, per_sample, reduction, mask)})


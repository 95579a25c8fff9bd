"""Critic losses as tensor kernels (no TensorDict, no modules)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import EntryShapeError, HyperparameterError

__all__ = ["LOSS_FUNCTIONS", "distance_loss", "clipped_value_loss", "explained_variance", "ensemble_min",
           "ensemble_distance", "categorical_projection",
           "truncated_quantiles", "quantile_huber_loss"]

LOSS_FUNCTIONS = ("l2", "l1", "smooth_l1")


def distance_loss(target: Tensor, prediction: Tensor, loss_function: str = "smooth_l1") -> Tensor:
    """Element-wise distance between a target and a prediction (TorchRL's ``distance_loss``).

    Args:
        target: ``[*B, F]``.
        prediction: same shape (no broadcasting: a ``[B]`` vs ``[B, 1]`` pair is an error).
        loss_function: ``"l2"`` (squared error), ``"l1"`` or ``"smooth_l1"`` (Huber, delta 1).

    Returns:
        ``[*B, F]`` per-element loss; gradients flow to both inputs.
    """
    if target.shape != prediction.shape:
        raise EntryShapeError(
            "distance_loss", "prediction",
            f"shape {tuple(prediction.shape)} differs from the target's {tuple(target.shape)}",
        )
    if loss_function == "l2":
        return F.mse_loss(target, prediction, reduction="none")
    if loss_function == "l1":
        return F.l1_loss(target, prediction, reduction="none")
    if loss_function == "smooth_l1":
        return F.smooth_l1_loss(target, prediction, reduction="none")
    raise HyperparameterError("distance_loss", "loss_function", f"expected one of {LOSS_FUNCTIONS}, got {loss_function!r}")


def clipped_value_loss(
    target: Tensor,
    prediction: Tensor,
    old_prediction: Tensor,
    clip_value: float | Tensor,
    loss_function: str = "smooth_l1",
) -> tuple[Tensor, Tensor]:
    """PPO value clipping: ``max(d(target, V), d(target, V_old + clip(V - V_old, -c, c)))``.

    As in OpenAI baselines' PPO2 and TorchRL's ``clip_value``.

    Args:
        target: value target, ``[*B, F]``.
        prediction: current ``V(s)``, same shape, carries the critic gradient.
        old_prediction: ``V(s)`` when the data was collected, same shape.
        clip_value: ``c`` (number or tensor).
        loss_function: see :func:`distance_loss`.

    Returns:
        ``(loss, clip_fraction)``: per-element loss ``[*B, F]`` and the fraction of
        elements whose value moved by more than ``c`` (0-d, no gradient).
    """
    loss = distance_loss(target, prediction, loss_function)
    pre_clipped = prediction - old_prediction
    if isinstance(clip_value, Tensor):
        clipped = torch.clamp(pre_clipped, -clip_value, clip_value)
    else:
        clipped = pre_clipped.clamp(-clip_value, clip_value)
    with torch.no_grad():
        clip_fraction = (pre_clipped != clipped).to(prediction.dtype).mean()
    loss_clipped = distance_loss(target, old_prediction + clipped, loss_function)
    return torch.maximum(loss, loss_clipped), clip_fraction


def explained_variance(target: Tensor, prediction: Tensor) -> Tensor:
    """``1 - Var(target - prediction) / Var(target)`` over dim 0, without gradient.

    Matches TorchRL's ``explained_variance`` output (population variance, eps of the dtype).

    Args:
        target: value target, ``[N, *F]`` (e.g. ``[N, 1]``; a flattened batch).
        prediction: critic output, same shape.

    Returns:
        ``target.shape[1:]`` tensor.
    """
    with torch.no_grad():
        target = target.detach()
        prediction = prediction.detach()
        eps = torch.finfo(target.dtype).eps
        resid = torch.var(target - prediction, correction=0, dim=0)
        total = torch.var(target, correction=0, dim=0)
        return 1.0 - resid / (total + eps)


def ensemble_min(x: Tensor) -> Tensor:
    """Clipped double-Q: ``min_i x[i]`` over the leading ensemble dimension (TorchRL's ``min(0)[0]``).

    Fujimoto et al. 2018 (arXiv 1802.09477).

    Args:
        x: ``[E, *B, F]`` values of the ``E`` critics.

    Returns:
        ``[*B, F]``, the minimum over critics (gradients flow to the minimising critic).
    """
    return x.min(0)[0]


def ensemble_distance(prediction: Tensor, target: Tensor, loss_function: str) -> Tensor:
    """Critic-ensemble regression ``sum_i d(Q_i, y)`` per sample (every critic to the same target).

    Args:
        prediction: ``[E, *B, 1]`` the critics' ``Q_i(s, a)``.
        target: ``[*B, 1]`` the regression target ``y`` (broadcast over critics).
        loss_function: ``"l2"``, ``"l1"`` or ``"smooth_l1"``.

    Returns:
        ``[*B, 1]``, summed over critics; gradients flow to both inputs.
    """
    return distance_loss(prediction, target.expand_as(prediction), loss_function).sum(0)


def categorical_projection(probs: Tensor, atoms: Tensor, support: Tensor) -> Tensor:
    """Project a categorical distribution onto a fixed, evenly spaced support (C51's target).

    Bellemare et al. 2017, "A Distributional Perspective on Reinforcement Learning"
    (arXiv 1707.06887), Algorithm 1: each atom is clamped to ``[v_min, v_max]`` and its
    probability split between the two neighbouring points of the support in proportion to
    its distance from them (an atom on a point of the support gives it all its mass), as
    TorchRL's ``DistributionalDQNLoss`` does.

    Args:
        probs: ``[*B, A]`` probabilities of the atoms (e.g. the target network's
            ``p(s', a*)``).
        atoms: ``[*B, A]`` their positions (e.g. ``r + gamma * (1 - terminated) * z``).
        support: ``[A]`` the evenly spaced points ``z`` (``v_min = min z``, ``v_max = max z``), ``A >= 2``.

    Returns:
        ``[*B, A]`` probabilities on ``support``; differentiable with respect to ``probs``
        and (piecewise linearly) ``atoms``. Nothing is detached here.
    """
    n = support.shape[-1] if support.ndim == 1 else 0
    if n < 2:
        raise EntryShapeError("categorical_projection", "support",
                              f"expected a 1-d support of at least 2 points, got shape {tuple(support.shape)}")
    if probs.shape != atoms.shape or probs.shape[-1:] != (n,):
        raise EntryShapeError("categorical_projection", "atoms",
                              f"probs {tuple(probs.shape)} and atoms {tuple(atoms.shape)} must both be "
                              f"[*B, {n}] (the size of the support)")
    v_min, v_max = support.min(), support.max()
    delta = (v_max - v_min) / (n - 1)
    # position on the support in units of delta; clamped again so that rounding never indexes out
    b = ((torch.clamp(atoms, v_min, v_max) - v_min) / delta).clamp(0, n - 1)
    low, up = b.floor(), b.ceil()
    # an atom on a point of the support (low == up) would lose its mass: widen its bracket
    low = torch.where((up > 0) & (low == up), low - 1, low)
    up = torch.where((low < n - 1) & (low == up), up + 1, up)
    out = torch.zeros_like(probs * b)
    out = out.scatter_add(-1, low.long(), probs * (up - b))
    return out.scatter_add(-1, up.long(), probs * (b - low))


def truncated_quantiles(quantiles: Tensor, top_quantiles_to_drop: int, *, loss: str = "truncated_quantiles") -> Tensor:
    """Pool the ``E`` critics' quantiles, sort them and drop the ``E * d`` largest (TQC's target atoms).

    Kuznetsov et al. 2020, "Controlling Overestimation Bias with Truncated Mixture of Continuous
    Distributional Quantile Critics" (arXiv 2005.04269), eq. 10.

    Args:
        quantiles: ``[E, *B, K]`` the critics' quantiles.
        top_quantiles_to_drop: ``d``, a Python ``int`` per critic (not a tensor: it sets a shape), ``0 <= d < K``.
        loss: name used in error messages.

    Returns:
        ``[*B, E * (K - d)]`` the kept atoms in increasing order (gradients flow to the kept quantiles).
    """
    d = top_quantiles_to_drop
    if isinstance(d, bool) or not isinstance(d, int):
        raise HyperparameterError(loss, "top_quantiles_to_drop",
                                  f"must be a Python int (it sets the number of atoms, a shape; a tensor cannot "
                                  f"carry a gradient to it), got {type(d).__name__}")
    e, k = quantiles.shape[0], quantiles.shape[-1]
    if not 0 <= d < k:
        raise HyperparameterError(loss, "top_quantiles_to_drop",
                                  f"must be >= 0 and smaller than the critic's number of quantiles ({k}), got {d}")
    pooled = quantiles.movedim(0, -2).flatten(-2)
    return torch.sort(pooled, dim=-1).values[..., : e * (k - d)]


def quantile_huber_loss(quantiles: Tensor, target: Tensor) -> Tensor:
    """Quantile-regression Huber loss (kappa = 1) of every predicted quantile against every target atom.

    Dabney et al. 2018, "Distributional Reinforcement Learning with Quantile Regression"
    (arXiv 1710.10044), eq. 10: ``|tau_k - 1{u < 0}| * huber(u)``, ``u = target_j - quantile_k``,
    ``tau_k = (k + 1/2) / K``, averaged over the ``K x M`` pairs (TorchRL's ``TQCLoss``).

    Args:
        quantiles: ``[*B, K]`` predicted quantiles (e.g. ``[E, *B, K]`` for ``E`` critics).
        target: ``[*B, M]`` target atoms, broadcast against ``quantiles``' leading dims.

    Returns:
        ``[*B]``; gradients flow to both inputs (the indicator's weight is constant).
    """
    delta = target.unsqueeze(-2) - quantiles.unsqueeze(-1)  # [*B, K, M]
    abs_delta = delta.abs()
    huber = torch.where(abs_delta <= 1, 0.5 * delta.square(), abs_delta - 0.5)
    k = quantiles.shape[-1]
    tau = ((torch.arange(k, device=quantiles.device, dtype=quantiles.dtype) + 0.5) / k).unsqueeze(-1)
    weight = (tau - (delta.detach() < 0).to(quantiles.dtype)).abs()
    return (weight * huber).mean(dim=(-1, -2))

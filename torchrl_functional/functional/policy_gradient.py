"""Policy-gradient surrogate objectives as tensor kernels (no TensorDict, no modules).

All kernels return *per-sample losses* (to be minimised, not reduced) so that
masking, weighting and reduction stay with the caller. Shapes follow TorchRL:
``log_weight`` is ``[*B, 1]`` and ``advantage`` is ``[*B, F]`` (usually ``F = 1``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "clip_bounds",
    "clipped_surrogate_loss",
    "importance_weighted_loss",
    "kl_penalty_loss",
    "policy_gradient_loss",
    "effective_sample_size",
    "adapt_kl_beta",
]


def clip_bounds(clip_epsilon: float | Tensor | tuple) -> tuple[Tensor | float, Tensor | float]:
    """Log-ratio bounds ``(log(1 - eps_low), log(1 + eps_high))`` for PPO clipping.

    Args:
        clip_epsilon: ``eps`` (number or tensor, possibly per-sample ``[*B, 1]``) or a pair
            ``(eps_low, eps_high)`` (DAPO "clip-higher").

    Returns:
        The pair of bounds, differentiable w.r.t. tensor inputs.
    """
    if isinstance(clip_epsilon, (tuple, list)):
        low, high = clip_epsilon
    else:
        low = high = clip_epsilon
    lo = torch.log1p(-low) if isinstance(low, Tensor) else math.log1p(-low)
    hi = torch.log1p(high) if isinstance(high, Tensor) else math.log1p(high)
    return lo, hi


def clipped_surrogate_loss(
    log_weight: Tensor,
    advantage: Tensor,
    clip_epsilon: float | Tensor | tuple,
    log_is_weight: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """PPO clipped surrogate loss, ``-min(r * A, clip(r, 1 - eps, 1 + eps) * A)``.

    Schulman et al. 2017, "Proximal Policy Optimization Algorithms" (arXiv 1707.06347), eq. 7.
    The clipping acts on ``log_weight`` (``log r``) exactly as TorchRL's ``ClipPPOLoss``.
    The minimum is taken by *region*, not by comparing the two products: the clipped term is
    the minimum exactly where the ratio left the trust region on the side the advantage
    favours (``A > 0`` and ``log r > log(1 + eps)``, or ``A < 0`` and ``log r < log(1 - eps)``).
    Where the two products are equal the whole gradient goes to the unclipped term, as in
    TorchRL (``torch.minimum`` would split it in half), and a product that only *rounds* to
    the clipped one (float32 within ~1e-7 of the bound, bfloat16 within ~1%) keeps the
    clipped term's zero policy gradient, as the exact (float64) objective does.

    Args:
        log_weight: ``log pi(a|s) - log pi_old(a|s)``, ``[*B, 1]``; carries the policy gradient.
        advantage: ``[*B, F]``; used as given (keeps its graph, e.g. a learned advantage).
        clip_epsilon: see :func:`clip_bounds`.
        log_is_weight: optional gradient-free log importance weight added to both
            branches after clipping (TorchRL's ``max_importance_ratio``/``delay_actor``).

    Returns:
        ``(loss, clipped)`` where ``loss`` is ``[*B, F]`` and ``clipped`` is a bool
        ``[*B, 1]`` mask of samples whose ratio left the trust region.
    """
    low, high = clip_bounds(clip_epsilon)
    if isinstance(low, Tensor) or isinstance(high, Tensor):
        log_weight_clip = torch.clamp(log_weight, low, high)
    else:
        log_weight_clip = log_weight.clamp(low, high)
    clipped = log_weight_clip != log_weight
    # the clipped term is the smaller one exactly where clipping moved log r against the
    # advantage's sign: (clip(log r) - log r) * A < 0 (zero inside the region and at A = 0)
    active = torch.where((log_weight_clip - log_weight) * advantage < 0, log_weight_clip, log_weight)
    if log_is_weight is not None:
        active = active + log_is_weight
    return -(active.exp() * advantage), clipped


def importance_weighted_loss(log_weight: Tensor, advantage: Tensor) -> Tensor:
    """Unclipped importance-sampled policy loss ``-exp(log_weight) * A`` (TorchRL ``PPOLoss``).

    Args:
        log_weight: ``[*B, 1]``.
        advantage: ``[*B, F]``.

    Returns:
        ``[*B, F]`` per-sample loss.
    """
    return -(log_weight.exp() * advantage)


def kl_penalty_loss(log_weight: Tensor, advantage: Tensor, kl: Tensor, beta: float | Tensor) -> Tensor:
    """KL-penalised surrogate ``-(r * A - beta * KL(pi_old || pi))`` (Schulman et al. 2017, eq. 8).

    Args:
        log_weight: ``[*B, 1]``.
        advantage: ``[*B, F]``.
        kl: per-sample ``KL(pi_old || pi)``, ``[*B, 1]``; differentiable w.r.t. the current policy.
        beta: penalty coefficient (number or tensor).

    Returns:
        ``[*B, F]`` per-sample loss.
    """
    return -(log_weight.exp() * advantage - beta * kl)


def adapt_kl_beta(
    beta: float | Tensor,
    kl_mean: Tensor,
    dtarg: float | Tensor,
    increment: float | Tensor,
    decrement: float | Tensor,
) -> Tensor:
    """Adaptive KL coefficient: ``beta * increment`` if ``KL > 1.5 dtarg``, ``beta * decrement``
    if ``KL < dtarg / 1.5``, else ``beta`` (Schulman et al. 2017, section 4). No host sync.

    Args:
        beta: current coefficient, number or 0-d tensor (``[]``).
        kl_mean: mean KL of the batch, 0-d tensor ``[]`` (read detached).
        dtarg: target KL.
        increment: factor applied when the KL is above ``1.5 * dtarg``.
        decrement: factor applied when the KL is below ``dtarg / 1.5``.

    Returns:
        The new ``beta`` as a tensor (detached: it is a schedule, not a parameter).
    """
    beta = torch.as_tensor(beta, dtype=kl_mean.dtype, device=kl_mean.device).detach()
    kl_mean = kl_mean.detach()
    return torch.where(
        kl_mean > dtarg * 1.5,
        beta * increment,
        torch.where(kl_mean < dtarg / 1.5, beta * decrement, beta),
    )


def policy_gradient_loss(log_prob: Tensor, advantage: Tensor) -> Tensor:
    """Vanilla policy-gradient loss ``-log pi(a|s) * A`` (Williams 1992; Mnih et al. 2016).

    Args:
        log_prob: ``[*B, 1]``.
        advantage: ``[*B, F]``, used as given (detach it for REINFORCE-with-baseline).

    Returns:
        ``[*B, F]`` per-sample loss.
    """
    return -(log_prob * advantage)


def effective_sample_size(log_weight: Tensor) -> Tensor:
    """Normalised effective sample size ``(sum w)^2 / (n sum w^2)`` over dim 0 (TorchRL's ``ESS``).

    Args:
        log_weight: ``[*B, 1]`` log importance weights.

    Returns:
        ``[*B[1:]]`` (a scalar for a flat batch), without gradient.
    """
    with torch.no_grad():
        lw = log_weight.squeeze(-1)
        ess = (2 * lw.logsumexp(0) - (2 * lw).logsumexp(0)).exp()
        return ess / log_weight.shape[0]

"""DreamerV3's tensor kernels: symlog/symexp, the two-hot categorical scalar representation,
balanced categorical KL terms and the return-percentile normalisation, as pure functions.

Hafner et al. 2023, "Mastering Diverse Domains through World Models" (arXiv 2301.04104).
Same numbers as TorchRL 0.14.1 (``torchrl.objectives.dreamer_v3``,
``torchrl.modules.models.model_based``, ``torchrl.modules.PercentileValueNorm``); nothing here
writes in place, so every kernel works under ``torch.func`` and ``torch.compile(fullgraph=True)``.
The running return statistics are inputs and their update an output.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "symlog",
    "symexp",
    "two_hot_bins",
    "two_hot_encode",
    "two_hot_decode",
    "two_hot_cross_entropy",
    "categorical_kl_balanced",
    "categorical_kl_terms",
    "return_percentile_update",
    "return_scale",
]

Scalar = float | Tensor

#: half-width of the symlog grid of :func:`two_hot_bins` (TorchRL's and the paper's)
BIN_RANGE = 20.0


def symlog(x: Tensor) -> Tensor:
    """``sign(x) * log(1 + |x|)`` (DreamerV3 eq. 1), with derivative 1 at ``x = 0``.

    Args:
        x: ``[*S]``, any shape.

    Returns:
        Same shape and dtype.
    """
    return torch.where(x == 0, x, x.sign() * x.abs().log1p())


def symexp(x: Tensor) -> Tensor:
    """``sign(x) * (exp(|x|) - 1)``, the inverse of :func:`symlog`.

    Args:
        x: ``[*S]``, any shape.

    Returns:
        Same shape and dtype.
    """
    return torch.where(x == 0, x, x.sign() * x.abs().expm1())


def two_hot_bins(num_bins: int = 255, *, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None) -> Tensor:
    """DreamerV3's support: ``symexp`` of an even grid over ``[-20, 20]``, exactly antisymmetric.

    Args:
        num_bins: number of support points (at least 2).
        dtype: floating dtype (default: torch's default dtype).
        device: device of the result.

    Returns:
        ``[num_bins]``, ascending (TorchRL's ``_default_bins``).
    """
    if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 2:
        raise ValueError(f"two_hot_bins: num_bins must be an integer >= 2, got {num_bins!r}")
    dtype = dtype or torch.get_default_dtype()
    half_size = num_bins // 2
    if num_bins % 2:
        half = symexp(torch.linspace(-BIN_RANGE, 0, half_size + 1, device=device, dtype=dtype))
        return torch.cat((half, -half[:-1].flip(0)))
    step = 2 * BIN_RANGE / (num_bins - 1)
    half = symexp(-BIN_RANGE + step * torch.arange(half_size, device=device, dtype=dtype))
    return torch.cat((half, -half.flip(0)))


def two_hot_encode(x: Tensor, bins: Tensor) -> Tensor:
    """Two-hot target of raw scalars on an ascending support (linear interpolation between the
    two neighbouring support points; values outside the support saturate at its ends).

    Args:
        x: raw scalars, ``[*S]``.
        bins: ``[K]``, ascending.

    Returns:
        ``[*S, K]`` probabilities; differentiable w.r.t. ``x`` through the two weights.
    """
    bins = bins.to(device=x.device, dtype=x.dtype)
    x = x.clamp(bins[0], bins[-1])
    k = bins.shape[-1]
    lower = ((x.unsqueeze(-1) >= bins).sum(-1) - 1).clamp(0, k - 2)
    upper = lower + 1
    lower_value, upper_value = bins[lower], bins[upper]
    upper_weight = (x - lower_value) / (upper_value - lower_value)
    lower_weight = 1 - upper_weight
    target = torch.zeros((*x.shape, k), device=x.device, dtype=x.dtype)  # out-of-place scatters
    target = target.scatter(-1, lower.unsqueeze(-1), lower_weight.unsqueeze(-1))
    return target.scatter(-1, upper.unsqueeze(-1), upper_weight.unsqueeze(-1))


def two_hot_decode(logits: Tensor, bins: Tensor) -> Tensor:
    """Expected raw value of ``softmax(logits)`` on the support; mirrored bins are paired so that
    uniform probabilities on an antisymmetric support decode to exactly 0 (TorchRL's order).

    Args:
        logits: ``[*S, K]``.
        bins: ``[K]``.

    Returns:
        ``[*S]``.
    """
    bins = bins.to(device=logits.device, dtype=logits.dtype)
    probs = torch.softmax(logits, dim=-1)
    size = logits.shape[-1]
    midpoint = size // 2
    lower = probs[..., :midpoint].flip(-1)
    lower_bins = bins[:midpoint].flip(-1)
    if size % 2:
        upper = probs[..., midpoint + 1:]
        upper_bins = bins[midpoint + 1:]
        center = probs[..., midpoint] * bins[midpoint]
    else:
        upper = probs[..., midpoint:]
        upper_bins = bins[midpoint:]
        center = None
    expectation = ((upper - lower) * upper_bins + lower * (upper_bins + lower_bins)).sum(-1)
    return expectation if center is None else expectation + center


def two_hot_cross_entropy(logits: Tensor, target: Tensor, bins: Tensor) -> Tensor:
    """Cross-entropy of ``logits`` against the two-hot encoding of raw scalar targets.

    Args:
        logits: ``[*S, K]``.
        target: ``[*S]`` raw scalars (used as given: detach it for a fixed target).
        bins: ``[K]``.

    Returns:
        ``[*S]``, unreduced.
    """
    return -(two_hot_encode(target, bins) * torch.log_softmax(logits, dim=-1)).sum(-1)


def _unimix_probs(logits: Tensor, unimix: Scalar) -> Tensor:
    probs = torch.softmax(logits, dim=-1)
    if isinstance(unimix, Tensor) or unimix:
        probs = (1 - unimix) * probs + unimix / logits.shape[-1]
    return probs


def _floor(x: Tensor, floor: Scalar) -> Tensor:
    """``max(x, floor)`` (``clamp_min`` for a number; a tensor floor keeps its graph)."""
    if isinstance(floor, Tensor):
        return torch.maximum(x, floor.to(x.dtype))
    return x.clamp_min(floor)


def categorical_kl_terms(posterior_logits: Tensor, prior_logits: Tensor, free_nats: Scalar = 1.0,
                         unimix: Scalar = 0.01) -> tuple[Tensor, Tensor]:
    """DreamerV3's dynamics and representation losses (paper eq. 5), averaged over the batch.

    ``dyn = max(free_nats, KL(sg(post) || prior))``, ``rep = max(free_nats, KL(post || sg(prior)))``,
    each KL summed over the categoricals before the free-nats clip; both distributions mix in
    ``unimix`` of the uniform distribution.

    Args:
        posterior_logits: ``[*B, C, K]`` (``C`` categoricals of ``K`` classes).
        prior_logits: ``[*B, C, K]``.
        free_nats: the clip (a number 0 disables it).
        unimix: uniform mixture weight in ``[0, 1)``.

    Returns:
        ``(dynamics, representation)``, 0-d. ``dynamics`` is detached from the posterior's logits
        and ``representation`` from the prior's (a tensor ``unimix`` keeps its graph in both).
    """
    # the stop-gradients act on the networks' logits; a tensor unimix keeps its graph everywhere
    posterior = _unimix_probs(posterior_logits, unimix)
    prior = _unimix_probs(prior_logits, unimix)
    posterior_sg = _unimix_probs(posterior_logits.detach(), unimix)
    prior_sg = _unimix_probs(prior_logits.detach(), unimix)
    dynamics = (posterior_sg * (posterior_sg.log() - prior.log())).sum((-1, -2))
    representation = (posterior * (posterior.log() - prior_sg.log())).sum((-1, -2))
    if isinstance(free_nats, Tensor) or free_nats:
        dynamics, representation = _floor(dynamics, free_nats), _floor(representation, free_nats)
    return dynamics.mean(), representation.mean()


def categorical_kl_balanced(posterior_logits: Tensor, prior_logits: Tensor, alpha: Scalar = 0.8,
                            free_bits: Scalar = 1.0) -> Tensor:
    """``alpha * KL(sg(post) || prior) + (1 - alpha) * KL(post || sg(prior))``, each KL clipped
    below at ``free_bits`` per categorical, then averaged (TorchRL's "balanced" KL; probabilities
    clamped at 1e-8).

    Args:
        posterior_logits: ``[*B, C, K]``.
        prior_logits: ``[*B, C, K]``.
        alpha: balancing weight (the first term trains the prior, the second the posterior).
        free_bits: per-categorical clip.

    Returns:
        0-d.
    """
    eps = 1e-8
    posterior = torch.softmax(posterior_logits, dim=-1).clamp(min=eps)
    prior = torch.softmax(prior_logits, dim=-1).clamp(min=eps)
    post_sg, prior_sg = posterior.detach(), prior.detach()
    term1 = (post_sg * (post_sg.log() - prior.log())).sum(-1)
    term2 = (posterior * (posterior.log() - prior_sg.log())).sum(-1)
    term1, term2 = _floor(term1, free_bits), _floor(term2, free_bits)
    return alpha * term1.mean() + (1.0 - alpha) * term2.mean()


def return_percentile_update(returns: Tensor, low: Tensor, high: Tensor, *, rate: Scalar = 0.01,
                             quantiles: tuple[float, float] = (0.05, 0.95)) -> tuple[Tensor, Tensor]:
    """One EMA step of the return percentiles: ``low <- lerp(low, Q_lo(R), rate)``, same for ``high``.

    Args:
        returns: ``[*S, 1]`` returns (used as given: pass them detached from the networks).
        low: ``[1]`` (or 0-d) current low-quantile EMA.
        high: same shape, current high-quantile EMA.
        rate: EMA rate in ``[0, 1]`` (differentiable if a tensor).
        quantiles: the low and high quantile levels.

    Returns:
        ``(new_low, new_high)``, shaped like ``low``.
    """
    flat = returns.reshape(-1, 1).to(low.dtype)
    q = torch.tensor(quantiles, dtype=flat.dtype, device=flat.device)
    batch_low, batch_high = torch.quantile(flat, q, dim=0)
    batch_low, batch_high = batch_low.reshape(low.shape), batch_high.reshape(high.shape)
    return torch.lerp(low, batch_low, rate), torch.lerp(high, batch_high, rate)


def return_scale(low: Tensor, high: Tensor, min_scale: Scalar = 1.0) -> Tensor:
    """``max(min_scale, high - low)``: the divisor of DreamerV3's return normalisation.

    Args:
        low: low-quantile EMA, ``[1]`` or any shape.
        high: high-quantile EMA, same shape.
        min_scale: lower bound (positive).

    Returns:
        Same shape as ``low``.
    """
    return _floor(high - low, min_scale)

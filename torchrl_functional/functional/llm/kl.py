"""Per-token estimators of the KL divergence from sampled log-probs (Schulman 2020,
"Approximating KL Divergence", http://joschu.net/blog/kl-approx.html).

With ``d = target_log_prob - log_prob`` on tokens sampled from the distribution behind
``log_prob``: ``k1 = -d`` (unbiased, high variance; TorchRL's ``kl_approx`` diagnostic),
``k2 = d^2 / 2`` (biased, low variance; TorchRL's KL-mask trust region), ``k3 = e^d - 1 - d``
(unbiased, non-negative; TorchRL's KL penalties and ``k3_kl_token_estimate``).
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor

from ...errors import EntryShapeError
from .._validation import check_choice

__all__ = ["kl_token_estimate", "KL_ESTIMATORS"]

KL_ESTIMATORS = ("k1", "k2", "k3")


def kl_token_estimate(
    target_log_prob: Tensor, log_prob: Tensor, estimator: Literal["k1", "k2", "k3"] = "k3"
) -> Tensor:
    """Per-token estimate of ``KL(sampling || target)``.

    Args:
        target_log_prob: log-probs of the target (non-sampling) distribution, ``[*B]``.
        log_prob: log-probs of the distribution the tokens were sampled from, same shape.
        estimator: ``"k1"``, ``"k2"`` or ``"k3"`` (see the module docstring).

    Returns:
        ``[*B]`` per-token contributions (differentiable w.r.t. both inputs).
    """
    check_choice("kl_token_estimate", "estimator", estimator, KL_ESTIMATORS)
    if target_log_prob.shape != log_prob.shape:
        raise EntryShapeError(
            "kl_token_estimate", "log_prob",
            f"expected the shape of target_log_prob {tuple(target_log_prob.shape)}, got {tuple(log_prob.shape)}",
        )
    diff = target_log_prob - log_prob
    if estimator == "k3":
        return diff.expm1() - diff
    if estimator == "k2":
        return 0.5 * diff**2
    return -diff

"""Truncated Quantile Critics (TQC) as pure functions of precomputed quantiles and log-probs.

Kuznetsov et al. 2020, "Controlling Overestimation Bias with Truncated Mixture of Continuous
Distributional Quantile Critics" (arXiv 2005.04269). Same outputs and numbers as TorchRL
0.14's ``TQCLoss`` (SAC with ``E`` quantile critics; one-step TD target); the priority
TorchRL writes into its input is the returned ``"td_error"`` entry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Literal, Unpack

from tensordict import TensorDict, TensorDictBase
from torch import Tensor

from ..errors import HyperparameterError
from ._offpolicy import (
    Options,
    PrioritizedReplayOptions,
    ReplayOptions,
    Transition,
    bootstrap_target,
    mask_and_weights,
    open_call,
    read_ensemble,
    read_log_prob,
)
from ._td import finish_losses, next_key
from .keys import NestedKey, TQCKeys
from .sac import _target_entropy, alpha_loss, log_alpha_terms
from .value_learning import quantile_huber_loss, truncated_quantiles

__all__ = ["tqc_loss", "tqc_target"]

Number = float | Tensor


def _target(name: str, td: TensorDictBase, tr: Transition, keys: TQCKeys, options: Options,
            top_quantiles_to_drop: int, alpha: Tensor | None, log_alpha: Number, like: tuple | None = None,
            average_rewards: bool = False) -> Tensor:
    b = tr.batch_shape
    next_q = read_ensemble(name, td, next_key(keys.state_action_value), b,
                           "Q_target_i(s', a') quantiles of the target critics at a' ~ pi(s')",
                           features=None if like is None else like[1].shape[-1], like=like)
    next_log_prob = read_log_prob(name, td, next_key(keys.log_prob), b, "log pi(a'|s') of the action sampled at s'")
    if alpha is None:
        alpha = log_alpha_terms(name, log_alpha, next_q)[1]
    atoms = truncated_quantiles(next_q, top_quantiles_to_drop, loss=name) - alpha * next_log_prob.unsqueeze(-1)
    m = atoms.shape[-1]
    # every atom gets its own reward entry, as TorchRL's TQCLoss hands them to its TD(0) estimator
    # (with average_rewards, the standard deviation is over those B x M entries, as TorchRL's)
    wide = dataclasses.replace(tr, reward=tr.reward.expand(*b, m), terminated=tr.terminated.expand(*b, m))
    if not isinstance(average_rewards, bool):
        raise HyperparameterError(name, "average_rewards", f"expected a bool, got {average_rewards!r}")
    return bootstrap_target(name, td, wide, atoms, options._replace(average_rewards=average_rewards))


def tqc_target(
    td: TensorDictBase,
    *,
    top_quantiles_to_drop: int = 2,
    log_alpha: Number = 0.0,
    gamma: Number = 0.99,
    average_rewards: bool = False,
    keys: TQCKeys | Mapping[str, NestedKey] | None = None,
) -> Tensor:
    """TQC's target atoms ``r + gamma (1 - terminated) (z_(j)(s', a') - alpha log pi(a'|s'))``.

    ``z_(j)`` are the pooled target quantiles of the ``E`` critics, sorted, without the
    ``E * top_quantiles_to_drop`` largest (:func:`truncated_quantiles`). Detached from every
    network output (the reward and ``gamma`` keep their graphs); ``alpha = exp(log_alpha)`` detached.

    Args:
        td: input TensorDict (not modified): ``("next", "state_action_value")`` ``[E, *B, K]``,
            ``("next", "log_prob")`` ``[*B]``, ``("next", "reward"/"done"/"terminated")`` ``[*B, 1]``,
            optional ``"gamma"`` override and ``"steps_to_next_obs"`` ``[*B]`` (n-step data).
        top_quantiles_to_drop: ``d``, atoms dropped per critic: a Python ``int``, ``0 <= d < K``.
        log_alpha: log of the temperature (number or 0-d tensor).
        gamma: discount (number or tensor, differentiable).
        average_rewards: standardise the reward first, ``(r - mean r) / max(std r, 1e-5)``, over
            the reward expanded to every kept atom (``B x E (K - d)`` entries: the standard
            deviation differs from the one over ``B`` rewards), as TorchRL's ``TQCLoss`` with a
            TD(0) estimator built with ``average_rewards=True``.
        keys: :class:`~torchrl_functional.functional.keys.TQCKeys` or a mapping of renamed entries.

    Returns:
        ``[*B, E * (K - d)]`` target atoms.
    """
    name = "tqc_target"
    o, keys, tr = open_call(name, td, keys, TQCKeys, {"gamma": gamma}, fields=ReplayOptions)
    return _target(name, td, tr, keys, o, top_quantiles_to_drop, None, log_alpha, average_rewards=average_rewards)


def tqc_loss(
    td: TensorDictBase,
    *,
    top_quantiles_to_drop: int = 2,
    log_alpha: Number = 0.0,
    target_entropy: Number | Literal["auto"] | None = "auto",
    average_rewards: bool = False,
    keys: TQCKeys | Mapping[str, NestedKey] | None = None,
    **options: Unpack[PrioritizedReplayOptions],
) -> TensorDict:
    """TQC: quantile critics regressed on truncated pooled targets, SAC actor and temperature.

    - target atoms ``y_j`` from :func:`tqc_target` (``E * (K - d)`` of them);
    - ``loss_qvalue = sum_i`` :func:`quantile_huber_loss` ``(Z_i(s, a), y)``;
    - ``loss_actor = alpha log pi(a~|s) - mean_{i,k} Z_i,k(s, a~)`` (the whole mixture, untruncated);
    - ``loss_alpha = -log_alpha (log pi(a~|s) + target_entropy)``.

    Stop-gradients as :func:`sac_loss`: ``y`` and ``alpha`` are detached; compute ``Z_i(s, a~)``
    with the critics' parameters detached so that ``loss_actor`` trains the actor only.

    Args:
        td: input TensorDict (not modified); entries (``B`` = batch shape of the reward,
            ``E`` critics of ``K`` quantiles):

            - ``"state_action_value"`` ``[E, *B, K]``: ``Z_i(s, a)`` (with gradients);
            - ``("next", "state_action_value")`` ``[E, *B, K]``: ``Z_target_i(s', a')``;
            - ``("next", "log_prob")`` ``[*B]``: ``log pi(a'|s')``;
            - ``"state_action_value_actor"`` ``[E, *B, K]``: ``Z_i(s, a~)``;
            - ``"log_prob"`` ``[*B]``: ``log pi(a~|s)`` (with gradients);
            - ``("next", "reward"/"done"/"terminated")`` ``[*B, 1]``; ``"action"`` ``[*B, A]``
              when ``target_entropy="auto"``;
            - optional ``"priority_weight"`` ``[*B]``, masks, ``"gamma"`` override, ``"steps_to_next_obs"``.
        top_quantiles_to_drop: ``d``, atoms dropped per critic: a Python ``int`` (it sets a shape;
            tensors are refused), ``0 <= d < K``.
        log_alpha: log of the temperature (number or 0-d tensor, e.g. a ``Parameter``).
        target_entropy: number or tensor; ``"auto"`` is minus the action dimensions; ``None``
            makes ``loss_alpha`` zero.
        average_rewards: standardise the reward over the target atoms first (:func:`tqc_target`).
        keys: :class:`~torchrl_functional.functional.keys.TQCKeys` or a mapping of renamed entries.
        **options: ``gamma``, ``reduction``, ``loss_mask_key``, ``use_prioritized_weights``
            (:class:`~torchrl_functional.functional.PrioritizedReplayOptions`).

    Returns:
        TensorDict with ``loss_actor``, ``loss_qvalue``, ``loss_alpha``, ``alpha`` (detached),
        ``entropy = -mean log pi(a~|s)`` (detached) and the replay priority
        ``td_error = max_i mean_{k,j} |y_j - Z_i,k(s, a)|`` ``[*B]`` (detached).
    """
    name = "tqc_loss"
    o, keys, tr = open_call(name, td, keys, TQCKeys, options, fields=PrioritizedReplayOptions)
    b = tr.batch_shape
    target_entropy = _target_entropy(name, td, keys, target_entropy, b)
    pred = read_ensemble(name, td, keys.state_action_value, b, "Z_i(s, a) quantiles of the critics (with gradients)",
                         features=None)
    actor_q = read_ensemble(name, td, keys.state_action_value_actor, b,
                            "Z_i(s, a~) quantiles of the critics (detached parameters) at a~ ~ pi(s)",
                            features=pred.shape[-1], like=(keys.state_action_value, pred))
    log_prob = read_log_prob(name, td, keys.log_prob, b, "log pi(a~|s) of the reparameterised sample at s")
    log_alpha, alpha = log_alpha_terms(name, log_alpha, pred)
    target = _target(name, td, tr, keys, o, top_quantiles_to_drop, alpha, log_alpha,
                     like=(keys.state_action_value, pred), average_rewards=average_rewards)

    log_prob = log_prob.unsqueeze(-1)
    out = finish_losses(
        name,
        {
            "loss_actor": alpha * log_prob - actor_q.mean(dim=(0, -1)).unsqueeze(-1),
            "loss_qvalue": quantile_huber_loss(pred, target).sum(0).unsqueeze(-1),
            "loss_alpha": alpha_loss(log_alpha, log_prob, target_entropy),
        },
        o.reduction, *mask_and_weights(name, td, keys, o, b),
    )
    out["alpha"] = alpha
    out["entropy"] = -log_prob.detach().mean()
    out["td_error"] = (target.detach().unsqueeze(-2) - pred.detach().unsqueeze(-1)).abs().mean(dim=(-1, -2)).max(0).values
    return out

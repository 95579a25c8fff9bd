"""Advantage actor-critic as a pure function of a TensorDict of precomputed outputs.

Mnih et al. 2016, "Asynchronous Methods for Deep Reinforcement Learning"
(arXiv 1602.01783). Same outputs and numbers as TorchRL 0.14's ``A2CLoss``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor
from torch import distributions as D

from ..errors import HyperparameterError
from ._td import finish_losses
from ._terms import check_common, critic_outputs, entropy_outputs, prepare
from .keys import A2CKeys, NestedKey, resolve_keys
from .policy_gradient import policy_gradient_loss

__all__ = ["a2c_loss"]

Number = float | Tensor


def a2c_loss(
    td: TensorDictBase,
    dist_class: Callable[..., D.Distribution] | None = None,
    *,
    entropy_bonus: bool = True,
    samples_mc_entropy: int = 1,
    entropy_coeff: Number = 0.01,
    critic_coeff: Number | None = 1.0,
    loss_critic_type: str = "smooth_l1",
    clip_value: Number | None = None,
    advantage_scale: Number | None = None,
    diagnostics: bool = True,
    reduction: Literal["mean", "sum", "none"] = "mean",
    loss_mask_key: NestedKey | None = "auto",
    value_estimator: Any = "gae",
    gamma: Number = 0.99,
    lmbda: Number = 0.95,
    time_dim: int | None = None,
    rho_thresh: Number = 1.0,
    c_thresh: Number = 1.0,
    keys: A2CKeys | Mapping[str, NestedKey] | None = None,
    generator: torch.Generator | None = None,
) -> TensorDict:
    """A2C loss: ``loss_objective = -mean(log pi(a|s) * A)`` plus entropy and critic terms.

    The advantage is used as given (TorchRL's ``A2CLoss`` does not detach it either);
    when estimated here from rewards and values, the values are detached. A composite
    (multi-head) policy's log-prob is the sum over its heads; its entropy is one
    reparameterised Monte-Carlo estimate over every head, as TorchRL's ``A2CLoss`` computes it.

    Args:
        td: input TensorDict (not modified): ``"actor_output"`` (with ``dist_class``) or
            ``"log_prob"`` ``[*B]``; ``"action"``; ``"advantage"`` ``[*B, 1]`` or the entries
            to estimate it (``("next", "reward"/"done"/"terminated"/"state_value")``,
            ``"state_value"``); ``"value_target"`` and ``"state_value"`` ``[*B, 1]`` for the
            critic term (``"old_state_value"`` with ``clip_value``); optional masks and
            ``[*B]``/``[*B, 1]`` hyperparameter overrides. See
            :class:`~torchrl_functional.functional.keys.A2CKeys`.
        dist_class: distribution class (or callable) built from ``td["actor_output"]``.
        entropy_bonus: add ``loss_entropy = -entropy_coeff * H`` (off when ``entropy_coeff == 0``).
        samples_mc_entropy: samples for a Monte-Carlo entropy.
        entropy_coeff, critic_coeff: numbers or tensors (``critic_coeff=None`` drops the critic).
        loss_critic_type: ``"smooth_l1"``, ``"l2"`` or ``"l1"``.
        clip_value: value clipping radius, or ``None``.
        advantage_scale: divide the advantage by this (a ``ValueNorm``'s ``scale()``), or ``None``.
        diagnostics: add ``entropy`` and ``value_clip_fraction`` (logging only).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        loss_mask_key: ``"auto"``, an entry name or ``None``.
        value_estimator, gamma, lmbda, time_dim, rho_thresh, c_thresh: estimation of a missing
            advantage (see :func:`~torchrl_functional.functional.clip_ppo_loss`).
        keys: renamed entries.
        generator: RNG for Monte-Carlo estimates (``None``: global RNG, as TorchRL).

    Returns:
        TensorDict with ``loss_objective`` and, as enabled, ``entropy``, ``loss_entropy``,
        ``loss_critic``, ``value_clip_fraction``.
    """
    name = "a2c_loss"
    if isinstance(entropy_coeff, (int, float)) and entropy_coeff == 0:
        entropy_bonus = False
    if isinstance(entropy_coeff, Mapping):
        raise HyperparameterError(name, "entropy_coeff", "A2C takes one coefficient (a number or a tensor)")
    critic_coeff = check_common(name, reduction, entropy_bonus, samples_mc_entropy, entropy_coeff,
                                critic_coeff, loss_critic_type, clip_value)
    batch = prepare(
        name, td, dist_class, A2CKeys, resolve_keys(keys, A2CKeys, name), importance_weighted=False,
        advantage_scale=advantage_scale, loss_mask_key=loss_mask_key, value_estimator=value_estimator,
        gamma=gamma, lmbda=lmbda, time_dim=time_dim, rho_thresh=rho_thresh, c_thresh=c_thresh,
    )
    out: dict[str, Tensor] = {"loss_objective": policy_gradient_loss(batch.policy.log_prob.unsqueeze(-1), batch.advantage)}
    if entropy_bonus:
        out.update(entropy_outputs(name, td, batch, samples_mc_entropy=samples_mc_entropy,
                                   entropy_coeff=entropy_coeff, generator=generator, diagnostics=diagnostics,
                                   joint_mc=True))
    if critic_coeff is not None:
        out.update(critic_outputs(name, td, batch, critic_coeff=critic_coeff, loss_critic_type=loss_critic_type,
                                  clip_value=clip_value, log_explained_variance=False, diagnostics=diagnostics))
    return finish_losses(name, out, reduction, batch.mask)

"""Advantage actor-critic as a pure function of a TensorDict of precomputed outputs.

Mnih et al. 2016, "Asynchronous Methods for Deep Reinforcement Learning"
(arXiv 1602.01783). Same outputs and numbers as TorchRL 0.14's ``A2CLoss``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor
from torch import distributions as D

from ._onpolicy import (
    advantage_and_target,
    check_critic_options,
    check_samples,
    critic_terms,
    current_log_prob,
    entropy_term,
)
from ._td import check_reduction, hyperparameter, finish_losses, loss_mask
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
    reduction: Literal["mean", "sum", "none"] = "mean",
    loss_mask_key: NestedKey | None = "auto",
    value_estimator: str = "gae",
    gamma: Number = 0.99,
    lmbda: Number = 0.95,
    time_dim: int | None = None,
    keys: A2CKeys | Mapping[str, NestedKey] | None = None,
    generator: torch.Generator | None = None,
) -> TensorDict:
    """A2C loss: ``loss_objective = -mean(log pi(a|s) * A)`` plus entropy and critic terms.

    The advantage is used as given (TorchRL's ``A2CLoss`` does not detach it either);
    when estimated here from rewards and values, the values are detached.

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
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        loss_mask_key: ``"auto"``, an entry name or ``None``.
        value_estimator, gamma, lmbda, time_dim: estimation of a missing advantage.
        keys: renamed entries.
        generator: RNG for Monte-Carlo estimates (``None``: global RNG, as TorchRL).

    Returns:
        TensorDict with ``loss_objective`` and, as enabled, ``entropy``, ``loss_entropy``,
        ``loss_critic``, ``value_clip_fraction``.
    """
    name = "a2c_loss"
    if not isinstance(td, TensorDictBase):
        raise TypeError(f"{name}: expected a TensorDict, got {type(td).__name__}")
    check_reduction(name, reduction)
    check_critic_options(name, loss_critic_type, clip_value, critic_coeff)
    if isinstance(entropy_coeff, (int, float)) and entropy_coeff == 0:
        entropy_bonus = False
    if entropy_bonus:
        check_samples(name, "samples_mc_entropy", samples_mc_entropy)
    keys = resolve_keys(keys, A2CKeys, name)
    log_prob, dist = current_log_prob(name, td, keys, dist_class)
    batch_shape = log_prob.shape
    advantage, value_target = advantage_and_target(
        name, td, keys, batch_shape,
        value_estimator=value_estimator, gamma=gamma, lmbda=lmbda, time_dim=time_dim,
    )
    out: dict[str, Tensor] = {"loss_objective": policy_gradient_loss(log_prob.unsqueeze(-1), advantage)}
    if entropy_bonus:
        ent = entropy_term(name, td, keys, dist, batch_shape,
                           samples_mc_entropy=samples_mc_entropy, generator=generator)
        out["entropy"] = ent.detach().mean()
        out["loss_entropy"] = -hyperparameter(name, td, "entropy_coeff", entropy_coeff, batch_shape) * ent
    if critic_coeff is not None:
        per_sample, clip_fraction, _ = critic_terms(
            name, td, keys, batch_shape, value_target,
            loss_critic_type=loss_critic_type, clip_value=clip_value, log_explained_variance=False,
        )
        out["loss_critic"] = hyperparameter(name, td, "critic_coeff", critic_coeff, batch_shape) * per_sample
        if clip_fraction is not None:
            out["value_clip_fraction"] = clip_fraction
    return finish_losses(name, out, reduction, loss_mask(name, td, loss_mask_key))

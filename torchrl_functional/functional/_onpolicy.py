"""Pieces shared by the on-policy TensorDict losses (PPO family, A2C, REINFORCE):
the current log-prob, the advantage (given or estimated), the critic term and the
entropy term. Each reads its entries once, checks them and names them in errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from tensordict import TensorDictBase
from torch import Tensor
from torch import distributions as D

from ..errors import EntryDtypeError, EntryShapeError, HyperparameterError, LossInputError
from . import value as value_kernels
from ._td import (
    check_bool,
    check_constant,
    check_finite_leaves,
    check_float,
    check_per_sample,
    check_shape,
    hyperparameter,
    missing,
    next_key,
    require,
)
from ._validation import check_choice, check_range
from .distributions import build_distribution, is_continuous
from .distributions import entropy as dist_entropy
from .keys import OnPolicyKeys
from .value_learning import LOSS_FUNCTIONS, clipped_value_loss, distance_loss, explained_variance

VALUE_ESTIMATORS = ("gae", "td0", "td1", "td_lambda")

_ACTOR_HINT = (
    "pass the current policy's distribution parameters under {actor_output!r} "
    "(with dist_class) or its log-prob of the action under {log_prob!r}"
)


def current_log_prob(
    loss: str,
    td: TensorDictBase,
    keys: OnPolicyKeys,
    dist_class: Callable[..., D.Distribution] | None,
) -> tuple[Tensor, D.Distribution | None]:
    """Log-prob of the stored action under the current policy, and the policy if built.

    Returns:
        ``(log_prob [*B], dist or None)``; the log-prob carries the policy gradient.
    """
    params = td.get(keys.actor_output, None)
    if params is not None:
        check_finite_leaves(loss, keys.actor_output, params)
        dist = build_distribution(loss, keys.actor_output, dist_class, params)
        action = require(loss, td, keys.action, "the action taken, written by the collector")
        check_constant(loss, keys.action, action, "the action must be a constant of the data")
        if is_continuous(dist) and not action.is_floating_point():
            raise EntryDtypeError(
                loss, keys.action, f"{type(dist).__name__} is continuous: expected a floating point action, got {action.dtype}"
            )
        shapes = (
            f"action shape {tuple(action.shape)}, while the distribution built from {keys.actor_output!r} has "
            f"batch shape {tuple(dist.batch_shape)} and event shape {tuple(dist.event_shape)}"
        )
        try:
            log_prob = dist.log_prob(action)
        except (RuntimeError, ValueError, IndexError) as err:
            raise EntryShapeError(loss, keys.action, f"cannot be scored: {shapes} ({err})") from err
        if log_prob.shape != dist.batch_shape:
            raise EntryShapeError(loss, keys.action, f"would broadcast: {shapes} (log-prob shape {tuple(log_prob.shape)})")
        return log_prob, dist
    log_prob = td.get(keys.log_prob, None)
    if log_prob is None:
        raise missing(loss, keys.actor_output, _ACTOR_HINT.format(actor_output=keys.actor_output, log_prob=keys.log_prob))
    check_float(loss, keys.log_prob, log_prob)
    return log_prob, None


def behaviour_log_prob(loss: str, td: TensorDictBase, keys: OnPolicyKeys, batch_shape: torch.Size) -> Tensor:
    prev = require(loss, td, keys.sample_log_prob, "the behaviour policy's log-prob of the action, written by the collector")
    check_float(loss, keys.sample_log_prob, prev)
    check_constant(loss, keys.sample_log_prob, prev, "the behaviour log-prob must be a constant of the data")
    check_shape(loss, keys.sample_log_prob, prev, batch_shape, "the shape of the current log-prob")
    return prev


def _time_dim(loss: str, td: TensorDictBase, batch_shape: torch.Size, time_dim: int | None) -> int:
    """Time dimension of ``[*B, 1]`` value tensors: given (as a batch dim), a ``"time"``-named
    dim of ``td``, or the last batch dim (TorchRL's rule)."""
    nb = len(batch_shape)
    if nb == 0:
        raise EntryShapeError(loss, "advantage", "estimating the advantage needs a time dimension; the batch is empty")
    if time_dim is None:
        try:
            names = list(td.names)
        except (RuntimeError, ValueError):
            names = []
        time_dim = names.index("time") if "time" in names and len(names) == nb else nb - 1
    if not -nb <= time_dim < nb:
        raise HyperparameterError(loss, "time_dim", f"{time_dim} is out of range for a batch of shape {tuple(batch_shape)}")
    return (time_dim % nb) - nb - 1


def estimate_advantage(
    loss: str,
    td: TensorDictBase,
    keys: OnPolicyKeys,
    batch_shape: torch.Size,
    *,
    value_estimator: str,
    gamma: Any,
    lmbda: Any,
    time_dim: int | None,
) -> tuple[Tensor, Tensor]:
    """Advantage and value target from rewards and (detached) values.

    ``V(s)`` and ``V(s')`` are detached (TorchRL runs its estimator with detached critic
    parameters); ``gamma``, ``lmbda`` and the reward keep their graphs.
    """
    check_choice(loss, "value_estimator", value_estimator, VALUE_ESTIMATORS)
    gamma = hyperparameter(loss, td, "gamma", gamma, batch_shape)
    lmbda = hyperparameter(loss, td, "lmbda", lmbda, batch_shape)
    hint = f"needed to estimate the advantage (or pass {keys.advantage!r} precomputed)"
    reward = require(loss, td, next_key(keys.reward), hint)
    done = require(loss, td, next_key(keys.done), hint)
    terminated = td.get(next_key(keys.terminated), None)
    value = require(loss, td, keys.value, "the critic's V(s), " + hint)
    next_value = require(loss, td, next_key(keys.value), "the critic's V(s'), " + hint)
    for key, x in ((next_key(keys.reward), reward), (keys.value, value), (next_key(keys.value), next_value)):
        check_float(loss, key, x)
        check_per_sample(loss, key, x, batch_shape)
    for key, x in ((next_key(keys.done), done), (next_key(keys.terminated), terminated)):
        if x is not None:
            check_bool(loss, key, x)
            check_shape(loss, key, x, value.shape, f"the shape of {keys.value!r}")
    if terminated is None:
        terminated = done
    dim = _time_dim(loss, td, batch_shape, time_dim)
    value = value.detach()
    next_value = next_value.detach()
    try:
        if value_estimator == "gae":
            return value_kernels.generalized_advantage_estimate(
                gamma, lmbda, value, next_value, reward, done, terminated, time_dim=dim
            )
        if value_estimator == "td0":
            target = value_kernels.td0_return_estimate(gamma, next_value, reward, terminated)
        elif value_estimator == "td1":
            target = value_kernels.td1_return_estimate(gamma, next_value, reward, done, terminated, time_dim=dim)
        else:
            target = value_kernels.td_lambda_return_estimate(
                gamma, lmbda, next_value, reward, done, terminated, time_dim=dim
            )
    except LossInputError as err:  # report under the loss's name
        raise type(err)(loss, err.entry, f"{err.message} (in {err.loss})") from err
    return target - value, target


def advantage_and_target(
    loss: str,
    td: TensorDictBase,
    keys: OnPolicyKeys,
    batch_shape: torch.Size,
    **estimator: Any,
) -> tuple[Tensor, Tensor | None]:
    """The advantage as given (graph kept), or estimated with its value target."""
    advantage = td.get(keys.advantage, None)
    if advantage is None:
        advantage, target = estimate_advantage(loss, td, keys, batch_shape, **estimator)
    else:
        check_float(loss, keys.advantage, advantage)
        target = None
    check_per_sample(loss, keys.advantage, advantage, batch_shape)
    return advantage, target


def standardize_advantage(
    advantage: Tensor, exclude_dims: tuple[int, ...] = (), valid: Tensor | None = None
) -> Tensor:
    """``(A - mean) / std`` over all but ``exclude_dims`` (TorchRL's ``normalize_advantage``).

    Without ``valid``: unbiased std clamped at float32 resolution. With a ``valid`` mask
    (TorchRL's ``"shifted_valid"``): masked population statistics, std clamped at 1e-4.
    """
    if valid is None:
        eps = torch.finfo(torch.float).resolution
        if not exclude_dims:
            return (advantage - advantage.mean()) / advantage.std().clamp_min(eps)
        excluded = {d % advantage.ndim for d in exclude_dims}
        dims = tuple(d for d in range(advantage.ndim) if d not in excluded)
        if not dims:
            return advantage
        mean = advantage.mean(dim=dims, keepdim=True)
        std = advantage.std(dim=dims, keepdim=True)
        return (advantage - mean) / std.clamp_min(eps)
    while valid.ndim < advantage.ndim:
        valid = valid.unsqueeze(-1)
    mask = valid.expand_as(advantage).to(advantage.dtype)
    excluded = {d % advantage.ndim for d in exclude_dims}
    dims = [d for d in range(advantage.ndim) if d not in excluded]
    count = mask.sum(dim=dims, keepdim=True).clamp_min(1)
    loc = (advantage * mask).sum(dim=dims, keepdim=True) / count
    scale = (((advantage - loc).pow(2) * mask).sum(dim=dims, keepdim=True) / count).sqrt().clamp_min(1e-4)
    return (advantage - loc) / scale


def check_critic_options(loss: str, loss_critic_type: str, clip_value: Any, critic_coeff: Any) -> None:
    check_choice(loss, "loss_critic_type", loss_critic_type, LOSS_FUNCTIONS)
    if clip_value is not None and not isinstance(clip_value, bool):
        check_range(loss, "clip_value", clip_value, 0.0, low_open=True)
    if critic_coeff is not None:
        check_range(loss, "critic_coeff", critic_coeff, 0.0)


def critic_terms(
    loss: str,
    td: TensorDictBase,
    keys: OnPolicyKeys,
    batch_shape: torch.Size,
    value_target: Tensor | None,
    *,
    loss_critic_type: str,
    clip_value: Any,
    log_explained_variance: bool,
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """Per-sample critic loss (not yet scaled), value clip fraction, explained variance."""
    if value_target is None:
        value_target = require(
            loss, td, keys.value_target,
            "the critic's target, written by a value estimator (GAE, TD(lambda), ...) "
            "or computed here when the advantage is absent",
        )
        check_float(loss, keys.value_target, value_target)
        check_per_sample(loss, keys.value_target, value_target, batch_shape)
    state_value = require(loss, td, keys.value, "the critic's current V(s) (with gradients)")
    check_float(loss, keys.value, state_value)
    check_shape(loss, keys.value, state_value, value_target.shape, f"the shape of {keys.value_target!r}")
    clip_fraction = None
    if clip_value is not None and not (isinstance(clip_value, bool) and not clip_value):
        old_value = require(loss, td, keys.old_value, "V(s) at collection time, needed by clip_value")
        check_float(loss, keys.old_value, old_value)
        check_shape(loss, keys.old_value, old_value, state_value.shape, f"the shape of {keys.value!r}")
        per_sample, clip_fraction = clipped_value_loss(
            value_target, state_value, old_value, clip_value, loss_critic_type
        )
    else:
        per_sample = distance_loss(value_target, state_value, loss_critic_type)
    ev = explained_variance(value_target, state_value) if log_explained_variance else None
    return per_sample, clip_fraction, ev


def entropy_term(
    loss: str,
    td: TensorDictBase,
    keys: OnPolicyKeys,
    dist: D.Distribution | None,
    batch_shape: torch.Size,
    *,
    samples_mc_entropy: int,
    generator: torch.Generator | None,
) -> Tensor:
    """Per-sample entropy ``[*B, 1]``: the ``entropy`` entry if given, else from the policy."""
    given = td.get(keys.entropy, None)
    if given is not None:
        check_float(loss, keys.entropy, given)
        check_shape(loss, keys.entropy, given, batch_shape, "the shape of the current log-prob")
        return given.unsqueeze(-1)
    if dist is None:
        raise missing(
            loss, keys.entropy,
            f"entropy_bonus needs the policy: pass {keys.actor_output!r} with dist_class, "
            f"or a precomputed {keys.entropy!r}, or set entropy_bonus=False",
        )
    return dist_entropy(dist, samples_mc_entropy, generator=generator, loss=loss).unsqueeze(-1)


def check_samples(loss: str, name: str, n: Any) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise HyperparameterError(loss, name, f"expected a positive integer, got {n!r}")

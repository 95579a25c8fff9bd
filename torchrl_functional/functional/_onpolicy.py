"""Pieces shared by the on-policy TensorDict losses (PPO family, A2C, REINFORCE):
the current policy and its log-prob (one head or a composite of several), the behaviour
log-prob, the advantage (given or estimated), the critic term and the entropy term. Each
reads its entries once, checks them and names them in errors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from tensordict import TensorDictBase
from torch import Tensor
from torch import distributions as D

from ..errors import EntryDtypeError, EntryShapeError, HyperparameterError
from . import composite as C
from ._td import (
    check_bool,
    check_constant,
    check_finite_leaves,
    check_float,
    check_per_sample,
    check_shape,
    entry,
    hyperparameter,
    missing,
    next_key,
    read_float,
    require,
    time_dim_of,
)
from ._validation import check_range
from .distributions import build_distribution, is_continuous
from .distributions import entropy as dist_entropy
from .estimators import broadcast_to_agents, estimator_name, value_target
from .keys import OnPolicyKeys
from .standardization import standardize
from .value_learning import LOSS_FUNCTIONS, clipped_value_loss, distance_loss, explained_variance

_ACTOR_HINT = (
    "pass the current policy's distribution parameters under {actor_output!r} "
    "(with dist_class) or its log-prob of the action under {log_prob!r}"
)

DistClass = Callable[..., D.Distribution]


@dataclass
class Policy:
    """The current policy on the batch, read and checked once."""

    log_prob: Tensor  # [*B], summed over the heads of a composite policy; carries the policy gradient
    dist: D.Distribution | None
    batch_shape: torch.Size
    heads: dict | None = None  # per-head log-probs of a composite policy


def _select(td: TensorDictBase, key: Any) -> TensorDictBase:
    return td.select(*(key if isinstance(key, list) else [key]), strict=False)


def read_params(loss: str, td: TensorDictBase, key: Any) -> Any:
    """Distribution keyword arguments under ``key`` (a sub-TensorDict, or a list of entries each
    passed under its last key element), or ``None`` when absent."""
    if not isinstance(key, list):
        params = entry(td, key)
        if params is not None:
            check_finite_leaves(loss, key, params)
        return params
    found = {k: entry(td, k) for k in key}
    if all(v is None for v in found.values()):
        return None
    params = {}
    for k, v in found.items():
        if v is None:
            raise missing(loss, k, f"a distribution parameter listed in {key!r}")
        check_finite_leaves(loss, k, v)
        params[k[-1] if isinstance(k, tuple) else k] = v
    return params


def read_behaviour(loss: str, td: TensorDictBase, keys: OnPolicyKeys) -> Tensor | TensorDictBase:
    """The behaviour log-prob: a tensor, or per-head log-probs (a list of keys)."""
    hint = "the behaviour policy's log-prob of the action, written by the collector"
    if isinstance(keys.sample_log_prob, list):
        prev = _select(td, keys.sample_log_prob)
        for key in keys.sample_log_prob:
            x = read_float(loss, td, key, hint)
            check_constant(loss, key, x, "the behaviour log-prob must be a constant of the data")
        return prev
    prev = read_float(loss, td, keys.sample_log_prob, hint)
    check_constant(loss, keys.sample_log_prob, prev, "the behaviour log-prob must be a constant of the data")
    return prev


def _composite_batch_shape(td: TensorDictBase, keys: OnPolicyKeys, prev: Any) -> tuple[torch.Size, Any]:
    """TorchRL reduces a composite policy's heads to the advantage's batch shape (the behaviour
    log-prob's when it is one summed tensor); returns it and the entry it was read from."""
    if isinstance(prev, Tensor):
        return prev.shape, keys.sample_log_prob
    for key in (keys.advantage, keys.value, keys.value_target):
        x = entry(td, key)
        if isinstance(x, Tensor) and x.ndim >= 1:
            return x.shape[:-1], key
    return td.batch_size, "batch_size"


def current_policy(
    loss: str,
    td: TensorDictBase,
    keys: OnPolicyKeys,
    dist_class: DistClass | None,
    prev: Any = None,
    *,
    params_key: Any = None,
) -> Policy:
    """The current policy and its log-prob of the stored action.

    ``prev`` (the behaviour log-prob) fixes the batch shape of a composite policy when it is a
    single tensor. ``params_key`` reads the parameters from another entry (a proximal policy).
    """
    params_key = keys.actor_output if params_key is None else params_key
    params = read_params(loss, td, params_key)
    if params is None:
        log_prob = entry(td, keys.log_prob)
        if log_prob is None:
            raise missing(loss, params_key, _ACTOR_HINT.format(actor_output=params_key, log_prob=keys.log_prob))
        check_float(loss, keys.log_prob, log_prob)
        return Policy(log_prob, None, log_prob.shape)
    dist = build_distribution(loss, params_key, dist_class, params)
    if C.is_composite(dist):
        heads = C.head_log_probs(loss, dist, _select(td, keys.action), params_key)
        batch_shape, source = _composite_batch_shape(td, keys, prev)
        try:
            total = C.sum_heads(loss, heads, batch_shape)
        except EntryShapeError as err:
            raise EntryShapeError(
                loss, source, f"has shape {tuple(entry(td, source).shape) if source != 'batch_size' else tuple(batch_shape)}: "
                f"its batch shape {tuple(batch_shape)} is not one the composite policy's heads have ({err.message})",
            ) from err
        return Policy(total, dist, batch_shape, heads)
    action = require(loss, td, keys.action, "the action taken, written by the collector")
    check_constant(loss, keys.action, action, "the action must be a constant of the data")
    if is_continuous(dist) and not action.is_floating_point():
        raise EntryDtypeError(
            loss, keys.action, f"{type(dist).__name__} is continuous: expected a floating point action, got {action.dtype}"
        )
    shapes = (
        f"action shape {tuple(action.shape)}, while the distribution built from {params_key!r} has "
        f"batch shape {tuple(dist.batch_shape)} and event shape {tuple(dist.event_shape)}"
    )
    try:
        log_prob = dist.log_prob(action)
    except (RuntimeError, ValueError, IndexError) as err:
        raise EntryShapeError(loss, keys.action, f"cannot be scored: {shapes} ({err})") from err
    if log_prob.shape != dist.batch_shape:
        raise EntryShapeError(loss, keys.action, f"would broadcast: {shapes} (log-prob shape {tuple(log_prob.shape)})")
    return Policy(log_prob, dist, log_prob.shape)


def log_ratio(loss: str, policy: Policy, other: Tensor | TensorDictBase | Policy, keys: OnPolicyKeys) -> Tensor:
    """``log pi - log pi_other`` ``[*B]`` (per head, then summed, for a composite policy)."""
    if isinstance(other, Policy):
        if policy.heads is not None and other.heads is not None:
            return C.sum_heads(loss, {k: v - other.heads[k] for k, v in policy.heads.items()}, policy.batch_shape)
        return policy.log_prob - other.log_prob
    if isinstance(other, Tensor):
        check_shape(loss, keys.sample_log_prob, other, policy.batch_shape, "the batch shape of the current log-prob")
        return policy.log_prob - other
    if policy.heads is None:
        raise EntryShapeError(
            loss, keys.sample_log_prob, "several behaviour log-probs need a composite policy (several action heads)"
        )
    diffs = {}
    for key, prev in other.items(True, True):
        current = policy.heads.get(key if isinstance(key, str) or len(key) > 1 else key[0])
        if current is None:
            raise EntryShapeError(
                loss, key, f"names no head of the composite policy (its log-probs: {sorted(map(str, policy.heads))})"
            )
        check_shape(loss, key, prev, current.shape, "the shape of that head's current log-prob")
        diffs[key] = current - prev
    return C.sum_heads(loss, diffs, policy.batch_shape)


def _values(loss: str, td: TensorDictBase, keys: OnPolicyKeys, batch_shape: torch.Size, kind: str):
    hint = f"needed to estimate the advantage (or pass {keys.advantage!r} precomputed)"
    reward = require(loss, td, next_key(keys.reward), hint)
    done = require(loss, td, next_key(keys.done), hint)
    terminated = entry(td, next_key(keys.terminated))
    value = require(loss, td, keys.value, "the critic's V(s), " + hint)
    next_value = require(loss, td, next_key(keys.value), "the critic's V(s'), " + hint)
    for key, x in ((keys.value, value), (next_key(keys.value), next_value)):
        check_float(loss, key, x)
        check_per_sample(loss, key, x, batch_shape)
    check_float(loss, next_key(keys.reward), reward)
    for key, x in ((next_key(keys.done), done), (next_key(keys.terminated), terminated)):
        if x is not None:
            check_bool(loss, key, x)
    team = kind == "magae" and reward.ndim == value.ndim - 1
    for key, x in ((next_key(keys.reward), reward), (next_key(keys.done), done), (next_key(keys.terminated), terminated)):
        if x is not None:
            want = value.shape[:-2] + value.shape[-1:] if team else value.shape
            check_shape(loss, key, x, want, f"the shape of {keys.value!r}" + (" without its agent dim" if team else ""))
    if team:  # MultiAgentGAE: team signals are shared by the agents (agent dim -2 of the values)
        reward, done = (broadcast_to_agents(x, value, -2, loss, k) for k, x in (("reward", reward), ("done", done)))
        terminated = None if terminated is None else broadcast_to_agents(terminated, value, -2, loss, "terminated")
    return value, next_value, reward, done, terminated


def estimate_advantage(
    loss: str,
    td: TensorDictBase,
    keys: OnPolicyKeys,
    batch_shape: torch.Size,
    *,
    value_estimator: Any,
    gamma: Any,
    lmbda: Any,
    time_dim: int | None,
    rho_thresh: Any = 1.0,
    c_thresh: Any = 1.0,
    log_pi: Tensor | None = None,
    log_mu: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Advantage and value target from rewards and (detached) values.

    ``V(s)`` and ``V(s')`` are detached (TorchRL runs its estimator with detached critic
    parameters); ``gamma``, ``lmbda`` and the reward keep their graphs. Time is the
    TensorDict's ``"time"``-named batch dim, else its last batch dim (or ``time_dim``).
    V-trace uses ``log_pi``/``log_mu`` ``[*B]`` (the current and behaviour log-probs, detached).
    """
    kind = estimator_name(value_estimator, loss)
    gamma = hyperparameter(loss, td, "gamma", gamma, batch_shape)
    if kind in ("td_lambda", "gae", "magae"):
        lmbda = hyperparameter(loss, td, "lmbda", lmbda, batch_shape)
    if kind == "vtrace":
        check_range(loss, "rho_thresh", rho_thresh, 0.0, low_open=True)
        check_range(loss, "c_thresh", c_thresh, 0.0, low_open=True)
    value, next_value, reward, done, terminated = _values(loss, td, keys, batch_shape, kind)
    dim = time_dim_of(td, time_dim, loss=loss)
    if kind == "vtrace":
        log_pi = log_pi.detach().reshape(value.shape[:-1]).unsqueeze(-1).expand_as(value)
        log_mu = log_mu.detach().reshape(value.shape[:-1]).unsqueeze(-1).expand_as(value)
    advantage, target = value_target(
        kind, gamma=gamma, lmbda=lmbda, state_value=value.detach(), next_state_value=next_value.detach(),
        reward=reward, done=done, terminated=terminated, time_dim=dim, log_pi=log_pi, log_mu=log_mu,
        rho_thresh=rho_thresh, c_thresh=c_thresh, loss=loss,
    )
    return advantage, target


def advantage_and_target(
    loss: str,
    td: TensorDictBase,
    keys: OnPolicyKeys,
    batch_shape: torch.Size,
    **estimator: Any,
) -> tuple[Tensor, Tensor | None]:
    """The advantage as given (graph kept), or estimated with its value target."""
    advantage = entry(td, keys.advantage)
    if advantage is None:
        advantage, target = estimate_advantage(loss, td, keys, batch_shape, **estimator)
    else:
        check_float(loss, keys.advantage, advantage)
        if advantage.shape == batch_shape and len(batch_shape):
            raise EntryShapeError(
                loss, keys.advantage,
                f"has shape {tuple(advantage.shape)}: against the [*B, 1] log-weights it would broadcast to an "
                "outer product over samples; add the trailing value dimension (advantage.unsqueeze(-1))",
            )
        target = None
    check_per_sample(loss, keys.advantage, advantage, batch_shape)
    return advantage, target


def scale_advantage(
    loss: str,
    advantage: Tensor,
    td: TensorDictBase,
    *,
    normalize_advantage: bool,
    normalize_advantage_exclude_dims: tuple[int, ...],
    advantage_scale: Any,
) -> Tensor:
    """``A / advantage_scale`` (a ``ValueNorm``'s scale) or, with ``normalize_advantage``, the
    batch-standardised advantage (TorchRL's order; the two are exclusive)."""
    if advantage_scale is not None:
        if normalize_advantage:
            raise HyperparameterError(
                loss, "advantage_scale", "normalize_advantage=True and advantage_scale are mutually exclusive"
            )
        check_range(loss, "advantage_scale", advantage_scale, 0.0, low_open=True)
        return advantage / advantage_scale
    if normalize_advantage and advantage.numel() > 1:
        valid = entry(td, "shifted_valid")
        if valid is None:
            eps = torch.finfo(torch.float).resolution
            return standardize(advantage, exclude_dims=tuple(normalize_advantage_exclude_dims), eps=eps)
        return standardize(advantage, exclude_dims=tuple(normalize_advantage_exclude_dims), mask=valid)
    return advantage


def check_critic_options(loss: str, loss_critic_type: str, clip_value: Any, critic_coeff: Any) -> None:
    from ._validation import check_choice

    check_choice(loss, "loss_critic_type", loss_critic_type, LOSS_FUNCTIONS)
    if clip_value is not None and not isinstance(clip_value, bool):
        check_range(loss, "clip_value", clip_value, 0.0, low_open=True)
    if critic_coeff is not None:
        check_range(loss, "critic_coeff", critic_coeff, 0.0)


def read_value_target(
    loss: str, td: TensorDictBase, keys: OnPolicyKeys, batch_shape: torch.Size, value_target: Tensor | None
) -> Tensor:
    """The critic's target: ``value_target`` if estimated by the loss, else the checked entry."""
    if value_target is not None:
        return value_target
    value_target = require(
        loss, td, keys.value_target,
        "the critic's target, written by a value estimator (GAE, TD(lambda), ...) "
        "or computed here when the advantage is absent",
    )
    check_float(loss, keys.value_target, value_target)
    check_per_sample(loss, keys.value_target, value_target, batch_shape)
    return value_target


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
    normalize: Callable[[Tensor], Tensor] | None = None,
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """Per-sample critic loss (not yet scaled), value clip fraction, explained variance.

    ``normalize`` (a value normaliser with its statistics) maps the detached target, ``V(s)``
    and the old ``V(s)`` before the distance, the clipping and the explained variance
    (TorchRL's ``_critic_loss_inputs`` hook, used by ``MAPPOLoss``'s ``value_norm``)."""
    value_target = read_value_target(loss, td, keys, batch_shape, value_target)
    state_value = read_float(loss, td, keys.value, "the critic's current V(s) (with gradients)",
                             value_target.shape, f"the shape of {keys.value_target!r}")
    if normalize is not None:
        value_target, state_value = normalize(value_target.detach()), normalize(state_value)
    clip_fraction = None
    if clip_value is not None and not (isinstance(clip_value, bool) and not clip_value):
        old_value = read_float(loss, td, keys.old_value, "V(s) at collection time, needed by clip_value",
                               state_value.shape, f"the shape of {keys.value!r}")
        if normalize is not None:
            old_value = normalize(old_value)
        per_sample, clip_fraction = clipped_value_loss(
            value_target, state_value, old_value, clip_value, loss_critic_type
        )
    else:
        per_sample = distance_loss(value_target, state_value, loss_critic_type)
    ev = explained_variance(value_target, state_value) if log_explained_variance else None
    return per_sample, clip_fraction, ev


def entropy_terms(
    loss: str,
    td: TensorDictBase,
    keys: OnPolicyKeys,
    policy: Policy,
    *,
    samples_mc_entropy: int,
    generator: torch.Generator | None,
    joint_mc: bool = False,
) -> tuple[Tensor, TensorDictBase | None]:
    """Per-sample entropy ``[*B, 1]`` and, for a composite policy, the per-head entropies
    (TensorDict of batch ``[*B, 1]``). The ``entropy`` entry is used if given.

    ``joint_mc``: a composite policy's entropy is one reparameterised Monte-Carlo estimate over
    every head, without per-head values (TorchRL's ``A2CLoss``).
    """
    given = entry(td, keys.entropy)
    if given is not None:
        check_float(loss, keys.entropy, given)
        check_shape(loss, keys.entropy, given, policy.batch_shape, "the shape of the current log-prob")
        return given.unsqueeze(-1), None
    dist = policy.dist
    if dist is None:
        raise missing(
            loss, keys.entropy,
            f"entropy_bonus needs the policy: pass {keys.actor_output!r} with dist_class, "
            f"or a precomputed {keys.entropy!r}, or set entropy_bonus=False",
        )
    if not C.is_composite(dist):
        return dist_entropy(dist, samples_mc_entropy, generator=generator, loss=loss).unsqueeze(-1), None
    if joint_mc:
        return C.joint_entropy(loss, dist, samples_mc_entropy, policy.batch_shape, generator=generator).unsqueeze(-1), None
    heads = C.composite_entropy(
        loss, dist, samples_mc_entropy, generator=generator, log_prob_keys=keys.sample_log_prob
    )
    return C.sum_heads(loss, heads, policy.batch_shape).unsqueeze(-1), C.per_head_td(heads, policy.batch_shape)


def check_samples(loss: str, name: str, n: Any) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise HyperparameterError(loss, name, f"expected a positive integer, got {n!r}")

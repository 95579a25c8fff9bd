"""Dreamer's world-model, actor and value losses as pure functions of precomputed outputs.

Hafner et al. 2020, "Dream to Control: Learning Behaviors by Latent Imagination"
(arXiv 1912.01603). Same outputs and numbers as TorchRL 0.14's ``DreamerModelLoss``,
``DreamerActorLoss`` and ``DreamerValueLoss``. The world model, the imagined rollout and
the value model run elsewhere (the drop-in modules run them as TorchRL does); these
functions read their outputs. The lambda-return is computed by the value kernels of
:mod:`torchrl_functional.functional.value` through :func:`~torchrl_functional.functional.value_target`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor

from ...errors import EntryShapeError, HyperparameterError
from .._offpolicy import check_input
from .._td import check_bool, check_per_sample, check_shape, entry, next_key, pack, read_float, require, time_dim_of
from .._validation import check_choice, check_unit_interval
from ..estimators import estimator_name, value_target
from ..keys import resolve_keys
from ..value import _as_factor
from ..value_learning import LOSS_FUNCTIONS, distance_loss
from .keys import DreamerActorKeys, DreamerModelKeys, DreamerValueKeys, NestedKey

__all__ = ["dreamer_model_loss", "dreamer_actor_loss", "dreamer_value_loss"]

Number = float | Tensor

#: the estimators TorchRL's ``DreamerActorLoss`` accepts
ACTOR_ESTIMATORS = ("td0", "td1", "td_lambda")


def _check_number(loss: str, name: str, x: Any) -> None:
    if isinstance(x, bool) or not isinstance(x, (int, float, Tensor)):
        raise HyperparameterError(loss, name, f"expected a number or a tensor, got {type(x).__name__}")
    if isinstance(x, Tensor) and x.ndim != 0:
        raise HyperparameterError(loss, name, f"expected a 0-d tensor, got shape {tuple(x.shape)}")


def _step_discount(loss: str, gamma: Number, like: Tensor, dim: int) -> Tensor:
    """``gamma ** t`` along ``dim`` as TorchRL builds it: ``gamma`` broadcast to ``like``, its first
    step set to 1, then a cumulative product (a per-step ``gamma[t]`` gives ``prod_{1..t} gamma``)."""
    gamma = _as_factor(loss, "gamma", gamma, like)
    if not isinstance(gamma, Tensor):  # a number: no graph to keep, build it in place (fewer ops)
        g = torch.full_like(like, gamma)
        g.narrow(dim, 0, 1).fill_(1.0)
        return g.cumprod(dim)
    g = torch.ones_like(like) * gamma
    first = torch.ones_like(g.narrow(dim, 0, 1))
    return torch.cat([first, g.narrow(dim, 1, g.shape[dim] - 1)], dim).cumprod(dim)


def _gaussian_kl(prior_mean: Tensor, prior_std: Tensor, posterior_mean: Tensor, posterior_std: Tensor) -> Tensor:
    """``KL(posterior || prior)`` of diagonal Gaussians, per dimension."""
    return (
        torch.log(prior_std / posterior_std)
        + (posterior_std**2 + (prior_mean - posterior_mean) ** 2) / (2 * prior_std**2)
        - 0.5
    )


# --------------------------------------------------------------------------- world model


def dreamer_model_loss(
    td: TensorDictBase,
    *,
    lambda_kl: Number = 1.0,
    lambda_reco: Number = 1.0,
    lambda_reward: Number = 1.0,
    reco_loss: str = "l2",
    reward_loss: str = "l2",
    free_nats: Number = 3.0,
    delayed_clamp: bool = False,
    global_average: bool = False,
    keys: DreamerModelKeys | Mapping[str, NestedKey] | None = None,
) -> TensorDict:
    """Dreamer's world-model loss: KL(posterior || prior) above ``free_nats``, image
    reconstruction and reward prediction.

    ``loss_model_kl = lambda_kl * mean(max(KL, free_nats))`` with ``KL`` summed over the
    state dimensions (``delayed_clamp``: the clamp after the mean), ``loss_model_reco =
    lambda_reco * mean(sum_{C,H,W} d(pixels, reco_pixels))``, ``loss_model_reward =
    lambda_reward * mean(d(true_reward, reward))``; with ``global_average`` every term is a
    plain mean over all elements. Nothing is detached: gradients reach every network output
    (the KL's through both the prior and the posterior, as in TorchRL).

    Args:
        td: input TensorDict of batch ``[*B]`` (not modified); entries under ``"next"``
            (see :class:`DreamerModelKeys`): ``prior_mean``, ``prior_std``, ``posterior_mean``,
            ``posterior_std`` ``[*B, S]``; ``pixels``, ``reco_pixels`` ``[*B, C, H, W]``;
            ``true_reward``, ``reward`` ``[*B, F]``.
        lambda_kl, lambda_reco, lambda_reward: weights of the three terms (numbers or 0-d tensors).
        reco_loss, reward_loss: ``"l2"``, ``"l1"`` or ``"smooth_l1"``.
        free_nats: KL floor (number or 0-d tensor).
        delayed_clamp: clamp the mean KL instead of each sample's KL.
        global_average: average over every dimension instead of summing the feature dims.
        keys: entry names (:class:`DreamerModelKeys` or a mapping).

    Returns:
        TensorDict with ``loss_model_kl``, ``loss_model_reco``, ``loss_model_reward``, each of shape ``[1]``.
    """
    name = "dreamer_model_loss"
    check_input(name, td)
    check_choice(name, "reco_loss", reco_loss, LOSS_FUNCTIONS)
    check_choice(name, "reward_loss", reward_loss, LOSS_FUNCTIONS)
    for hp, x in (("lambda_kl", lambda_kl), ("lambda_reco", lambda_reco), ("lambda_reward", lambda_reward),
                  ("free_nats", free_nats)):
        _check_number(name, hp, x)
    keys = resolve_keys(keys, DreamerModelKeys, name)
    batch = td.batch_size
    hint = "written by the world model (RSSM rollout) under 'next'"
    stats = {}
    for field in ("prior_mean", "prior_std", "posterior_mean", "posterior_std"):
        key = next_key(getattr(keys, field))
        stats[field] = read_float(name, td, key, hint)
        check_per_sample(name, key, stats[field], batch)
        if field != "prior_mean":
            check_shape(name, key, stats[field], stats["prior_mean"].shape, f"the shape of {next_key(keys.prior_mean)!r}")
    pixels_key, reco_key = next_key(keys.pixels), next_key(keys.reco_pixels)
    pixels = read_float(name, td, pixels_key, "the observed image, from the replay buffer")
    if pixels.ndim != len(batch) + 3 or pixels.shape[: len(batch)] != batch:
        raise EntryShapeError(name, pixels_key, f"expected an image batch {tuple(batch) + ('C', 'H', 'W')}, "
                                                f"got {tuple(pixels.shape)}")
    reco = read_float(name, td, reco_key, "written by the world model's decoder under 'next'")
    check_shape(name, reco_key, reco, pixels.shape, f"the shape of {pixels_key!r}")
    true_key, pred_key = next_key(keys.true_reward), next_key(keys.reward)
    true_reward = read_float(name, td, true_key, "the observed reward (TorchRL renames ('next', 'reward') to it)")
    check_per_sample(name, true_key, true_reward, batch)
    pred_reward = read_float(name, td, pred_key, "written by the world model's reward model under 'next'")
    check_shape(name, pred_key, pred_reward, true_reward.shape, f"the shape of {true_key!r}")

    kl = _gaussian_kl(stats["prior_mean"], stats["prior_std"], stats["posterior_mean"], stats["posterior_std"])
    if not global_average:
        kl = kl.sum(-1)
    kl = kl.mean().clamp_min(free_nats) if delayed_clamp else kl.clamp_min(free_nats).mean()
    reco_term = distance_loss(pixels.contiguous(), reco.contiguous(), reco_loss)
    if not global_average:
        reco_term = reco_term.sum((-3, -2, -1))
    reward_term = distance_loss(true_reward, pred_reward, reward_loss)
    if not global_average:
        reward_term = reward_term.squeeze(-1)
    return pack(
        {
            "loss_model_kl": lambda_kl * kl.unsqueeze(-1),
            "loss_model_reco": lambda_reco * reco_term.mean().unsqueeze(-1),
            "loss_model_reward": lambda_reward * reward_term.mean().unsqueeze(-1),
        },
    )


# --------------------------------------------------------------------------- actor


def dreamer_actor_loss(
    td: TensorDictBase,
    *,
    gamma: Number = 0.99,
    lmbda: Number = 0.95,
    value_estimator: Any = "td_lambda",
    discount_loss: bool = True,
    returns_over_horizon: bool = False,
    time_dim: int | None = None,
    keys: DreamerActorKeys | Mapping[str, NestedKey] | None = None,
) -> TensorDict:
    """Dreamer's actor loss: minus the (discounted) sum of the lambda-returns along an
    imagined trajectory.

    ``loss_actor = -mean_B sum_t gamma^t G_t`` (``discount_loss``; else without ``gamma^t``),
    ``G`` the return of ``value_estimator`` (TD(0), TD(1), TD(lambda)) from the imagined
    rewards and next-state values. Gradients flow into ``G`` through the rewards and values
    (the actor's reparameterised actions in the rollout), and to ``gamma``/``lmbda``.

    **Time axis of the return.** TorchRL 0.14.1 evaluates its estimator on a TensorDict with
    no batch dimension, so the estimator's time axis falls on the trailing feature dim of
    size 1: every step is its own trajectory and every estimator gives the one-step target
    ``r + gamma * (1 - terminated) * V(s')``. That is the default here (same numbers as
    TorchRL). ``returns_over_horizon=True`` runs the return along the imagination horizon
    (the paper's lambda-return).

    Args:
        td: the imagined trajectory, batch ``[*B, H]`` (time: the ``"time"``-named batch
            dim, else the last; not modified); entries under ``"next"`` (see
            :class:`DreamerActorKeys`): ``reward`` and ``state_value`` ``[*B, H, F]``,
            ``done`` bool ``[*B, H, F]``, optional ``terminated`` (defaults to ``done``).
        gamma: discount (number or tensor, differentiable); also the loss's ``gamma^t``.
        lmbda: TD(lambda)'s trace decay (number or tensor, differentiable).
        value_estimator: ``"td0"``, ``"td1"``, ``"td_lambda"`` or a ``ValueEstimators`` member.
        discount_loss: weight step ``t`` by ``gamma^t``.
        returns_over_horizon: compute the return along the horizon (see above).
        time_dim: the batch dim holding the horizon (default: TorchRL's rule).
        keys: entry names (:class:`DreamerActorKeys` or a mapping).

    Returns:
        TensorDict with ``loss_actor`` (scalar) and ``lambda_target`` ``[*B, H, F]`` (detached).
    """
    name = "dreamer_actor_loss"
    check_input(name, td)
    kind = estimator_name(value_estimator, name)
    check_choice(name, "value_estimator", kind, ACTOR_ESTIMATORS)
    keys = resolve_keys(keys, DreamerActorKeys, name)
    t = time_dim_of(td, time_dim, loss=name)
    hint = "of the imagined trajectory (the module's rollout in the world model)"
    reward_key, value_key = next_key(keys.reward), next_key(keys.value)
    reward = read_float(name, td, reward_key, "the imagined reward " + hint)
    check_per_sample(name, reward_key, reward, td.batch_size)
    value = read_float(name, td, value_key, "the value model at the next imagined state " + hint)
    check_shape(name, value_key, value, reward.shape, f"the shape of {reward_key!r}")
    flags = {}
    for field in ("done", "terminated"):
        key = next_key(getattr(keys, field))
        flag = entry(td, key) if field == "terminated" else require(name, td, key, "the done flags " + hint)
        if flag is not None:
            check_bool(name, key, flag)
            check_shape(name, key, flag, reward.shape, f"the shape of {reward_key!r}")
        flags[field] = flag
    if kind == "td_lambda":
        check_unit_interval(name, "lmbda", lmbda)
    check_unit_interval(name, "gamma", gamma)
    _, target = value_target(
        kind, gamma=gamma, lmbda=lmbda if kind == "td_lambda" else None, next_state_value=value, reward=reward,
        done=flags["done"], terminated=flags["terminated"], time_dim=t if returns_over_horizon else -1, loss=name,
    )
    if discount_loss:
        weighted = target * _step_discount(name, gamma, target, t)
    else:
        weighted = target
    loss = -weighted.sum((t, -1)).mean()
    return pack({"loss_actor": loss, "lambda_target": target.detach()})


# --------------------------------------------------------------------------- value


def dreamer_value_loss(
    td: TensorDictBase,
    *,
    value_loss: str = "l2",
    discount_loss: bool = True,
    gamma: Number = 0.99,
    time_dim: int | None = None,
    keys: DreamerValueKeys | Mapping[str, NestedKey] | None = None,
) -> TensorDict:
    """Dreamer's value loss: the (discounted) distance between the value model's predictions
    and the actor loss's lambda-returns along an imagined trajectory.

    ``loss_value = mean_B sum_t gamma^t d(V(s_t), G_t)`` (``discount_loss``; else without
    ``gamma^t``). Gradients reach the value prediction (and ``gamma``); the lambda-return is
    used as given (:func:`dreamer_actor_loss` returns it detached).

    Args:
        td: batch ``[*B, H]`` (time: the ``"time"``-named batch dim, else the last; not
            modified); entries (see :class:`DreamerValueKeys`): ``state_value`` and
            ``lambda_target`` ``[*B, H, F]``.
        value_loss: ``"l2"``, ``"l1"`` or ``"smooth_l1"``.
        discount_loss: weight step ``t`` by ``gamma^t``.
        gamma: discount (number or tensor, differentiable).
        time_dim: the batch dim holding the horizon (default: TorchRL's rule).
        keys: entry names (:class:`DreamerValueKeys` or a mapping).

    Returns:
        TensorDict with ``loss_value`` (scalar).
    """
    name = "dreamer_value_loss"
    check_input(name, td)
    check_choice(name, "value_loss", value_loss, LOSS_FUNCTIONS)
    keys = resolve_keys(keys, DreamerValueKeys, name)
    t = time_dim_of(td, time_dim, loss=name)
    value = read_float(name, td, keys.value, "written by the value model")
    check_per_sample(name, keys.value, value, td.batch_size)
    target = read_float(name, td, keys.lambda_target, "written by the actor loss (dreamer_actor_loss)")
    check_shape(name, keys.lambda_target, target, value.shape, f"the shape of {keys.value!r}")
    distance = distance_loss(value, target, value_loss)
    if discount_loss:  # gamma checked by the discount
        distance = _step_discount(name, gamma, target, t) * distance
    else:
        check_unit_interval(name, "gamma", gamma)
    return pack({"loss_value": distance.sum((t, -1)).mean()})

"""One entry point for value targets and advantages, shared by every loss.

:func:`value_target` dispatches TD(0), TD(1), TD(lambda), GAE and V-trace to the kernels of
:mod:`.value`. :func:`estimate_advantage` adds, as pure functions, what TorchRL's estimator
classes (``TD0Estimator``, ``TD1Estimator``, ``TDLambdaEstimator``, ``GAE``,
``MultiAgentGAE``, ``VTrace``) do around the kernel: n-step discounts
(``steps_to_next_obs``), reward and advantage standardisation (``average_rewards``,
``average_gae``, ``average_adv``, per group with ``group_key``), ``auto_reset_env``,
team signals broadcast to agents, and the ``shifted_valid`` mask of shifted value calls.
Nothing is detached here: callers decide what carries gradients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..errors import EntryShapeError, HyperparameterError, LossInputError
from . import value as kernels
from .standardization import standardize, standardize_by_group
from .vtrace import vtrace_advantage_estimate

__all__ = ["VALUE_ESTIMATORS", "estimator_name", "value_target", "EstimatorOptions", "estimate_advantage"]

#: Canonical estimator names (a :class:`~torchrl.objectives.utils.ValueEstimators` member or
#: TorchRL's lowercase alias is accepted wherever one of these is).
VALUE_ESTIMATORS = ("td0", "td1", "td_lambda", "gae", "magae", "vtrace")
_ALIASES = {
    "td0": "td0", "td1": "td1", "td": "td1", "td_lambda": "td_lambda", "tdlambda": "td_lambda",
    "gae": "gae", "magae": "magae", "vtrace": "vtrace", "v_trace": "vtrace",
}

Scalar = float | Tensor


def estimator_name(value_estimator: Any, loss: str = "value_target") -> str:
    """The canonical name of ``value_estimator``: a string alias (``"gae"``, ``"td_lambda"``,
    ``"tdlambda"``, ``"vtrace"`` ...) or a ``ValueEstimators`` member (``ValueEstimators.TDLambda``).

    Args:
        value_estimator: the name or member.
        loss: name used in error messages.

    Returns:
        One of :data:`VALUE_ESTIMATORS`.
    """
    name = getattr(value_estimator, "name", value_estimator)  # an Enum member: its name
    if isinstance(name, str):
        canonical = _ALIASES.get(name.lower())
        if canonical is not None:
            return canonical
    raise HyperparameterError(
        loss, "value_estimator", f"expected one of {VALUE_ESTIMATORS} or a ValueEstimators member, got {value_estimator!r}"
    )


def value_target(
    value_estimator: Any,
    *,
    gamma: Scalar,
    next_state_value: Tensor,
    reward: Tensor,
    done: Tensor,
    terminated: Tensor | None = None,
    state_value: Tensor | None = None,
    lmbda: Scalar | None = None,
    time_dim: int = -2,
    steps_to_next_obs: Tensor | None = None,
    log_pi: Tensor | None = None,
    log_mu: Tensor | None = None,
    rho_thresh: Scalar = 1.0,
    c_thresh: Scalar = 1.0,
    loss: str = "value_target",
) -> tuple[Tensor | None, Tensor]:
    """Advantage and value target with the named estimator (the one dispatcher of the package).

    Args:
        value_estimator: ``"td0"``, ``"td1"``, ``"td_lambda"``, ``"gae"`` (``"magae"``: same
            kernel), ``"vtrace"`` or a ``ValueEstimators`` member.
        gamma: discount (number, 0-d or broadcastable tensor; differentiable).
        next_state_value: ``V(s')`` ``[*B, T, *F]`` (``[*B, *F]`` for TD(0)).
        reward, done, terminated: same shape; ``terminated`` defaults to ``done``.
        state_value: ``V(s)``; needed by GAE and V-trace; when given, the advantage is
            ``target - V(s)`` for the TD estimators.
        lmbda: trace decay (TD(lambda), GAE).
        time_dim: the time dim of the tensors.
        steps_to_next_obs: n-step data: ``gamma ** steps_to_next_obs`` discounts each bootstrap.
        log_pi, log_mu: V-trace's target and behaviour log-probs of the action, like ``state_value``.
        rho_thresh, c_thresh: V-trace truncation levels.
        loss: name used in error messages.

    Returns:
        ``(advantage or None, value_target)``, like ``next_state_value``. Nothing is detached.
    """
    kind = estimator_name(value_estimator, loss)
    if steps_to_next_obs is not None:
        gamma = nstep_discount(gamma, steps_to_next_obs, reward)
    try:
        if kind in ("gae", "magae"):
            if state_value is None or lmbda is None:
                raise HyperparameterError(loss, "value_estimator", "GAE needs state_value and lmbda")
            return kernels.generalized_advantage_estimate(
                gamma, lmbda, state_value, next_state_value, reward, done, terminated, time_dim=time_dim
            )
        if kind == "vtrace":
            if state_value is None or log_pi is None or log_mu is None:
                raise HyperparameterError(loss, "value_estimator", "V-trace needs state_value, log_pi and log_mu")
            return vtrace_advantage_estimate(
                gamma, log_pi, log_mu, state_value, next_state_value, reward, done, terminated,
                rho_thresh, c_thresh, time_dim=time_dim,
            )
        if terminated is None:
            terminated = done
        if kind == "td0":
            target = kernels.td0_return_estimate(gamma, next_state_value, reward, terminated)
        elif kind == "td1":
            target = kernels.td1_return_estimate(gamma, next_state_value, reward, done, terminated, time_dim=time_dim)
        else:
            if lmbda is None:
                raise HyperparameterError(loss, "lmbda", "TD(lambda) needs lmbda")
            target = kernels.td_lambda_return_estimate(
                gamma, lmbda, next_state_value, reward, done, terminated, time_dim=time_dim
            )
    except LossInputError as err:  # report under the caller's name
        if err.loss == loss:
            raise
        raise type(err)(loss, err.entry, f"{err.message} (in {err.loss})") from err
    return (None if state_value is None else target - state_value), target


@dataclass(frozen=True)
class EstimatorOptions:
    """The options of TorchRL's estimator classes that change the numbers (their attribute names).

    Attributes:
        average_rewards: TD(0)/TD(1)/TD(lambda): standardise the rewards over the batch first.
        reward_eps: std clamp for that (TorchRL: ``1e-5`` for TD(0)/TD(1), ``1e-4`` for TD(lambda)).
        average_advantage: standardise the advantage (GAE's ``average_gae``, V-trace's ``average_adv``).
        advantage_eps: std clamp for that (GAE ``1e-4``, V-trace ``1e-5``).
        mask_average: the advantage statistics skip samples outside ``valid`` (GAE; not V-trace).
        auto_reset_env: GAE: ``r += gamma * V(s) * truncated`` and ``terminated := done``.
        agent_dim: ``MultiAgentGAE``: team signals (one dim fewer than the values) are broadcast
            along this dim of the values, and the advantage standardisation keeps it independent.
    """

    average_rewards: bool = False
    reward_eps: float = 1e-5
    average_advantage: bool = False
    advantage_eps: float = 1e-4
    mask_average: bool = True
    auto_reset_env: bool = False
    agent_dim: int | None = None


def broadcast_to_agents(x: Tensor, value: Tensor, agent_dim: int, loss: str, name: str) -> Tensor:
    """A team signal (one dim fewer than ``value``) expanded along ``agent_dim`` of ``value``
    (``MultiAgentGAE``'s rule); a per-agent signal is returned as is."""
    if x.ndim == value.ndim:
        return x
    if x.ndim != value.ndim - 1:
        raise EntryShapeError(
            loss, name, f"expected the shape of the values {tuple(value.shape)} or one dim fewer (a team signal), "
            f"got {tuple(x.shape)}",
        )
    dim = agent_dim % value.ndim
    x = x.unsqueeze(dim)
    shape = list(x.shape)
    shape[dim] = value.shape[dim]
    return x.expand(shape)


def nstep_discount(gamma: Scalar, steps: Tensor, like: Tensor) -> Tensor:
    """``gamma ** steps_to_next_obs`` for data ``like`` ``[*B, F]`` (steps ``[*B]`` or
    ``[*B, 1]``; the result ``[*B, 1]`` broadcasts over ``F``): the discount of n-step samples,
    in ``like``'s dtype (``gamma`` keeps its graph)."""
    if not isinstance(gamma, Tensor):
        gamma = torch.tensor(float(gamma), dtype=like.dtype, device=like.device)
    return gamma ** steps.reshape(*like.shape[:-1], -1)


def end_at_last_valid(valid: Tensor, done: Tensor, terminated: Tensor, time_dim: int) -> tuple[Tensor, Tensor]:
    """``(done, terminated)`` where the last ``valid`` sample of each row ends its trajectory,
    truncated (``done``, not ``terminated``: it bootstraps from ``V(s')``), as TorchRL's
    estimators treat ``"shifted_valid"`` (its ``_shifted_last_valid``)."""
    steps = valid.shape[time_dim]
    ones = torch.ones_like(valid.narrow(time_dim, 0, 1))
    last = _expand(valid & ~torch.cat([valid.narrow(time_dim, 1, steps - 1), ones], time_dim), done)
    return done | last, terminated & ~last


def _expand(mask: Tensor, like: Tensor) -> Tensor:
    while mask.ndim < like.ndim:
        mask = mask.unsqueeze(-1)
    return mask.expand_as(like)


def estimate_advantage(
    value_estimator: Any,
    options: EstimatorOptions = EstimatorOptions(),
    *,
    gamma: Scalar,
    state_value: Tensor,
    next_state_value: Tensor,
    reward: Tensor,
    done: Tensor,
    terminated: Tensor | None = None,
    lmbda: Scalar | None = None,
    time_dim: int = -2,
    steps_to_next_obs: Tensor | None = None,
    truncated: Tensor | None = None,
    valid: Tensor | None = None,
    groups: Tensor | None = None,
    log_pi: Tensor | None = None,
    log_mu: Tensor | None = None,
    rho_thresh: Scalar = 1.0,
    c_thresh: Scalar = 1.0,
    loss: str = "estimate_advantage",
) -> tuple[Tensor, Tensor]:
    """``(advantage, value_target)`` as TorchRL's estimator class of that name computes them.

    Args:
        value_estimator, gamma, lmbda, time_dim, steps_to_next_obs, log_pi, log_mu,
            rho_thresh, c_thresh: as :func:`value_target`.
        options: the estimator's options (:class:`EstimatorOptions`).
        state_value, next_state_value: ``V(s)``, ``V(s')`` ``[*B, T, *F]`` (used as given).
        reward, done, terminated: ``[*B, T, *F]``, or one dim fewer for team signals with
            ``options.agent_dim``.
        truncated: ``("next", "truncated")``, read with ``options.auto_reset_env``.
        valid: ``"shifted_valid"`` ``[*B, T]`` bool: samples past it end the trajectory there,
            their outputs are 0 and they do not count in the advantage statistics.
        groups: ids for group-wise standardisation (TorchRL's ``group_key``).
        loss: name used in error messages.

    Returns:
        ``(advantage, value_target)`` like ``state_value``. Nothing is detached.
    """
    kind = estimator_name(value_estimator, loss)
    if steps_to_next_obs is not None:
        gamma = nstep_discount(gamma, steps_to_next_obs, reward)
    if options.average_rewards and kind in ("td0", "td1", "td_lambda"):
        if groups is None:
            reward = (reward - reward.mean()) / reward.std().clamp_min(options.reward_eps)
        else:
            reward = standardize_by_group(reward, groups, eps=options.reward_eps)
    if terminated is None:
        terminated = done
    if valid is not None:
        done, terminated = end_at_last_valid(valid, done, terminated, time_dim)
    if kind in ("gae", "magae"):
        if options.agent_dim is not None:
            reward = broadcast_to_agents(reward, state_value, options.agent_dim, loss, "reward")
            done = broadcast_to_agents(done, state_value, options.agent_dim, loss, "done")
            terminated = broadcast_to_agents(terminated, state_value, options.agent_dim, loss, "terminated")
        if options.auto_reset_env:
            if truncated is None:
                raise HyperparameterError(loss, "auto_reset_env", "needs the ('next', 'truncated') entry")
            if options.agent_dim is not None:
                truncated = broadcast_to_agents(truncated, state_value, options.agent_dim, loss, "truncated")
            # bootstrap truncated steps from V(s) itself: the env was reset in place
            reward = reward + gamma * state_value * truncated
            terminated = done
    advantage, target = value_target(
        kind, gamma=gamma, next_state_value=next_state_value, reward=reward, done=done,
        terminated=terminated, state_value=state_value, lmbda=lmbda, time_dim=time_dim,
        log_pi=log_pi, log_mu=log_mu, rho_thresh=rho_thresh, c_thresh=c_thresh, loss=loss,
    )
    if options.average_advantage and kind in ("gae", "magae", "vtrace"):
        mask = valid if options.mask_average else None
        if groups is not None:
            if options.agent_dim is not None:
                agent_dim = options.agent_dim % advantage.ndim
                while groups.ndim < advantage.ndim:
                    groups = groups.unsqueeze(-1)
                agents = torch.arange(advantage.shape[agent_dim], device=advantage.device).reshape(
                    [-1 if d == agent_dim else 1 for d in range(advantage.ndim)]
                )
                groups = groups.expand(advantage.shape) * advantage.shape[agent_dim] + agents
            advantage = standardize_by_group(
                advantage, groups, None if mask is None else _expand(mask, advantage), eps=options.advantage_eps
            )
        else:
            exclude = () if options.agent_dim is None else (options.agent_dim,)
            advantage = standardize(advantage, exclude_dims=exclude, mask=mask, eps=options.advantage_eps)
    if valid is not None:
        advantage = advantage.masked_fill(~_expand(valid, advantage), 0)
        target = target.masked_fill(~_expand(valid, target), 0)
    return advantage, target

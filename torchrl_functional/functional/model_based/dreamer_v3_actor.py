"""DreamerV3's actor loss as a pure function of an imagined trajectory.

Hafner et al. 2023, "Mastering Diverse Domains through World Models" (arXiv 2301.04104).
Same outputs and numbers as TorchRL 0.14.1's ``DreamerV3ActorLoss``: the imagined rollout
(actor, dynamics, reward, continuation and critic) is run by the caller (the drop-in module
runs it as TorchRL does); the lambda-returns come from :mod:`torchrl_functional.functional.value`
and the return-percentile statistics are an input whose update is an output.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor

from ...errors import EntryShapeError, HyperparameterError, MissingEntryError
from .._td import entry, next_key, pack, read_float
from .._validation import check_range
from ..estimators import estimator_name, value_target
from ..keys import NestedKey, resolve_keys
from ..value import td_lambda_return_estimate
from .dreamer_v3_kernels import return_percentile_update, return_scale
from .keys_v3 import DreamerV3ActorKeys

__all__ = ["dreamer_v3_lambda_target", "dreamer_v3_actor_loss"]

Scalar = float | Tensor


def dreamer_v3_lambda_target(
    reward: Tensor,
    next_value: Tensor,
    continuation: Tensor | None = None,
    *,
    value_estimator: Any = "td_lambda",
    gamma: Scalar = 0.99,
    lmbda: Scalar = 0.95,
    time_dim: int = -2,
) -> Tensor:
    """Returns of an imagined trajectory: ``R[t] = r[t] + gamma c[t] ((1 - lmbda) V(s'[t]) + lmbda R[t+1])``.

    Without ``continuation`` (``c = 1``) the named estimator's return (TD(0), TD(1) or TD(lambda)),
    as TorchRL's ``lambda_target``; with it, TD(lambda) with the per-step discount ``gamma * c``
    (TD(0) and TD(1) use ``lmbda`` 0 and 1). The last step bootstraps from ``V(s'[T-1])``.

    Args:
        reward: ``[*B, T, 1]``.
        next_value: ``V(s')``, ``[*B, T, 1]``.
        continuation: predicted continuation of ``s'``, ``[*B, T, 1]`` (optional).
        value_estimator: ``"td0"``, ``"td1"``, ``"td_lambda"`` or a ``ValueEstimators`` member.
        gamma: discount (number or tensor; differentiable).
        lmbda: trace decay (number or tensor; differentiable).
        time_dim: the time dim of the estimator without continuations. ``-1`` reproduces
            TorchRL 0.14.1's ``DreamerV3ActorLoss``, whose estimator runs along the trailing
            singleton dim (every step then bootstraps from its own ``V(s')``: one-step targets).

    Returns:
        ``[*B, T, 1]``; nothing is detached.
    """
    name = "dreamer_v3_lambda_target"
    kind = estimator_name(value_estimator, name)
    if kind not in ("td0", "td1", "td_lambda"):
        raise HyperparameterError(name, "value_estimator", f"expected td0, td1 or td_lambda, got {kind!r}")
    never = torch.zeros(reward.shape, dtype=torch.bool, device=reward.device)
    if continuation is None:
        return value_target(kind, gamma=gamma, lmbda=lmbda, next_state_value=next_value, reward=reward,
                            done=never, terminated=never, time_dim=time_dim, loss=name)[1]
    trace = {"td0": 0.0, "td1": 1.0}.get(kind, lmbda)
    return td_lambda_return_estimate(gamma * continuation, trace, next_value, reward, never, never)


def dreamer_v3_actor_loss(
    td: TensorDictBase,
    *,
    value_estimator: Any = "td_lambda",
    gamma: Scalar = 0.99,
    lmbda: Scalar = 0.95,
    time_dim: int = -2,
    discount_loss: bool = True,
    entropy_bonus: Scalar = 3e-4,
    use_reinforce: bool = False,
    return_normalization: bool = True,
    return_low: Tensor | None = None,
    return_high: Tensor | None = None,
    update_return_statistics: bool = True,
    return_normalization_rate: Scalar = 0.01,
    return_normalization_quantiles: tuple[float, float] = (0.05, 0.95),
    return_normalization_min_scale: Scalar = 1.0,
    keys: DreamerV3ActorKeys | Mapping[str, NestedKey] | None = None,
) -> TensorDict:
    """DreamerV3 actor loss on an imagined trajectory: ``-E[w_t R_t / S]`` (reparameterised)
    or ``-E[w_t log pi(a_t|s_t) sg(R_t - V(s_t)) / S]`` (REINFORCE), minus ``eta E[w_t H_t]``.

    ``R`` is :func:`dreamer_v3_lambda_target`, ``w`` the cumulative imagination discount
    (``w_0 = c_0``, ``w_t = w_{t-1} gamma c_t``) and ``S = max(min_scale, high - low)`` the
    return-percentile span, after one EMA step on ``R`` when ``update_return_statistics``.
    As TorchRL, ``w``, the REINFORCE advantage and the statistics are constants of the networks
    (continuations, rewards, values detached); unlike TorchRL they keep their graph to tensor
    hyperparameters (``gamma``, ``lmbda``, the rate), so meta-gradients see every path.

    Args:
        td: the imagined trajectory (not modified), entries ``[*B, T, 1]`` (time at dim -2):

            - ``("next", "reward")``, ``("next", "state_value")``: imagined reward and ``V(s')``
              (with the rollout's graph: the reparameterised gradient flows through them);
            - optional ``"continuation"`` (of ``s``) and ``("next", "continuation")`` (of ``s'``);
            - ``"log_prob"`` and ``"state_value"`` (``V(s)``, the baseline) with ``use_reinforce``;
            - ``"entropy"`` when ``entropy_bonus`` is a tensor or positive.
        value_estimator: ``"td0"``, ``"td1"``, ``"td_lambda"`` or a ``ValueEstimators`` member.
        gamma: discount of the returns and of the weights.
        lmbda: trace decay of the returns.
        time_dim: time dim of the returns without continuations (``-1``: TorchRL 0.14.1's
            one-step targets, see :func:`dreamer_v3_lambda_target`).
        discount_loss: weight each step by ``w_t`` (else 1).
        entropy_bonus: ``eta``.
        use_reinforce: the score-function estimator instead of the reparameterised one.
        return_normalization: divide by ``S`` (else ``S = 1``).
        return_low: ``[1]`` or 0-d EMA of the low return quantile (default 0).
        return_high: same, of the high quantile (default 0).
        update_return_statistics: take one EMA step before normalising (TorchRL in training mode).
        return_normalization_rate: EMA rate in ``[0, 1]``.
        return_normalization_quantiles: low and high quantile levels.
        return_normalization_min_scale: lower bound of ``S`` (positive).
        keys: :class:`DreamerV3ActorKeys` or a mapping of renamed entries.

    Returns:
        ``loss_actor``, ``actor_entropy``, ``return_low``, ``return_high``, ``return_scale``,
        ``continuation_mean`` (0-d, all but ``loss_actor`` detached; ``return_low``/``return_high``
        are the updated statistics), plus ``lambda_target`` and ``discount_weight`` ``[*B, T, 1]``.
    """
    name = "dreamer_v3_actor_loss"
    k = resolve_keys(keys, DreamerV3ActorKeys, name)
    check_range(name, "gamma", gamma, 0.0, 1.0)
    check_range(name, "lmbda", lmbda, 0.0, 1.0)
    check_range(name, "entropy_bonus", entropy_bonus, 0.0)
    check_range(name, "return_normalization_rate", return_normalization_rate, 0.0, 1.0)
    check_range(name, "return_normalization_min_scale", return_normalization_min_scale, 0.0, low_open=True)
    low_q, high_q = return_normalization_quantiles
    if not 0 <= low_q < high_q <= 1:
        raise HyperparameterError(name, "return_normalization_quantiles",
                                  f"expected 0 <= low < high <= 1, got {return_normalization_quantiles}")
    if td.ndim < 1:
        raise EntryShapeError(name, next_key(k.reward), "expected a TensorDict with a time dimension [*B, T]")
    shape, what = td.batch_size + (1,), "[*B, T, 1]"
    reward = read_float(name, td, next_key(k.reward), "the imagined reward (the world model's reward head)", shape, what)
    next_value = read_float(name, td, next_key(k.value), "V(s') of the imagined next states", shape, what)
    root_cont, next_cont = entry(td, k.continuation), entry(td, next_key(k.continuation))
    if (root_cont is None) != (next_cont is None):
        absent = k.continuation if root_cont is None else next_key(k.continuation)
        raise MissingEntryError(name, absent, "continuations are read at the root (of s) and under 'next' (of s')")
    if next_cont is not None:
        next_cont = read_float(name, td, next_key(k.continuation), "", shape, what)
        root_cont = read_float(name, td, k.continuation, "", shape, what)
    returns = dict(value_estimator=value_estimator, gamma=gamma, lmbda=lmbda, time_dim=time_dim)
    lambda_target = dreamer_v3_lambda_target(reward, next_value, next_cont, **returns)
    # the same returns as constants of the networks (their graph to gamma/lmbda kept): the
    # REINFORCE advantage and the percentile statistics read them
    constant_target = None
    if use_reinforce or (return_normalization and update_return_statistics):
        constant_target = dreamer_v3_lambda_target(
            reward.detach(), next_value.detach(), None if next_cont is None else next_cont.detach(), **returns)
    if discount_loss:
        c = root_cont.detach() if root_cont is not None else torch.ones_like(lambda_target).detach()
        discount = torch.cat([c[..., :1, :], gamma * c[..., 1:, :]], dim=-2).cumprod(dim=-2)
    else:
        discount = torch.ones_like(lambda_target).detach()

    zero = lambda_target.new_zeros(1)
    low = zero if return_low is None else return_low.to(lambda_target.dtype)
    high = zero if return_high is None else return_high.to(lambda_target.dtype)
    if return_normalization:
        if update_return_statistics:
            low, high = return_percentile_update(constant_target, low, high, rate=return_normalization_rate,
                                                 quantiles=(float(low_q), float(high_q)))
        scale = return_scale(low, high, return_normalization_min_scale).reshape(())
    else:
        scale = torch.ones((), dtype=lambda_target.dtype, device=lambda_target.device)

    if use_reinforce:
        log_prob = read_float(name, td, k.log_prob, "log pi(a|s) of the stopped imagined action", shape, what)
        baseline = read_float(name, td, k.value, "V(s) of the imagined states (the baseline)", shape, what)
        advantage = (constant_target - baseline.detach()) / scale
        loss = -(discount * log_prob * advantage).mean()
    else:
        loss = -(discount * lambda_target / scale).mean()
    if isinstance(entropy_bonus, Tensor) or entropy_bonus > 0:
        entropy = read_float(name, td, k.entropy, "the policy's entropy at the imagined states", shape, what)
        entropy = (discount * entropy).mean()
        loss = loss - entropy_bonus * entropy
    else:
        entropy = loss.new_zeros(())
    continuation_mean = next_cont.mean() if next_cont is not None else torch.ones((), device=loss.device)
    return pack({
        "loss_actor": loss,
        "actor_entropy": entropy.detach(),
        "return_low": low.detach().reshape(()),
        "return_high": high.detach().reshape(()),
        "return_scale": scale.detach(),
        "continuation_mean": continuation_mean.detach(),
        "lambda_target": lambda_target,
        "discount_weight": discount,
    })

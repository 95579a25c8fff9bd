"""Implicit Q-learning (continuous and discrete) as pure functions of a TensorDict of
precomputed Q-values, state values and log-probs.

Kostrikov et al. 2021, "Offline Reinforcement Learning with Implicit Q-Learning"
(arXiv 2110.06169). Same outputs and numbers as TorchRL 0.14's ``IQLLoss`` and
``DiscreteIQLLoss``; the priority TorchRL writes into its input is the returned
``"td_error"`` entry (TorchRL's IQL does not read ``priority_weight``; neither do these).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, Unpack

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor

from ._offpolicy import (
    OffPolicyOptions,
    Options,
    bootstrap_target,
    check_action_space,
    chosen_action_value,
    mask_and_weights,
    open_call,
    read_ensemble,
    read_log_prob,
    read_per_sample,
)
from ._td import finish_losses, next_key
from ._validation import check_range
from .keys import IQLKeys, NestedKey
from .value_learning import ensemble_distance, ensemble_min

__all__ = ["iql_loss", "discrete_iql_loss", "expectile_loss"]

Number = float | Tensor


def expectile_loss(diff: Tensor, expectile: Number) -> Tensor:
    """Asymmetric squared loss ``|tau - 1(diff < 0)| * diff^2`` (IQL's value loss), elementwise.

    Args:
        diff: ``Q - V``, any shape (e.g. ``[*B, 1]``).
        expectile: ``tau`` in ``[0, 1]`` (number or tensor; differentiable).

    Returns:
        The weighted squared difference, of the shape of ``diff``.
    """
    tau = expectile if isinstance(expectile, Tensor) else torch.tensor(expectile, dtype=diff.dtype, device=diff.device)
    weight = torch.where(diff > 0, tau, 1 - tau)
    return weight * diff.pow(2)


def _iql(
    name: str, td: TensorDictBase, keys: IQLKeys, tr, q: Tensor, target_q: Tensor, *,
    expectile: Number, temperature: Number, loss_function: str, options: Options,
) -> TensorDict:
    b = tr.batch_shape
    value = read_per_sample(name, td, keys.value, b, "V(s) of the value network (with gradients)")
    next_value = read_per_sample(name, td, next_key(keys.value), b, "V(s') of the value network at the next observation")
    log_prob = read_log_prob(name, td, keys.log_prob, b, "log pi(a|s) of the replayed action under the current policy")
    check_range(name, "expectile", expectile, 0.0, 1.0)
    check_range(name, "temperature", temperature, 0.0)
    min_q = ensemble_min(target_q.detach())
    advantage = min_q - value.detach()
    exp_a = torch.exp(advantage * temperature).clamp_max(100)
    target = bootstrap_target(name, td, tr, next_value, options)
    log_prob = log_prob.unsqueeze(-1)
    out = finish_losses(
        name,
        {
            "loss_actor": -(exp_a * log_prob),
            "loss_qvalue": ensemble_distance(q, target, loss_function),
            "loss_value": expectile_loss(min_q - value, expectile),
        },
        options.reduction, *mask_and_weights(name, td, keys, options, tr.batch_shape),
    )
    out["entropy"] = -log_prob.detach().mean()
    out["td_error"] = (q.detach() - target.detach()).pow(2).max(0)[0].squeeze(-1)
    return out


def iql_loss(
    td: TensorDictBase,
    *,
    expectile: Number = 0.5,
    temperature: Number = 1.0,
    loss_function: str = "smooth_l1",
    keys: IQLKeys | Mapping[str, NestedKey] | None = None,
    **options: Unpack[OffPolicyOptions],
) -> TensorDict:
    """IQL: expectile value loss, advantage-weighted regression actor, TD(0) critics.

    - ``loss_value = |tau - 1(u < 0)| u^2`` with ``u = min_i Q_target_i(s, a) - V(s)``;
    - ``loss_actor = -min(exp(temperature * u), 100) * log pi(a|s)`` with ``u`` detached;
    - ``loss_qvalue = sum_i d(Q_i(s, a), r + gamma (1 - terminated) V(s'))``.

    Stop-gradients: the target Q-values, ``V(s')`` and (in the actor term) ``V(s)`` are
    detached; the reward, ``gamma``, ``expectile`` and ``temperature`` keep their graphs.

    Args:
        td: input TensorDict (not modified); entries (``B`` = batch shape of the reward,
            ``E`` = number of critics):

            - ``"state_action_value"`` ``[E, *B, 1]``: ``Q_i(s, a)`` (with gradients);
            - ``"target_state_action_value"`` ``[E, *B, 1]``: ``Q_target_i(s, a)``;
            - ``"state_value"`` ``[*B, 1]``: ``V(s)`` (with gradients); ``("next", "state_value")``: ``V(s')``;
            - ``"log_prob"`` ``[*B]``: ``log pi(a|s)`` of the replayed action (with gradients);
            - ``("next", "reward"/"done"/"terminated")`` ``[*B, 1]``; optional masks and
              ``"gamma"``/``"lmbda"`` overrides.
        expectile: ``tau`` in ``[0, 1]`` (``1`` fits ``V`` to the upper envelope of ``Q``; number or
            tensor, differentiable).
        temperature: ``beta >= 0`` of the actor's weight (number or tensor, differentiable).
        loss_function: ``"l2"``, ``"l1"`` or ``"smooth_l1"``.
        keys: :class:`~torchrl_functional.functional.keys.IQLKeys` or a mapping of renamed entries.
        **options: ``gamma``, ``value_estimator``, ``lmbda``, ``time_dim``, ``average_rewards``, ``reduction``,
            ``loss_mask_key`` (:class:`~torchrl_functional.functional.OffPolicyOptions`; no
            priority weights, as TorchRL's).

    Returns:
        TensorDict with ``loss_actor``, ``loss_qvalue``, ``loss_value``,
        ``entropy = -mean log pi(a|s)`` (detached) and ``td_error = max_i (Q_i - y)^2`` ``[*B]``.
    """
    name = "iql_loss"
    o, keys, tr = open_call(name, td, keys, IQLKeys, options, loss_function=loss_function, fields=OffPolicyOptions)
    q = read_ensemble(name, td, keys.state_action_value, tr.batch_shape, "Q_i(s, a) of the critics (with gradients)")
    target_q = read_ensemble(name, td, keys.target_state_action_value, tr.batch_shape,
                             "Q_target_i(s, a) of the target critics", q.shape[-1], like=(keys.state_action_value, q))
    return _iql(name, td, keys, tr, q, target_q, expectile=expectile, temperature=temperature,
                loss_function=loss_function, options=o)


def discrete_iql_loss(
    td: TensorDictBase,
    *,
    action_space: Literal["categorical", "one_hot"] = "categorical",
    expectile: Number = 0.5,
    temperature: Number = 1.0,
    loss_function: str = "smooth_l1",
    keys: IQLKeys | Mapping[str, NestedKey] | None = None,
    **options: Unpack[OffPolicyOptions],
) -> TensorDict:
    """Discrete IQL: the losses and stop-gradients of :func:`iql_loss`, with ``Q_i(s, a)`` and
    ``Q_target_i(s, a)`` read off the critics' action-value vectors at the replayed action.

    Args:
        td: input TensorDict (not modified); entries as :func:`iql_loss` (``B`` = batch shape
            of the reward, ``E`` = number of critics, ``N`` = number of actions), except:

            - ``"state_action_value"`` ``[E, *B, N]``: ``Q_i(s, .)`` (with gradients);
            - ``"target_state_action_value"`` ``[E, *B, N]``: ``Q_target_i(s, .)``;
            - ``"action"``: integer ``[*B]``/``[*B, 1]`` (categorical) or ``[*B, N]`` (one-hot);
            - ``"state_value"`` ``[*B, 1]`` and ``("next", "state_value")``, ``"log_prob"``
              ``[*B]``, ``("next", "reward"/"done"/"terminated")`` ``[*B, 1]`` as in :func:`iql_loss`.
        action_space: ``"categorical"`` or ``"one_hot"``.
        expectile, temperature, loss_function, keys: as :func:`iql_loss`.
        **options: as :func:`iql_loss`.

    Returns:
        as :func:`iql_loss`: ``loss_actor``, ``loss_qvalue``, ``loss_value``, ``entropy``
        and ``td_error`` ``[*B]``.
    """
    name = "discrete_iql_loss"
    o, keys, tr = open_call(name, td, keys, IQLKeys, options, loss_function=loss_function, fields=OffPolicyOptions)
    action_space = check_action_space(name, action_space)
    b = tr.batch_shape
    qs = read_ensemble(name, td, keys.state_action_value, b, "Q_i(s, .) of the critics (with gradients)", None)
    target_qs = read_ensemble(name, td, keys.target_state_action_value, b,
                              "Q_target_i(s, .) of the target critics", qs.shape[-1], like=(keys.state_action_value, qs))
    q = chosen_action_value(name, td, keys.action, qs, b, action_space)
    target_q = chosen_action_value(name, td, keys.action, target_qs, b, action_space)
    return _iql(name, td, keys, tr, q, target_q, expectile=expectile, temperature=temperature,
                loss_function=loss_function, options=o)

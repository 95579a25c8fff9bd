"""Distributional (categorical, C51) DQN as a pure function of precomputed log-probabilities.

Bellemare et al. 2017, "A Distributional Perspective on Reinforcement Learning"
(arXiv 1707.06887). Same output and numbers as TorchRL 0.14's ``DistributionalDQNLoss``
(one-step TD target, double-Q bootstrap action); the priority TorchRL writes into its
input is returned as the ``"td_error"`` entry instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, Unpack

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor

from ..errors import EntryDtypeError, EntryShapeError, HyperparameterError
from ._offpolicy import PrioritizedReplayOptions, check_action_space, mask_and_weights, open_call
from ._td import entry, hyperparameter, next_key, pack, read_float, reduce_loss, require
from ._validation import can_inspect_values, check_unit_interval
from .estimators import nstep_discount
from .keys import DistributionalDQNKeys, NestedKey
from .value_learning import categorical_projection

__all__ = ["distributional_dqn_loss"]

Number = float | Tensor


def _log_probs(loss: str, td: TensorDictBase, key: NestedKey, batch: torch.Size, atoms: int, hint: str,
               n: int | None = None) -> Tensor:
    """Log-probabilities over the support for each action, ``[*B, A, N]``."""
    x = read_float(loss, td, key, hint)
    if x.ndim != len(batch) + 2 or x.shape[:len(batch)] != batch or x.shape[-2] != atoms or (
            n is not None and x.shape[-1] != n):
        want = tuple(batch) + (atoms, "N" if n is None else n)
        raise EntryShapeError(loss, key, f"expected shape {want} (batch of the reward, atoms of the support, "
                                         f"actions), got {tuple(x.shape)}")
    return x


def _action_index(loss: str, td: TensorDictBase, key: NestedKey, batch: torch.Size, n: int, action_space: str,
                  exact: bool) -> Tensor:
    """The action as an index ``[*B]``: categorical ``[*B]``/``[*B, 1]`` integers, or one-hot ``[*B, N]``
    (its first largest entry; ``exact`` requires a single 1 per sample, when values can be inspected)."""
    action = require(loss, td, key, "the replayed action, written by the collector" if exact else
                     "the bootstrap action the online network picks at the next observation")
    if action_space == "categorical":
        if action.is_floating_point() or action.dtype == torch.bool or action.is_complex():
            raise EntryDtypeError(loss, key, f"a categorical action must be an integer index tensor, got {action.dtype}")
        if action.shape == batch + (1,):
            action = action.squeeze(-1)
        elif action.shape != batch:
            raise EntryShapeError(loss, key, f"a categorical action must have shape {tuple(batch)} or "
                                             f"{tuple(batch) + (1,)}, got {tuple(action.shape)}")
        return action
    if action.shape != batch + (n,):
        raise EntryShapeError(loss, key, f"a one-hot action must have shape {tuple(batch) + (n,)} "
                              f"(N={n} from the action values), got {tuple(action.shape)}")
    if exact and can_inspect_values(action) and not ((action == 1).sum(-1) == 1).all():
        raise EntryShapeError(loss, key, "a one-hot action must hold exactly one 1 per sample")
    return action.argmax(-1)


def _at_action(log_p: Tensor, index: Tensor) -> Tensor:
    """``log_p[..., :, index]``: ``[*B, A, N]`` at the actions ``[*B]`` -> ``[*B, A]``."""
    index = index.unsqueeze(-1).unsqueeze(-1).expand(*log_p.shape[:-1], 1)
    return torch.gather(log_p, -1, index).squeeze(-1)


def distributional_dqn_loss(
    td: TensorDictBase,
    *,
    support: Tensor,
    action_space: Literal["categorical", "one_hot"] = "categorical",
    keys: DistributionalDQNKeys | Mapping[str, NestedKey] | None = None,
    **options: Unpack[PrioritizedReplayOptions],
) -> TensorDict:
    """Categorical DQN loss: cross-entropy ``-sum_j m_j log p_j(s, a)`` to the projected target ``m``.

    ``m`` is :func:`~torchrl_functional.functional.categorical_projection` of the target
    network's distribution ``p_target(s', a*)`` moved to ``r + gamma * (1 - terminated) * z``,
    with ``a*`` the online network's choice at ``s'`` (double Q). ``m`` is detached from every
    network output (it keeps the graphs of the reward and of ``gamma``); ``log p(s, a)``
    carries the gradient.

    Args:
        td: input TensorDict (not modified); entries (``B`` = batch shape of the reward,
            ``A`` = atoms of the support, ``N`` = actions):

            - ``"action_value"`` ``[*B, A, N]``: ``log p(s, ., .)`` of the online network (with gradients);
            - ``"action"``: integer ``[*B]``/``[*B, 1]`` (categorical) or one-hot ``[*B, N]``;
            - ``("next", "action_value")`` ``[*B, A, N]``: ``log p_target(s', ., .)``;
            - ``("next", "action")``: the online network's greedy action at ``s'``, same format
              as ``"action"`` (a one-hot is read at its first largest entry);
            - ``("next", "reward"/"done"/"terminated")`` ``[*B, 1]``;
            - optional ``"priority_weight"`` ``[*B]``, masks, a ``"gamma"`` override ``[*B]``/``[*B, 1]``,
              ``"steps_to_next_obs"`` ``[*B]``/``[*B, 1]`` (n-step data: discount ``gamma ** steps``).
        support: ``[A]`` the evenly spaced return values ``z`` of the atoms (the network's ``support``).
        action_space: ``"categorical"`` or ``"one_hot"``.
        keys: :class:`~torchrl_functional.functional.keys.DistributionalDQNKeys` or a mapping of renamed entries.
        **options: ``gamma``, ``reduction``, ``loss_mask_key``, ``use_prioritized_weights``
            (:class:`~torchrl_functional.functional.PrioritizedReplayOptions`).

    Returns:
        TensorDict with ``loss`` and ``td_error`` ``[*B, 1]`` (the per-sample cross-entropy,
        detached: the replay priority).
    """
    name = "distributional_dqn_loss"
    o, keys, tr = open_call(name, td, keys, DistributionalDQNKeys, options, fields=PrioritizedReplayOptions)
    action_space = check_action_space(name, action_space)
    if not isinstance(support, Tensor) or not support.is_floating_point() or support.ndim != 1 or support.numel() < 2:
        raise EntryShapeError(name, "support", "expected a 1-d floating point tensor of at least 2 points, got "
                                               f"{getattr(support, 'shape', type(support).__name__)}")
    b, atoms = tr.batch_shape, support.numel()
    log_p = _log_probs(name, td, keys.action_value, b, atoms, "log p(s, ., .) of the online network")
    n = log_p.shape[-1]
    next_log_p = _log_probs(name, td, next_key(keys.action_value), b, atoms,
                            "log p_target(s', ., .) of the target network at the next observation", n)
    log_p_a = _at_action(log_p, _action_index(name, td, keys.action, b, n, action_space, exact=True))
    next_index = _action_index(name, td, next_key(keys.action), b, n, action_space, exact=False)
    next_p = _at_action(next_log_p.detach(), next_index).exp()

    if tr.steps is not None and entry(td, "gamma") is not None:
        raise HyperparameterError(name, "gamma", "the input holds both a 'gamma' entry and n-step data "
                                                 "('steps_to_next_obs'): the discount is ambiguous; drop the "
                                                 "'gamma' entry")
    gamma = hyperparameter(name, td, "gamma", o.gamma, b)
    check_unit_interval(name, "gamma", gamma)
    discount = nstep_discount(gamma, tr.steps, tr.reward) if tr.steps is not None else gamma
    not_terminated = 1 - tr.terminated.to(tr.reward.dtype)
    target = categorical_projection(next_p, tr.reward + not_terminated * discount * support, support)

    ce = -(target * log_p_a).sum(-1, keepdim=True)
    value = reduce_loss(name, ce, o.reduction, *mask_and_weights(name, td, keys, o, b))
    return pack({"loss": value, "td_error": ce.detach()})

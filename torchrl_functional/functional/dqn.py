"""Deep Q-learning as a pure function of a TensorDict of precomputed Q-values.

Mnih et al. 2015, "Human-level control through deep reinforcement learning" (Nature 518);
double DQN: van Hasselt et al. 2016 (arXiv 1509.06461). Same outputs and numbers as
TorchRL 0.14's ``DQNLoss``; the priority TorchRL writes into its input is returned as
the ``"td_error"`` entry instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Unpack

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor

from ..errors import EntryShapeError
from ._offpolicy import (
    Q_ACTION_SPACES,
    Options,
    PrioritizedOffPolicyOptions,
    Transition,
    bootstrap_target,
    check_action_sizes,
    check_action_space,
    chosen_action_value,
    mask_and_weights,
    open_call,
    read_per_sample,
)
from ._td import next_key, pack, reduce_loss
from .keys import DQNKeys, NestedKey
from .value_learning import distance_loss

__all__ = ["dqn_loss", "greedy_action_value"]



def greedy_action_value(values: Tensor, by: Tensor, action_space: str,
                        action_sizes: Sequence[int] | None = None) -> Tensor:
    """``values`` ``[*B, N]`` at the greedy action of ``by`` ``[*B, N]``, as TorchRL's
    ``QValueModule`` picks and scores it: ``[*B, 1]``.

    ``"categorical"``: the first maximum of ``by`` (``argmax``). ``"one_hot"``: TorchRL's one-hot
    greedy action marks *every* tied maximum of ``by`` and its ``chosen_action_value`` sums
    ``values`` over the marks, so a tie of ``k`` actions contributes ``k`` values (the bootstrap
    of TorchRL's ``DQNLoss`` and ``DiscreteCQLLoss`` with a one-hot action space); without ties
    both give ``values`` at the argmax. ``"mult_one_hot"``: the one-hot rule within each
    sub-action (``by`` split into ``action_sizes``), the values summed over every sub-action's marks.

    Args:
        values: the action values to read, ``[*B, N]`` (e.g. ``Q_target(s', .)``).
        by: the action values that pick the greedy action, ``[*B, N]`` (``values`` itself, or
            the online ``Q(s', .)`` for double DQN).
        action_space: ``"categorical"``, ``"one_hot"`` or ``"mult_one_hot"``.
        action_sizes: ``"mult_one_hot"`` only: the size of each sub-action, summing to ``N``
            (TorchRL's ``var_nums``).

    Returns:
        ``[*B, 1]``.
    """
    if action_space == "mult_one_hot":
        if action_sizes is None or sum(action_sizes) != by.shape[-1]:
            raise ValueError(f"greedy_action_value: action_sizes {action_sizes} must sum to N={by.shape[-1]}")
        marks = torch.cat([part == part.max(-1, keepdim=True)[0] for part in by.split(list(action_sizes), -1)], -1)
        return (values * marks.to(values.dtype)).sum(-1, keepdim=True)
    if action_space == "one_hot":
        return (values * (by == by.max(-1, keepdim=True)[0]).to(values.dtype)).sum(-1, keepdim=True)
    if by is values:
        return values.max(-1, keepdim=True)[0]
    return torch.gather(values, -1, by.argmax(-1, keepdim=True))


def discrete_q_terms(
    loss: str,
    td: TensorDictBase,
    keys: Any,
    tr: Transition,
    *,
    action_space: str,
    double_dqn: bool,
    options: Options,
    action_sizes: Sequence[int] | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Q-learning pieces shared by DQN and discrete CQL (their ``action_space`` and
    ``action_sizes`` checked here).

    Returns:
        ``(Q(s, .) [*B, N], Q(s, a) [*B, 1], target [*B, 1])``; the target
        bootstraps from ``max_a Q_target(s', a)`` (or, with ``double_dqn``, from
        ``Q_target(s', argmax_a Q(s', a))``), the greedy action taken as TorchRL takes it
        (:func:`greedy_action_value`: one-hot ties), and is detached from every network output.
    """
    action_space = check_action_space(loss, action_space, Q_ACTION_SPACES)
    action_sizes = check_action_sizes(loss, action_space, action_sizes)
    b = tr.batch_shape
    action_value = read_per_sample(loss, td, keys.action_value, b, "Q(s, .) of the online Q-network", None)
    n = action_value.shape[-1]
    if action_sizes is not None and sum(action_sizes) != n:
        raise EntryShapeError(loss, keys.action_value, f"expected N={sum(action_sizes)} action values (the sum of "
                                                       f"action_sizes {list(action_sizes)}), got {tuple(action_value.shape)}")
    pred = chosen_action_value(loss, td, keys.action, action_value, b, action_space)
    next_av = read_per_sample(loss, td, next_key(keys.action_value), b,
                              "Q_target(s', .) of the target Q-network at the next observation", n)
    greedy = next_av
    if double_dqn:
        greedy = read_per_sample(loss, td, next_key(keys.online_action_value), b,
                                 "Q(s', .) of the online Q-network at the next observation (double DQN)", n).detach()
    next_value = greedy_action_value(next_av, greedy, action_space, action_sizes)
    target = bootstrap_target(loss, td, tr, next_value, options)
    return action_value, pred, target


def dqn_loss(
    td: TensorDictBase,
    *,
    action_space: Literal["categorical", "one_hot", "mult_one_hot"] = "categorical",
    double_dqn: bool = False,
    loss_function: str = "l2",
    action_sizes: Sequence[int] | None = None,
    keys: DQNKeys | Mapping[str, NestedKey] | None = None,
    **options: Unpack[PrioritizedOffPolicyOptions],
) -> TensorDict:
    """DQN loss ``d(Q(s, a), y)`` with ``y = r + gamma * (1 - terminated) * max_a' Q_target(s', a')``.

    With ``double_dqn`` the bootstrap action is ``argmax_a' Q(s', a')`` of the online network,
    scored by the target network. ``y`` is detached from every Q-value (it keeps the graphs
    of the reward and of ``gamma``/``lmbda``); ``Q(s, a)`` carries the gradient.

    Args:
        td: input TensorDict (not modified); entries (``B`` = batch shape of the reward):

            - ``"action_value"`` ``[*B, N]``: ``Q(s, .)`` of the online network (with gradients);
            - ``"action"``: integer ``[*B]``/``[*B, 1]`` (categorical) or ``[*B, N]`` (one-hot; multi
              one-hot: one one-hot per sub-action, concatenated);
            - ``("next", "action_value")`` ``[*B, N]``: ``Q_target(s', .)``;
            - ``("next", "online_action_value")`` ``[*B, N]``: ``Q(s', .)``, double DQN only;
            - ``("next", "reward"/"done"/"terminated")`` ``[*B, 1]``;
            - optional ``"priority_weight"`` ``[*B]``, masks, ``"gamma"``/``"lmbda"`` overrides;
            - optional ``"steps_to_next_obs"`` ``[*B]`` (integer; n-step data from TorchRL's
              ``MultiStep``): the sample bootstraps with ``gamma ** steps_to_next_obs``. With it,
              a ``"gamma"`` entry is refused (MultiStep writes one: drop it).
        action_space: ``"categorical"``, ``"one_hot"`` or ``"mult_one_hot"`` (the replayed
            action's layout, and the greedy bootstrap action as TorchRL takes it: a one-hot greedy
            action marks every tied maximum, per sub-action for multi one-hot,
            :func:`greedy_action_value`).
        double_dqn: pick the bootstrap action with the online network.
        loss_function: ``"l2"``, ``"l1"`` or ``"smooth_l1"``.
        action_sizes: ``"mult_one_hot"`` only: the size of each sub-action, summing to ``N``
            (TorchRL's ``var_nums``, a ``MultiOneHot`` spec's ``nvec``).
        keys: :class:`~torchrl_functional.functional.keys.DQNKeys` or a mapping of renamed entries.
        **options: ``gamma``, ``value_estimator``, ``lmbda``, ``time_dim``, ``average_rewards``, ``reduction``,
            ``loss_mask_key``, ``use_prioritized_weights``
            (:class:`~torchrl_functional.functional.PrioritizedOffPolicyOptions`).

    Returns:
        TensorDict with ``loss`` and ``td_error = (Q(s, a) - y)^2`` ``[*B, 1]`` (detached,
        the replay priority).
    """
    name = "dqn_loss"
    o, keys, tr = open_call(name, td, keys, DQNKeys, options, loss_function=loss_function)
    _, pred, target = discrete_q_terms(name, td, keys, tr, action_space=action_space, double_dqn=double_dqn, options=o,
                                       action_sizes=action_sizes)
    value = reduce_loss(name, distance_loss(target, pred, loss_function), o.reduction,
                        *mask_and_weights(name, td, keys, o, tr.batch_shape))
    return pack({"loss": value, "td_error": (pred - target).detach().pow(2)})

"""QMIX's TD loss as a pure function of the mixed (global) Q-values.

Rashid et al. 2018, "QMIX: Monotonic Value Function Factorisation for Deep Multi-Agent
Reinforcement Learning" (arXiv 1803.11485). The mixer network (per-agent chosen
``Q_i(s, a_i)`` and the state to ``Q_tot``) is run by the caller (the drop-in module); the
function reads its outputs. Same output and numbers as TorchRL 0.14's ``QMixerLoss``; the
priority TorchRL writes into its input is returned as the ``"td_error"`` entry instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Unpack

from tensordict import TensorDict, TensorDictBase

from ._offpolicy import PrioritizedOffPolicyOptions, bootstrap_target, mask_and_weights, open_call, read_per_sample
from ._td import next_key, pack, reduce_loss
from .keys import NestedKey, QMixerKeys
from .value_learning import distance_loss

__all__ = ["qmixer_loss"]



def qmixer_loss(
    td: TensorDictBase,
    *,
    loss_function: str = "l2",
    keys: QMixerKeys | Mapping[str, NestedKey] | None = None,
    **options: Unpack[PrioritizedOffPolicyOptions],
) -> TensorDict:
    """QMIX loss ``d(Q_tot(s, a), y)`` with ``y = r + gamma * (1 - terminated) * Q_tot_target(s', a*)``.

    ``Q_tot`` is the mixer's output over the agents' chosen Q-values; the target mixes the
    agents' greedy target values ``max_a Q_target_i(s', a)`` with the target mixer. ``y`` is
    detached from every Q-value (it keeps the graphs of the reward and of ``gamma``/``lmbda``).
    TorchRL's ``QMixerLoss`` neither masks nor weights its loss and always averages: the
    defaults here do the same (``loss_mask_key=None``, ``use_prioritized_weights=False``).

    Args:
        td: input TensorDict (not modified); entries (``B`` = batch shape of the reward):

            - ``"chosen_action_value"`` ``[*B, 1]``: ``Q_tot(s, a)`` (with gradients);
            - ``("next", "chosen_action_value")`` ``[*B, 1]``: ``Q_tot_target(s', a*)``;
            - ``("next", "reward"/"done"/"terminated")`` ``[*B, 1]`` (shared by the agents);
            - optional ``"gamma"``/``"lmbda"`` overrides ``[*B]``/``[*B, 1]``, ``"steps_to_next_obs"``
              ``[*B]`` (n-step data), ``"priority_weight"`` ``[*B]`` and masks (when enabled).
        loss_function: ``"l2"``, ``"l1"`` or ``"smooth_l1"``.
        keys: :class:`~torchrl_functional.functional.keys.QMixerKeys` or a mapping of renamed entries.
        **options: ``gamma``, ``value_estimator``, ``lmbda``, ``time_dim``, ``average_rewards``, ``reduction``,
            ``loss_mask_key`` (default ``None`` here), ``use_prioritized_weights`` (default ``False``
            here) (:class:`~torchrl_functional.functional.PrioritizedOffPolicyOptions`).

    Returns:
        TensorDict with ``loss`` and ``td_error = (Q_tot(s, a) - y)^2`` ``[*B, 1]`` (detached).
    """
    name = "qmixer_loss"
    o, keys, tr = open_call(name, td, keys, QMixerKeys, options, loss_function=loss_function,
                            defaults={"loss_mask_key": None, "use_prioritized_weights": False})
    b = tr.batch_shape
    pred = read_per_sample(name, td, keys.global_value, b, "Q_tot(s, a), the mixer's output over the agents' "
                                                           "chosen Q-values")
    next_value = read_per_sample(name, td, next_key(keys.global_value), b,
                                 "Q_tot_target(s', a*), the target mixer's output at the next observation")
    target = bootstrap_target(name, td, tr, next_value, o)
    value = reduce_loss(name, distance_loss(pred, target, loss_function), o.reduction,
                        *mask_and_weights(name, td, keys, o, b))
    return pack({"loss": value, "td_error": (pred - target).detach().pow(2)})

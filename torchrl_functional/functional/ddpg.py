"""Deep deterministic policy gradient as a pure function of a TensorDict of precomputed
Q-values.

Lillicrap et al. 2016, "Continuous control with deep reinforcement learning"
(arXiv 1509.02971). Same outputs and numbers as TorchRL 0.14's ``DDPGLoss``; the priority
TorchRL writes into its input is the returned ``"td_error"`` entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Unpack

from tensordict import TensorDict, TensorDictBase

from ._offpolicy import PrioritizedOffPolicyOptions, bootstrap_target, mask_and_weights, open_call, read_per_sample
from ._td import finish_losses, next_key
from .keys import DDPGKeys, NestedKey
from .value_learning import distance_loss

__all__ = ["ddpg_loss"]



def ddpg_loss(
    td: TensorDictBase,
    *,
    loss_function: str = "l2",
    keys: DDPGKeys | Mapping[str, NestedKey] | None = None,
    **options: Unpack[PrioritizedOffPolicyOptions],
) -> TensorDict:
    """DDPG: ``loss_value = d(Q(s, a), y)``, ``y = r + gamma (1 - terminated) Q_target(s', pi_target(s'))``,
    and ``loss_actor = -Q(s, pi(s))``.

    ``y`` is detached from every Q-value (the reward and ``gamma`` keep their graphs).
    ``Q(s, pi(s))`` is used as given: compute it with the critic's parameters detached
    (as TorchRL does) so that ``loss_actor`` trains the actor only.

    Args:
        td: input TensorDict (not modified); entries (``B`` = batch shape of the reward):

            - ``"state_action_value"`` ``[*B, 1]``: ``Q(s, a)`` (with gradients);
            - ``("next", "state_action_value")`` ``[*B, 1]``: ``Q_target(s', pi_target(s'))``;
            - ``"state_action_value_actor"`` ``[*B, 1]``: ``Q(s, pi(s))``;
            - ``("next", "reward"/"done"/"terminated")`` ``[*B, 1]``;
            - optional ``"priority_weight"`` ``[*B]``, masks, ``"gamma"``/``"lmbda"`` overrides.
        loss_function: ``"l2"``, ``"l1"`` or ``"smooth_l1"``.
        keys: :class:`~torchrl_functional.functional.keys.DDPGKeys` or a mapping of renamed entries.
        **options: ``gamma``, ``value_estimator``, ``lmbda``, ``time_dim``, ``average_rewards``, ``reduction``,
            ``loss_mask_key``, ``use_prioritized_weights``
            (:class:`~torchrl_functional.functional.PrioritizedOffPolicyOptions`).

    Returns:
        TensorDict with ``loss_actor``, ``loss_value`` and the detached diagnostics
        ``td_error = (Q - y)^2``, ``pred_value``, ``target_value`` (``[*B]``),
        ``pred_value_max`` and ``target_value_max``.
    """
    name = "ddpg_loss"
    o, keys, tr = open_call(name, td, keys, DDPGKeys, options, loss_function=loss_function)
    b = tr.batch_shape
    pred = read_per_sample(name, td, keys.state_action_value, b, "Q(s, a) of the critic (with gradients)")
    next_value = read_per_sample(name, td, next_key(keys.state_action_value), b,
                                 "Q_target(s', pi_target(s')) of the target critic at the next observation")
    actor_value = read_per_sample(name, td, keys.state_action_value_actor, b,
                                  "Q(s, pi(s)) of the critic (detached parameters) at the actor's action")
    target = bootstrap_target(name, td, tr, next_value, o)
    out = finish_losses(
        name,
        {"loss_actor": -actor_value, "loss_value": distance_loss(target, pred, loss_function)},
        o.reduction, *mask_and_weights(name, td, keys, o, b),
    )
    pred_d, target_d = pred.detach().squeeze(-1), target.detach().squeeze(-1)
    out["td_error"] = (pred_d - target_d).pow(2)
    out["pred_value"] = pred_d
    out["target_value"] = target_d
    out["target_value_max"] = target_d.max()
    out["pred_value_max"] = pred_d.max()
    return out

"""TD3 with behaviour cloning (offline RL) as a pure function of a TensorDict of
precomputed Q-values and actions.

Fujimoto & Gu 2021, "A Minimalist Approach to Offline Reinforcement Learning" (arXiv 2106.06860).
Same outputs and numbers as TorchRL 0.14's ``TD3BCLoss``; the critic term is TD3's
(:func:`~torchrl_functional.functional.td3_terms`), the priority TorchRL writes into its
input is the returned ``"td_error"`` entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Unpack

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor

from ..errors import HyperparameterError
from ._offpolicy import PrioritizedOffPolicyOptions, read_per_sample
from ._td import check_float, finish_losses
from ._validation import check_range
from .keys import NestedKey, TD3BCKeys, resolve_keys
from .td3 import td3_terms

__all__ = ["td3bc_loss"]

Number = float | Tensor


def td3bc_loss(
    td: TensorDictBase,
    *,
    alpha: Number = 2.5,
    loss_function: str = "smooth_l1",
    keys: TD3BCKeys | Mapping[str, NestedKey] | None = None,
    **options: Unpack[PrioritizedOffPolicyOptions],
) -> TensorDict:
    """TD3+BC: TD3's critic loss and ``loss_actor = -lmbd Q_1(s, pi(s)) + mean (pi(s) - a)^2``,
    ``lmbd = alpha / mean |Q_1(s, pi(s))|``.

    The critic term is :func:`td3_loss`'s. ``bc_loss = mean (pi(s) - a)^2`` is a mean over
    every sample and action dimension (masked samples included, as TorchRL), added to each
    sample's actor term; ``lmbd``'s denominator is a mean over every sample and is detached
    (``lmbd`` keeps the graph of a tensor ``alpha``). ``Q_1(s, pi(s))`` is used as given
    (computed with the critics' parameters detached, as TorchRL); ``y`` is detached.

    Args:
        td: input TensorDict (not modified); entries (``B`` = batch shape of the reward,
            ``E`` = number of critics, ``A`` = action dimensions):

            - ``"state_action_value"`` ``[E, *B, 1]``: ``Q_i(s, a)`` (with gradients);
            - ``("next", "state_action_value")`` ``[E, *B, 1]``: ``Q_target_i(s', a~')`` at the
              smoothed target action (:func:`td3_target_action`);
            - ``"state_action_value_actor"`` ``[E, *B, 1]``: ``Q_i(s, pi(s))`` (only ``Q_1`` is used);
            - ``"action_actor"`` ``[*B, A]``: ``pi(s)`` (with gradients); ``"action"`` ``[*B, A]``: the dataset action;
            - ``("next", "reward"/"done"/"terminated")`` ``[*B, 1]``;
            - optional ``"priority_weight"`` ``[*B]``, masks, ``"gamma"``/``"lmbda"`` overrides.
        alpha: weight of the Q term (number or 0-d tensor, ``>= 0``; a tensor keeps its graph).
        loss_function: ``"l2"``, ``"l1"`` or ``"smooth_l1"``.
        keys: :class:`~torchrl_functional.functional.keys.TD3BCKeys` or a mapping of renamed entries.
        **options: as :func:`td3_loss`.

    Returns:
        TensorDict with ``loss_actor``, ``loss_qvalue``, ``lmbd`` (graph to ``alpha`` only), the
        detached ``bc_loss``, ``state_action_value_actor`` ``[*B]`` (``Q_1``),
        ``next_state_value`` ``[*B]``, ``pred_value`` ``[E, *B]``, ``target_value`` ``[*B]`` and
        the replay priority ``td_error = max_i (Q_i - y)^2`` ``[*B]``.
    """
    name = "td3bc_loss"
    keys = resolve_keys(keys, TD3BCKeys, name)
    t = td3_terms(td, loss_function=loss_function, keys=keys, loss=name, **options)
    alpha = _alpha(name, alpha)
    action = read_per_sample(name, td, keys.action, t.batch_shape, "the dataset action (behaviour-cloning target)", None)
    actor_action = read_per_sample(name, td, keys.action_actor, t.batch_shape,
                                   "pi(s) of the actor (with gradients)", action.shape[-1])
    q1 = t.state_action_value_actor[0]
    bc_loss = torch.nn.functional.mse_loss(actor_action, action)
    lmbd = alpha / q1.abs().mean().detach()
    out = finish_losses(name, {"loss_actor": -lmbd * q1 + bc_loss, "loss_qvalue": t.loss_qvalue},
                        t.reduction, t.mask, t.weights)
    out["bc_loss"] = bc_loss.detach()
    out["lmbd"] = lmbd
    out["state_action_value_actor"] = q1.detach().squeeze(-1)
    out.update(t.diagnostics())
    return out


def _alpha(loss: str, alpha: Number) -> Number:
    if isinstance(alpha, Tensor):
        check_float(loss, "alpha", alpha)
        if alpha.numel() != 1:
            raise HyperparameterError(loss, "alpha", f"expected a scalar, got shape {tuple(alpha.shape)}")
        alpha = alpha.reshape(())
    elif isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise HyperparameterError(loss, "alpha", f"expected a number or a tensor, got {type(alpha).__name__}")
    check_range(loss, "alpha", alpha, 0.0)
    return alpha


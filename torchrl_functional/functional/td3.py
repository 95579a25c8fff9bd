"""Twin delayed DDPG as a pure function of a TensorDict of precomputed Q-values, and
its target-policy smoothing as a tensor kernel.

Fujimoto et al. 2018, "Addressing Function Approximation Error in Actor-Critic Methods"
(arXiv 1802.09477). Same outputs and numbers as TorchRL 0.14's ``TD3Loss``; the priority
TorchRL writes into its input is the returned ``"td_error"`` entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple, Unpack

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor

from ._offpolicy import PrioritizedOffPolicyOptions, bootstrap_target, mask_and_weights, open_call, read_ensemble
from ._td import finish_losses, next_key
from .keys import NestedKey, TD3Keys
from .value_learning import ensemble_distance, ensemble_min

__all__ = ["td3_loss", "td3_target_action", "td3_terms", "TD3Terms"]

Number = float | Tensor


def td3_target_action(
    next_action: Tensor,
    low: Number,
    high: Number,
    *,
    policy_noise: Number = 0.2,
    noise_clip: Number = 0.5,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Target-policy smoothing: ``clamp(pi_target(s') + clamp(policy_noise * eps, +-noise_clip), low, high)``.

    Args:
        next_action: ``pi_target(s')``, ``[*B, A]``.
        low, high: action bounds (numbers or tensors broadcastable to ``[A]``).
        policy_noise, noise_clip: noise scale and clipping radius.
        noise: a standard normal draw ``eps`` of the shape of ``next_action``; drawn here
            when ``None``: from ``generator``, or from the global RNG exactly as TorchRL's
            ``TD3Loss`` (``torch.randn_like``) when ``generator`` is ``None``.
        generator: :class:`torch.Generator` for that draw, or ``None`` (global RNG).

    Returns:
        The smoothed target action ``[*B, A]`` (differentiable w.r.t. ``next_action`` and the noise scale).
    """
    if noise is None:
        if generator is None:
            noise = torch.randn_like(next_action)
        else:
            noise = torch.randn(next_action.shape, generator=generator, dtype=next_action.dtype,
                                device=next_action.device)
    elif noise.shape != next_action.shape:
        from ..errors import EntryShapeError

        raise EntryShapeError("td3_target_action", "noise",
                              f"expected shape {tuple(next_action.shape)}, got {tuple(noise.shape)}")
    noise = (noise * policy_noise).clamp(-noise_clip, noise_clip)
    return (next_action + noise).clamp(low, high)


class TD3Terms(NamedTuple):
    """The per-sample pieces of TD3 (before reduction), shared with TD3+BC.

    Attributes:
        loss_qvalue: ``sum_i d(Q_i(s, a), y)`` ``[*B, 1]``.
        state_action_value_actor: ``Q_i(s, pi(s))`` ``[E, *B, 1]`` as given.
        pred_value: ``Q_i(s, a)`` ``[E, *B, 1]`` as given.
        next_state_value: ``min_i Q_target_i(s', a~')`` ``[*B, 1]``.
        target_value: ``y`` ``[*B, 1]`` (detached from every Q-value).
        mask: the loss mask or ``None``; weights: the priority weights ``[*B, 1]`` or ``None``.
        batch_shape: ``B``.
        reduction: the reduction the caller asked for (checked).
    """

    loss_qvalue: Tensor
    state_action_value_actor: Tensor
    pred_value: Tensor
    next_state_value: Tensor
    target_value: Tensor
    mask: Tensor | None
    weights: Tensor | None
    batch_shape: torch.Size
    reduction: str

    def diagnostics(self) -> dict[str, Tensor]:
        """The detached critic diagnostics TorchRL returns: ``next_state_value`` ``[*B]``,
        ``pred_value`` ``[E, *B]``, ``target_value`` ``[*B]`` and the replay priority
        ``td_error = max_i (Q_i - y)^2`` ``[*B]``."""
        pred, target = self.pred_value.detach(), self.target_value.detach()
        return {
            "next_state_value": self.next_state_value.detach().squeeze(-1),
            "pred_value": pred.squeeze(-1),
            "target_value": target.squeeze(-1),
            "td_error": (pred - target).pow(2).max(0)[0].squeeze(-1),
        }


def td3_terms(
    td: TensorDictBase,
    *,
    loss_function: str = "smooth_l1",
    keys: TD3Keys | Mapping[str, NestedKey] | None = None,
    loss: str = "td3_terms",
    **options: Unpack[PrioritizedOffPolicyOptions],
) -> TD3Terms:
    """TD3's per-sample critic loss, the actor's Q-values, the target and the mask and weights,
    read and checked once (:func:`td3_loss` and :func:`td3bc_loss` reduce them).

    Args:
        td: input TensorDict (not modified), entries as :func:`td3_loss` (``[E, *B, 1]``
            ensembles, ``[*B, 1]`` transition entries).
        loss_function, keys: as :func:`td3_loss`.
        loss: the loss name used in error messages.
        **options: as :func:`td3_loss` (``reduction`` is only checked here).

    Returns:
        :class:`TD3Terms`; ``target_value`` is detached from every Q-value.
    """
    o, keys, tr = open_call(loss, td, keys, TD3Keys, options, loss_function=loss_function)
    b = tr.batch_shape
    pred = read_ensemble(loss, td, keys.state_action_value, b, "Q_i(s, a) of the critics (with gradients)")
    next_q = read_ensemble(loss, td, next_key(keys.state_action_value), b,
                           "Q_target_i(s', a~') of the target critics at the smoothed target action", like=(keys.state_action_value, pred))
    actor_q = read_ensemble(loss, td, keys.state_action_value_actor, b,
                            "Q_i(s, pi(s)) of the critics (detached parameters) at the actor's action", like=(keys.state_action_value, pred))
    next_value = ensemble_min(next_q)
    target = bootstrap_target(loss, td, tr, next_value, o)
    return TD3Terms(
        ensemble_distance(pred, target, loss_function), actor_q, pred, next_value, target,
        *mask_and_weights(loss, td, keys, o, b), b, o.reduction,
    )


def td3_loss(
    td: TensorDictBase,
    *,
    loss_function: str = "smooth_l1",
    keys: TD3Keys | Mapping[str, NestedKey] | None = None,
    **options: Unpack[PrioritizedOffPolicyOptions],
) -> TensorDict:
    """TD3: ``loss_qvalue = sum_i d(Q_i(s, a), y)``, ``y = r + gamma (1 - terminated) min_i Q_target_i(s', a~')``,
    and ``loss_actor = -Q_1(s, pi(s))``.

    ``a~'`` is the smoothed target action (:func:`td3_target_action`), already applied by
    whoever computed ``Q_target_i(s', a~')``. ``y`` is detached from every Q-value (the
    reward and ``gamma`` keep their graphs). ``Q_i(s, pi(s))`` is used as given: compute it
    with the critics' parameters detached (as TorchRL) so ``loss_actor`` trains the actor only.
    Delaying the actor update is the caller's schedule (TorchRL's loss computes both terms).

    Args:
        td: input TensorDict (not modified); entries (``B`` = batch shape of the reward,
            ``E`` = number of critics):

            - ``"state_action_value"`` ``[E, *B, 1]``: ``Q_i(s, a)`` (with gradients);
            - ``("next", "state_action_value")`` ``[E, *B, 1]``: ``Q_target_i(s', a~')``;
            - ``"state_action_value_actor"`` ``[E, *B, 1]``: ``Q_i(s, pi(s))``;
            - ``("next", "reward"/"done"/"terminated")`` ``[*B, 1]``;
            - optional ``"priority_weight"`` ``[*B]``, masks, ``"gamma"``/``"lmbda"`` overrides.
        loss_function: ``"l2"``, ``"l1"`` or ``"smooth_l1"``.
        keys: :class:`~torchrl_functional.functional.keys.TD3Keys` or a mapping of renamed entries.
        **options: ``gamma``, ``value_estimator``, ``lmbda``, ``time_dim``, ``average_rewards``, ``reduction``,
            ``loss_mask_key``, ``use_prioritized_weights``
            (:class:`~torchrl_functional.functional.PrioritizedOffPolicyOptions`).

    Returns:
        TensorDict with ``loss_actor``, ``loss_qvalue`` and the detached diagnostics
        ``state_action_value_actor`` ``[E, *B]``, ``next_state_value`` ``[*B]``,
        ``pred_value`` ``[E, *B]``, ``target_value`` ``[*B]`` and the replay priority
        ``td_error = max_i (Q_i - y)^2`` ``[*B]``.
    """
    t = td3_terms(td, loss_function=loss_function, keys=keys, loss="td3_loss", **options)
    actor_q = t.state_action_value_actor
    out = finish_losses("td3_loss", {"loss_actor": -actor_q[0], "loss_qvalue": t.loss_qvalue},
                        t.reduction, t.mask, t.weights)
    out["state_action_value_actor"] = actor_q.detach().squeeze(-1)
    out.update(t.diagnostics())
    return out

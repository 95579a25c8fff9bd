"""Randomized ensembled double Q-learning (REDQ) as a pure function of a TensorDict of
precomputed Q-values and log-probs.

Chen et al. 2021, "Randomized Ensembled Double Q-Learning: Learning Fast Without a Model"
(arXiv 2101.05982). Same outputs and numbers as TorchRL 0.14's ``REDQLoss``; the random
subset of target critics is an input entry (or drawn here), the priority TorchRL writes into
its input is the returned ``"td_error"`` entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, Unpack

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor

from ..errors import EntryDtypeError, EntryShapeError, HyperparameterError
from ._offpolicy import OffPolicyOptions, bootstrap_target, open_call, read_ensemble, read_log_prob
from ._td import entry, finish_losses, loss_mask, next_key
from ._validation import can_inspect_values
from .keys import NestedKey, REDQKeys
from .sac import _target_entropy, alpha_loss, log_alpha_terms
from .value_learning import distance_loss, ensemble_min

__all__ = ["redq_loss", "redq_critic_subset"]

Number = float | Tensor


def redq_critic_subset(num_qvalue_nets: int, sub_sample_len: int,
                       generator: torch.Generator | None = None) -> Tensor:
    """The indices of ``sub_sample_len`` distinct critics out of ``num_qvalue_nets``, sorted:
    ``randperm(E)[:M].sort()``, drawn exactly as TorchRL's ``REDQLoss`` (global RNG when
    ``generator`` is ``None``).

    Args:
        num_qvalue_nets: ``E``, the number of critics.
        sub_sample_len: ``M``, ``1 <= M <= E``.
        generator: :class:`torch.Generator` for the draw, or ``None`` (global RNG).

    Returns:
        An ``int64`` tensor ``[M]``.
    """
    if isinstance(sub_sample_len, bool) or not isinstance(sub_sample_len, int) or not 1 <= sub_sample_len <= num_qvalue_nets:
        raise HyperparameterError("redq_loss", "sub_sample_len",
                                  f"expected an int in [1, {num_qvalue_nets}] (the number of critics), got {sub_sample_len!r}")
    return torch.randperm(num_qvalue_nets, generator=generator)[:sub_sample_len].sort()[0]


def redq_loss(
    td: TensorDictBase,
    *,
    log_alpha: Number = 0.0,
    min_log_alpha: Number | None = None,
    max_log_alpha: Number | None = None,
    target_entropy: Number | Literal["auto"] | None = "auto",
    sub_sample_len: int = 2,
    generator: torch.Generator | None = None,
    loss_function: str = "smooth_l1",
    keys: REDQKeys | Mapping[str, NestedKey] | None = None,
    **options: Unpack[OffPolicyOptions],
) -> TensorDict:
    """REDQ: SAC's soft targets over a random subset ``S`` of ``M`` target critics, every critic
    trained on its own.

    - ``y = r + gamma (1 - terminated) min_{i in S} [Q_target_i(s', a') - alpha log pi(a'|s')]``,
      ``a' ~ pi(s')``; ``loss_qvalue = d(Q_i(s, a), y)`` per critic ``[E, *B]``;
    - ``loss_actor = alpha log pi(a~|s) - Q_i(s, a~)`` per critic ``[E, *B]``;
    - ``loss_alpha = -alpha (log pi + target_entropy)`` over the samples at ``s`` and ``s'``
      ``[2, *B]`` (TorchRL's REDQ multiplies by ``alpha``, not ``log_alpha``).

    ``alpha = exp(clamp(log_alpha, min_log_alpha, max_log_alpha))``; it enters ``y`` and
    ``loss_actor`` detached and ``loss_alpha`` with the gradient of ``exp(log_alpha)`` at the
    clamped value (a straight-through clamp, as TorchRL). ``y`` is detached from every network
    output; log-probs are detached in ``loss_alpha``. ``Q_i(s, a~)`` is used as given: compute
    it with the critics' parameters detached (as TorchRL). No priority weights (as TorchRL).

    Args:
        td: input TensorDict (not modified); entries (``B`` = batch shape of the reward,
            ``E`` = number of critics):

            - ``"state_action_value"`` ``[E, *B, 1]``: ``Q_i(s, a)`` (with gradients);
            - ``("next", "state_action_value")`` ``[E, *B, 1]``: ``Q_target_i(s', a')`` (only
              the rows in the subset are read);
            - ``("next", "log_prob")`` ``[*B]``: ``log pi(a'|s')``;
            - ``"state_action_value_actor"`` ``[E, *B, 1]``: ``Q_i(s, a~)``;
            - ``"log_prob"`` ``[*B]``: ``log pi(a~|s)`` (with gradients);
            - optional ``"critic_subset"`` ``[M]`` (int64 indices into ``E``): drawn with
              :func:`redq_critic_subset` when absent;
            - ``("next", "reward"/"done"/"terminated")`` ``[*B, 1]``; ``"action"`` ``[*B, A]``
              when ``target_entropy="auto"``; optional masks, ``"gamma"``/``"lmbda"`` overrides.
        log_alpha: log of the temperature (number or 0-d tensor, e.g. a ``Parameter``).
        min_log_alpha, max_log_alpha: clamp bounds of ``log_alpha`` (numbers, 0-d tensors or ``None``).
        target_entropy: number or tensor; ``"auto"`` is minus the action dimensions per sample;
            ``None`` makes ``loss_alpha`` zero.
        sub_sample_len: ``M`` when the subset is drawn here.
        generator: :class:`torch.Generator` for that draw (``None``: the global RNG, as TorchRL).
        loss_function: ``"l2"``, ``"l1"`` or ``"smooth_l1"``.
        keys: :class:`~torchrl_functional.functional.keys.REDQKeys` or a mapping of renamed entries.
        **options: ``gamma``, ``value_estimator``, ``lmbda``, ``time_dim``, ``average_rewards``, ``reduction``,
            ``loss_mask_key`` (:class:`~torchrl_functional.functional.OffPolicyOptions`; no
            priority weights, as TorchRL's).

    Returns:
        TensorDict with ``loss_actor``, ``loss_qvalue``, ``loss_alpha``, and the detached ``alpha``,
        ``entropy`` (minus the mean log-prob at ``s`` and ``s'``), ``state_action_value_actor``
        ``[E, *B]``, ``action_log_prob_actor`` ``[*B]``, ``"next.state_value"`` ``[*B]``,
        ``target_value`` ``[*B]`` and the replay priority ``td_error = max_i (Q_i - y)^2`` ``[*B]``.
    """
    name = "redq_loss"
    o, keys, tr = open_call(name, td, keys, REDQKeys, options, loss_function=loss_function, fields=OffPolicyOptions)
    b = tr.batch_shape
    target_entropy = _target_entropy(name, td, keys, target_entropy, b)
    pred = read_ensemble(name, td, keys.state_action_value, b, "Q_i(s, a) of the critics (with gradients)")
    next_q = read_ensemble(name, td, next_key(keys.state_action_value), b,
                           "Q_target_i(s', a') of the target critics at a' ~ pi(s')", like=(keys.state_action_value, pred))
    next_log_prob = read_log_prob(name, td, next_key(keys.log_prob), b, "log pi(a'|s') of the action sampled at s'")
    actor_q = read_ensemble(name, td, keys.state_action_value_actor, b,
                            "Q_i(s, a~) of the critics (detached parameters) at a~ ~ pi(s)", like=(keys.state_action_value, pred))
    log_prob = read_log_prob(name, td, keys.log_prob, b, "log pi(a~|s) of the reparameterised sample at s")
    subset = _critic_subset(name, td, keys.critic_subset, pred, sub_sample_len, generator)
    log_alpha, _ = log_alpha_terms(name, log_alpha, pred)
    if min_log_alpha is not None or max_log_alpha is not None:
        clamped = log_alpha.clamp(min_log_alpha, max_log_alpha).detach()
    else:
        clamped = log_alpha.detach()
    alpha = clamped.exp()

    next_value = ensemble_min(next_q.index_select(0, subset) - alpha * next_log_prob.unsqueeze(-1))
    target = bootstrap_target(name, td, tr, next_value, o)
    log_probs = torch.stack([log_prob, next_log_prob], 0).unsqueeze(-1)
    mask = loss_mask(name, td, o.loss_mask_key)
    if mask is not None:  # per sample, shared by the critics (and by s and s' in loss_alpha)
        mask = (mask.squeeze(-1) if mask.ndim > len(b) else mask).unsqueeze(0)
    out = finish_losses(
        name,
        {
            "loss_actor": alpha * log_prob.unsqueeze(-1) - actor_q,
            "loss_qvalue": distance_loss(target.expand_as(pred), pred, loss_function),
            "loss_alpha": alpha_loss((log_alpha - log_alpha.detach() + clamped).exp(), log_probs, target_entropy),
        },
        o.reduction, mask,
    )
    out["alpha"] = alpha
    out["entropy"] = -log_probs.detach().mean()
    out["state_action_value_actor"] = actor_q.detach().squeeze(-1)
    out["action_log_prob_actor"] = log_prob.detach()
    out["next.state_value"] = next_value.detach().squeeze(-1)
    out["target_value"] = target.detach().squeeze(-1)
    out["td_error"] = (pred.detach() - target.detach()).pow(2).max(0)[0].squeeze(-1)
    return out


def _critic_subset(loss: str, td: TensorDictBase, key: NestedKey, pred: Tensor, sub_sample_len: int,
                   generator: torch.Generator | None) -> Tensor:
    """The ``critic_subset`` entry (checked), or a draw of :func:`redq_critic_subset`."""
    num_critics = pred.shape[0]
    subset = entry(td, key)
    if subset is None:
        return redq_critic_subset(num_critics, sub_sample_len, generator).to(pred.device)
    if subset.is_floating_point() or subset.is_complex() or subset.dtype == torch.bool:
        raise EntryDtypeError(loss, key, f"the critic subset must hold integer indices, got {subset.dtype}")
    if subset.ndim != 1 or not 1 <= subset.shape[0] <= num_critics:
        raise EntryShapeError(loss, key, f"expected a 1-d tensor of 1 to {num_critics} critic indices "
                                         f"(E={num_critics} critics), got shape {tuple(subset.shape)}")
    if can_inspect_values(subset) and ((subset < 0) | (subset >= num_critics)).any():
        raise EntryShapeError(loss, key, f"holds indices outside [0, {num_critics}): {subset.tolist()}")
    return subset.long()

"""Soft actor-critic (continuous and discrete) as pure functions of a TensorDict of
precomputed Q-values and log-probs.

Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications" (arXiv 1812.05905);
with a value network: Haarnoja et al. 2018, "Soft Actor-Critic: Off-Policy Maximum Entropy
Deep Reinforcement Learning with a Stochastic Actor" (arXiv 1801.01290); discrete:
Christodoulou 2019, "Soft Actor-Critic for Discrete Action Settings" (arXiv 1910.07207).
Same outputs and numbers as TorchRL 0.14's ``SACLoss`` (version 2, and version 1 with a
value network) and ``DiscreteSACLoss``. The priority TorchRL writes into its input is
the returned ``"td_error"`` entry. TorchRL clamps ``log_alpha`` in place when
``min_alpha``/``max_alpha`` are set: with these functions that is a caller step
(``log_alpha.data.clamp_(min_log_alpha, max_log_alpha)`` before the call).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal, Unpack

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor

from ..errors import EntryShapeError, HyperparameterError
from ._offpolicy import (
    PrioritizedOffPolicyOptions,
    bootstrap_target,
    check_action_space,
    chosen_action_value,
    mask_and_weights,
    open_call,
    read_ensemble,
    read_log_prob,
    read_per_sample,
)
from ._td import check_float, finish_losses, next_key, require
from ._validation import check_range
from .keys import DiscreteSACKeys, NestedKey, SACKeys, SACV1Keys
from .value_learning import distance_loss, ensemble_distance, ensemble_min

__all__ = ["sac_loss", "sac_v1_loss", "discrete_sac_loss"]

Number = float | Tensor


def log_alpha_terms(loss: str, log_alpha: Number, like: Tensor) -> tuple[Tensor, Tensor]:
    """``(log_alpha, alpha)``: ``log_alpha`` as a tensor (graph kept) and ``alpha = exp(log_alpha)``
    **detached** (the temperature enters the actor and target terms as a constant, as in TorchRL)."""
    if isinstance(log_alpha, Tensor):
        check_float(loss, "log_alpha", log_alpha)
        if log_alpha.numel() != 1:
            raise HyperparameterError(loss, "log_alpha", f"expected a scalar, got shape {tuple(log_alpha.shape)}")
    elif isinstance(log_alpha, (int, float)) and not isinstance(log_alpha, bool):
        log_alpha = torch.tensor(float(log_alpha), dtype=like.dtype, device=like.device)
    else:
        raise HyperparameterError(loss, "log_alpha", f"expected a number or a tensor, got {type(log_alpha).__name__}")
    check_range(loss, "log_alpha", log_alpha)  # NaN check
    return log_alpha, log_alpha.detach().exp()


def alpha_loss(log_alpha: Tensor, log_prob: Tensor, target_entropy: Number | None) -> Tensor:
    """``-log_alpha * (log_prob.detach() + target_entropy)`` per sample (zeros without a target)."""
    if target_entropy is None:
        return torch.zeros_like(log_prob)
    return -log_alpha * (log_prob.detach() + target_entropy)


def _target_entropy(name: str, td: TensorDictBase, keys, target_entropy, batch_shape: torch.Size) -> Number | None:
    """``"auto"``: minus the number of action dimensions per sample (TorchRL's rule), summed over
    the heads of a composite action (a sub-TensorDict of actions)."""
    if not isinstance(target_entropy, str):
        return target_entropy
    if target_entropy != "auto":
        raise HyperparameterError(name, "target_entropy", f"expected a number, a tensor, None or 'auto', got {target_entropy!r}")
    action = require(name, td, keys.action, "target_entropy='auto' reads the action dimension from it")
    heads = action.items(True, True) if isinstance(action, TensorDictBase) else [((), action)]
    dims = 0
    for head, x in heads:
        if x.shape[: len(batch_shape)] != batch_shape:
            key = (keys.action if isinstance(keys.action, tuple) else (keys.action,)) + (
                head if isinstance(head, tuple) else (head,))
            raise EntryShapeError(name, key if head != () else keys.action,
                                  f"expected an action of shape {tuple(batch_shape)} + action dims (the batch of "
                                  f"the reward), got {tuple(x.shape)}")
        dims += x.shape[len(batch_shape):].numel()
    return -float(dims)


def sac_loss(
    td: TensorDictBase,
    *,
    log_alpha: Number = 0.0,
    target_entropy: Number | Literal["auto"] | None = "auto",
    loss_function: str = "smooth_l1",
    keys: SACKeys | Mapping[str, NestedKey] | None = None,
    **options: Unpack[PrioritizedOffPolicyOptions],
) -> TensorDict:
    """SAC (v2): soft Bellman critic loss, reparameterised actor loss and temperature loss.

    - ``y = r + gamma (1 - terminated) min_i [Q_target_i(s', a') - alpha log pi(a'|s')]``,
      ``a' ~ pi(s')``; ``loss_qvalue = sum_i d(Q_i(s, a), y)``;
    - ``loss_actor = alpha log pi(a~|s) - min_i Q_i(s, a~)``, ``a~ ~ pi(s)`` reparameterised;
    - ``loss_alpha = -log_alpha (log pi(a~|s) + target_entropy)``.

    Stop-gradients: ``y`` is detached from every network output (the reward and ``gamma``
    keep their graphs); ``alpha = exp(log_alpha)`` enters ``y`` and ``loss_actor`` detached;
    ``loss_alpha`` uses ``log pi(a~|s)`` detached and carries the gradient to ``log_alpha``.
    ``Q_i(s, a~)`` is used as given: compute it with the critics' parameters detached
    (as TorchRL) so that ``loss_actor`` trains the actor only.

    Args:
        td: input TensorDict (not modified); entries (``B`` = batch shape of the reward,
            ``E`` = number of critics):

            - ``"state_action_value"`` ``[E, *B, 1]``: ``Q_i(s, a)`` (with gradients);
            - ``("next", "state_action_value")`` ``[E, *B, 1]``: ``Q_target_i(s', a')``;
            - ``("next", "log_prob")`` ``[*B]``: ``log pi(a'|s')``;
            - ``"state_action_value_actor"`` ``[E, *B, 1]``: ``Q_i(s, a~)``;
            - ``"log_prob"`` ``[*B]``: ``log pi(a~|s)`` (with gradients);
            - ``("next", "reward"/"done"/"terminated")`` ``[*B, 1]``;
            - ``"action"`` ``[*B, A]`` when ``target_entropy="auto"``;
            - optional ``"priority_weight"`` ``[*B]``, masks, ``"gamma"``/``"lmbda"`` overrides.
        log_alpha: log of the temperature (number or 0-d tensor, e.g. a ``Parameter``).
        target_entropy: number or tensor; ``"auto"`` is minus the action dimensions per sample (summed over
            the heads of a composite action, a sub-TensorDict); ``None`` makes ``loss_alpha`` zero.
        loss_function: ``"l2"``, ``"l1"`` or ``"smooth_l1"``.
        keys: :class:`~torchrl_functional.functional.keys.SACKeys` or a mapping of renamed entries.
        **options: ``gamma``, ``value_estimator``, ``lmbda``, ``time_dim``, ``average_rewards``, ``reduction``,
            ``loss_mask_key``, ``use_prioritized_weights``
            (:class:`~torchrl_functional.functional.PrioritizedOffPolicyOptions`).

    Returns:
        TensorDict with ``loss_actor``, ``loss_qvalue``, ``loss_alpha``, ``alpha`` (detached),
        ``entropy = -mean log pi(a~|s)`` (detached) and the replay priority
        ``td_error = max_i |Q_i(s, a) - y|`` ``[*B]``.
    """
    out, _ = soft_actor_critic("sac_loss", td, keys, SACKeys, options, log_alpha=log_alpha,
                               target_entropy=target_entropy, loss_function=loss_function)
    return out


def soft_actor_critic(
    name: str,
    td: TensorDictBase,
    keys: SACKeys | Mapping[str, NestedKey] | None,
    keys_cls: type[SACKeys],
    options: Mapping[str, Any],
    *,
    log_alpha: Number,
    target_entropy: Number | Literal["auto"] | None,
    loss_function: str,
    fields: type = PrioritizedOffPolicyOptions,
    next_hint: str = "Q_target_i(s', a') of the target critics at a' ~ pi(s')",
) -> tuple[TensorDict, Tensor]:
    """The SAC (v2) losses of :func:`sac_loss` for the loss ``name`` (also :func:`crossq_loss`).

    Args:
        name: the loss name used in error messages.
        td: input TensorDict (not modified), entries as :func:`sac_loss`.
        keys: as :func:`sac_loss`, resolved against ``keys_cls`` (:class:`~torchrl_functional.functional.keys.SACKeys`
            or a subclass).
        keys_cls: the loss's keys class.
        options: the ``**options`` of the loss (:class:`~torchrl_functional.functional.OffPolicyOptions`).
        log_alpha, target_entropy, loss_function: as :func:`sac_loss`.
        fields: the options ``TypedDict`` the loss declares (``use_prioritized_weights`` with
            :class:`~torchrl_functional.functional.PrioritizedOffPolicyOptions`, as TorchRL's ``SACLoss``).
        next_hint: what ``("next", state_action_value)`` holds, for the missing-entry message.

    Returns:
        The output TensorDict of :func:`sac_loss` and ``log pi(a~|s)`` ``[*B, 1]`` as given.
    """
    options, keys, tr = open_call(name, td, keys, keys_cls, options, loss_function=loss_function,
                                  fields=fields)
    b = tr.batch_shape
    target_entropy = _target_entropy(name, td, keys, target_entropy, b)
    pred = read_ensemble(name, td, keys.state_action_value, b, "Q_i(s, a) of the critics (with gradients)")
    next_q = read_ensemble(name, td, next_key(keys.state_action_value), b,
                           next_hint, like=(keys.state_action_value, pred))
    next_log_prob = read_log_prob(name, td, next_key(keys.log_prob), b, "log pi(a'|s') of the action sampled at s'")
    actor_q = read_ensemble(name, td, keys.state_action_value_actor, b,
                            "Q_i(s, a~) of the critics (detached parameters) at a~ ~ pi(s)", like=(keys.state_action_value, pred))
    log_prob = read_log_prob(name, td, keys.log_prob, b, "log pi(a~|s) of the reparameterised sample at s")
    log_alpha, alpha = log_alpha_terms(name, log_alpha, pred)

    next_value = ensemble_min(next_q - alpha * next_log_prob.unsqueeze(-1))
    target = bootstrap_target(name, td, tr, next_value, options)
    log_prob = log_prob.unsqueeze(-1)
    out = finish_losses(
        name,
        {
            "loss_actor": alpha * log_prob - ensemble_min(actor_q),
            "loss_qvalue": ensemble_distance(pred, target, loss_function),
            "loss_alpha": alpha_loss(log_alpha, log_prob, target_entropy),
        },
        options.reduction, *mask_and_weights(name, td, keys, options, b),
    )
    out["alpha"] = alpha
    out["entropy"] = -log_prob.detach().mean()
    out["td_error"] = (pred.detach() - target.detach()).abs().max(0)[0].squeeze(-1)
    return out, log_prob


def sac_v1_loss(
    td: TensorDictBase,
    *,
    log_alpha: Number = 0.0,
    target_entropy: Number | Literal["auto"] | None = "auto",
    loss_function: str = "smooth_l1",
    keys: SACV1Keys | Mapping[str, NestedKey] | None = None,
    **options: Unpack[PrioritizedOffPolicyOptions],
) -> TensorDict:
    """SAC with a state-value network (TorchRL's ``SACLoss`` version 1).

    - ``loss_qvalue = d(Q(s, a), y)``, ``y = r + gamma (1 - terminated) V_target(s')``, each
      sample scored by the critic it is assigned to;
    - ``loss_value = d(V(s), min_i Q_target_i(s, a^) - alpha log pi_target(a^|s))``, ``a^ ~ pi_target(s)``;
    - ``loss_actor`` and ``loss_alpha`` as :func:`sac_loss`.

    Stop-gradients: ``y`` and the value target are detached from every network output (the
    reward and ``gamma`` keep their graphs); ``alpha`` is detached but in ``loss_alpha``.

    Args:
        td: input TensorDict (not modified); entries (``B`` = batch shape of the reward,
            ``E`` = number of critics):

            - ``"state_action_value"`` ``[*B, 1]``: ``Q(s, a)`` of the critic assigned to each
              sample (with gradients; TorchRL assigns ``E`` equal chunks of the first batch
              dimension, critic ``i`` to chunk ``i``);
            - ``"state_value"`` ``[*B, 1]``: ``V(s)`` (with gradients); ``("next", "state_value")``:
              ``V_target(s')``;
            - ``"target_state_action_value"`` ``[E, *B, 1]`` and ``"target_log_prob"`` ``[*B]``:
              the target critics and the target actor's log-prob at ``a^ ~ pi_target(s)``;
            - ``"state_action_value_actor"`` ``[E, *B, 1]``, ``"log_prob"`` ``[*B]``: the actor
              term, as :func:`sac_loss`; ``("next", "reward"/"done"/"terminated")`` ``[*B, 1]``;
            - ``"action"`` when ``target_entropy="auto"``; optional ``"priority_weight"``, masks,
              n-step data, ``"gamma"``/``"lmbda"`` overrides.
        log_alpha, target_entropy, loss_function: as :func:`sac_loss`.
        **options: as :func:`sac_loss`.
        keys: :class:`~torchrl_functional.functional.keys.SACV1Keys` or a mapping of renamed entries.

    Returns:
        TensorDict with ``loss_actor``, ``loss_qvalue``, ``loss_alpha``, ``loss_value``,
        ``alpha``, ``entropy`` and the replay priority ``td_error = (Q(s, a) - y)^2`` ``[*B]``.
    """
    name = "sac_v1_loss"
    o, keys, tr = open_call(name, td, keys, SACV1Keys, options, loss_function=loss_function)
    b = tr.batch_shape
    target_entropy = _target_entropy(name, td, keys, target_entropy, b)
    pred = read_per_sample(name, td, keys.state_action_value, b, "Q(s, a) of the critic assigned to each sample (with gradients)")
    value = read_per_sample(name, td, keys.value, b, "V(s) of the value network (with gradients)")
    next_value = read_per_sample(name, td, next_key(keys.value), b, "V_target(s') of the target value network")
    target_q = read_ensemble(name, td, keys.target_state_action_value, b,
                             "Q_target_i(s, a^) of the target critics at a^ ~ pi_target(s)")
    target_log_prob = read_log_prob(name, td, keys.target_log_prob, b, "log pi_target(a^|s) of the target actor's sample")
    actor_q = read_ensemble(name, td, keys.state_action_value_actor, b,
                            "Q_i(s, a~) of the critics (detached parameters) at a~ ~ pi(s)",
                            like=(keys.target_state_action_value, target_q))
    log_prob = read_log_prob(name, td, keys.log_prob, b, "log pi(a~|s) of the reparameterised sample at s").unsqueeze(-1)
    log_alpha, alpha = log_alpha_terms(name, log_alpha, pred)

    target = bootstrap_target(name, td, tr, next_value, o)
    value_target = (ensemble_min(target_q) - alpha * target_log_prob.unsqueeze(-1)).detach()
    out = finish_losses(
        name,
        {
            "loss_actor": alpha * log_prob - ensemble_min(actor_q),
            "loss_qvalue": distance_loss(target, pred, loss_function),
            "loss_alpha": alpha_loss(log_alpha, log_prob, target_entropy),
            "loss_value": distance_loss(value_target, value, loss_function),
        },
        o.reduction, *mask_and_weights(name, td, keys, o, b),
    )
    out["alpha"] = alpha
    out["entropy"] = -log_prob.detach().mean()
    out["td_error"] = (pred.detach() - target.detach()).pow(2).squeeze(-1)
    return out


def _categorical_log_probs(logits: Tensor) -> tuple[Tensor, Tensor]:
    """``(log pi, pi)`` from logits as ``torch.distributions.Categorical`` computes them."""
    log_pi = logits - logits.logsumexp(dim=-1, keepdim=True)
    return log_pi, torch.softmax(log_pi, dim=-1)


def discrete_sac_loss(
    td: TensorDictBase,
    *,
    log_alpha: Number = 0.0,
    target_entropy: Number | Literal["auto"] | None = "auto",
    num_actions: int | None = None,
    target_entropy_weight: float = 0.98,
    action_space: Literal["categorical", "one_hot"] = "categorical",
    skip_done_states: bool = False,
    loss_function: str = "smooth_l1",
    keys: DiscreteSACKeys | Mapping[str, NestedKey] | None = None,
    **options: Unpack[PrioritizedOffPolicyOptions],
) -> TensorDict:
    """Discrete SAC: expectations over the policy replace the sampled actions of :func:`sac_loss`.

    - ``y = r + gamma (1 - terminated) sum_a pi(a|s') [min_i Q_target_i(s', a) - alpha log pi(a|s')]``;
      ``loss_qvalue = sum_i d(Q_i(s, a_t), y)``;
    - ``loss_actor = sum_a pi(a|s) [alpha log pi(a|s) - min_i Q_i(s, a)]`` with ``Q`` detached;
    - ``loss_alpha = -log_alpha (sum_a pi(a|s) log pi(a|s) + target_entropy)``.

    ``y`` is detached from every network output; ``alpha`` enters ``y`` and ``loss_actor``
    detached; the actor term uses ``Q_i(s, .)`` detached (one critic pass serves both terms).

    Args:
        td: input TensorDict (not modified); entries (``B`` batch, ``E`` critics, ``N`` actions):

            - ``"action_value"`` ``[E, *B, N]``: ``Q_i(s, .)`` (with gradients);
            - ``("next", "action_value")`` ``[E, *B, N]``: ``Q_target_i(s', .)``;
            - ``"logits"`` ``[*B, N]``: the policy at ``s`` (with gradients); ``("next", "logits")`` at ``s'``;
            - ``"action"``: integer ``[*B]``/``[*B, 1]`` or one-hot ``[*B, N]``;
            - ``("next", "reward"/"done"/"terminated")`` ``[*B, 1]``; optional
              ``"priority_weight"``, masks, ``"gamma"``/``"lmbda"`` overrides.
        log_alpha: log of the temperature (number or 0-d tensor).
        target_entropy: number or tensor; ``"auto"`` is ``-target_entropy_weight * log(1 / N)``;
            ``None`` makes ``loss_alpha`` zero.
        num_actions, target_entropy_weight: for that default (``N`` from the logits if not given).
        action_space: ``"categorical"`` or ``"one_hot"``.
        skip_done_states: TorchRL's option of that name: the next-state value of a ``done``
            transition is 0 (its ``("next", ...)`` network outputs are not read; the module
            does not run the networks there) and ``log pi(.|s')`` is read from the normalised
            logits (else ``log max(pi, 1e-8)``).
        loss_function, keys: as :func:`sac_loss`.
        **options: as :func:`sac_loss`.

    Returns:
        TensorDict with ``loss_actor``, ``loss_qvalue``, ``loss_alpha``, ``alpha``, ``entropy``
        and ``td_error = max_i |Q_i(s, a_t) - y|`` ``[*B]``.
    """
    name = "discrete_sac_loss"
    o, keys, tr = open_call(name, td, keys, DiscreteSACKeys, options, loss_function=loss_function)
    action_space = check_action_space(name, action_space)
    b = tr.batch_shape
    q = read_ensemble(name, td, keys.action_value, b, "Q_i(s, .) of the critics (with gradients)", None)
    n = q.shape[-1]
    next_q = read_ensemble(name, td, next_key(keys.action_value), b, "Q_target_i(s', .) of the target critics", n, like=(keys.action_value, q))
    logits = read_per_sample(name, td, keys.logits, b, "the policy's logits at s (with gradients)", n)
    next_logits = read_per_sample(name, td, next_key(keys.logits), b, "the policy's logits at s'", n)
    log_alpha, alpha = log_alpha_terms(name, log_alpha, q)
    if isinstance(target_entropy, str):
        if target_entropy != "auto":
            raise HyperparameterError(name, "target_entropy", f"expected a number, a tensor, None or 'auto', got {target_entropy!r}")
        target_entropy = -float(math.log(1.0 / (num_actions or n)) * target_entropy_weight)

    with torch.no_grad():
        log_pi_next, next_prob = _categorical_log_probs(next_logits.detach())
        if skip_done_states:
            next_log_prob, next_prob = log_pi_next, log_pi_next.exp()
        else:
            next_log_prob = torch.log(torch.where(next_prob == 0, 1e-8, next_prob))
    next_value = (next_prob * (ensemble_min(next_q) - alpha * next_log_prob)).sum(-1, keepdim=True)
    if skip_done_states:
        next_value = torch.where(tr.done, torch.zeros_like(next_value), next_value)
    target = bootstrap_target(name, td, tr, next_value, o)
    pred = chosen_action_value(name, td, keys.action, q, b, action_space)

    log_pi, pi = _categorical_log_probs(logits)
    expected_log_pi = (log_pi * pi).sum(-1, keepdim=True)
    out = finish_losses(
        name,
        {
            "loss_actor": (pi * (alpha * log_pi - ensemble_min(q.detach()))).sum(-1, keepdim=True),
            "loss_qvalue": ensemble_distance(pred, target, loss_function),
            "loss_alpha": alpha_loss(log_alpha, expected_log_pi, target_entropy),
        },
        o.reduction, *mask_and_weights(name, td, keys, o, b),
    )
    out["alpha"] = alpha
    out["entropy"] = -expected_log_pi.detach().mean()
    out["td_error"] = (pred.detach() - target.detach()).abs().max(0)[0].squeeze(-1)
    return out

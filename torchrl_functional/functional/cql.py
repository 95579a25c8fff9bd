"""Conservative Q-learning (continuous and discrete) as pure functions of a TensorDict of
precomputed Q-values and log-probs.

Kumar et al. 2020, "Conservative Q-Learning for Offline Reinforcement Learning"
(arXiv 2006.04779). Same numbers as TorchRL 0.14's ``CQLLoss`` and ``DiscreteCQLLoss``
(see each function for the one place where the per-sample penalty differs); the priority
TorchRL writes into its input is the returned ``"td_error"`` entry.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal, Unpack

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor

from ..errors import EntryShapeError
from ._offpolicy import OffPolicyOptions, bootstrap_target, mask_and_weights, open_call, read_ensemble, read_log_prob
from ._td import check_float, entry, finish_losses, loss_mask, next_key, reduce_loss, require
from ._validation import check_range
from .dqn import discrete_q_terms
from .keys import CQLKeys, DiscreteCQLKeys, NestedKey
from .sac import _target_entropy, alpha_loss, log_alpha_terms
from .value_learning import distance_loss, ensemble_distance, ensemble_min

__all__ = ["cql_loss", "discrete_cql_loss"]

Number = float | Tensor


def _num_samples(x: Tensor, batch_shape: torch.Size) -> int:
    """``K`` of an ``[E, *B, K, 1]`` entry (1 if malformed: the shape check then reports it)."""
    return x.shape[-2] if isinstance(x, Tensor) and x.ndim == len(batch_shape) + 3 else 1


def cql_loss(
    td: TensorDictBase,
    *,
    log_alpha: Number = 0.0,
    target_entropy: Number | Literal["auto"] | None = "auto",
    temperature: Number = 1.0,
    min_q_weight: Number = 1.0,
    max_q_backup: bool = False,
    deterministic_backup: bool = True,
    with_lagrange: bool = False,
    log_alpha_prime: Number = 0.0,
    lagrange_thresh: Number = 0.0,
    loss_function: str = "smooth_l1",
    keys: CQLKeys | Mapping[str, NestedKey] | None = None,
    **options: Unpack[OffPolicyOptions],
) -> TensorDict:
    """CQL(H) on top of SAC: soft critic loss plus the conservative penalty, SAC actor,
    behaviour-cloning actor and temperature losses.

    With ``u ~ U(-1, 1)^A``, ``a_k ~ pi(s)``, ``a'_k ~ pi(s')`` (``K`` samples each):

    - ``y = r + gamma (1 - terminated) V'``, ``V' = min_i Q_target_i(s', a')`` (minus
      ``alpha log pi(a'|s')`` unless ``deterministic_backup``; with ``max_q_backup``,
      ``V' = min_i max_k Q_target_i(s', a'_k)``); ``loss_qvalue = sum_i d(Q_i(s, a), y)``;
    - ``loss_cql = sum_i [mean_k T lse_T(Q_i(s, u) - log 0.5^A, Q_i(s', a'_k) - log pi(a'_k|s'),
      Q_i(s, a_k) - log pi(a_k|s)) * min_q_weight - min_q_weight Q_i(s, a)]`` where
      ``lse_T(x) = logsumexp(x / T)`` over the three terms (as TorchRL computes it);
    - ``loss_actor = alpha log pi(a~|s) - min_i Q_i(s, a~)``;
      ``loss_actor_bc = alpha log pi(a~_bc|s) - log pi(a|s)``;
      ``loss_alpha = -log_alpha (log pi(a~|s) + target_entropy)``;
    - with ``with_lagrange``: ``loss_alpha_prime = -alpha' / 2 * sum_i (mean(cql_i) - lagrange_thresh)``,
      ``alpha' = min(exp(log_alpha_prime), 1e6)``.

    Stop-gradients: ``y`` is detached from every network output; ``alpha`` is detached
    everywhere but in ``loss_alpha``; the log-probs of the penalty's sampled actions are
    detached. Difference from TorchRL: TorchRL broadcasts the penalty's ``[*B]`` log-sum-exp
    term against ``Q_i(s, a)`` ``[*B, 1]`` to ``[*B, B]`` and averages the spurious axis,
    which gives every sample the batch-mean log-sum-exp. Here each sample keeps its own; the
    ``"mean"`` and ``"sum"`` reductions without a mask, and the total of ``"none"``, are equal.

    Args:
        td: input TensorDict (not modified); entries (``B`` batch, ``E`` critics, ``K`` samples):

            - ``"state_action_value"`` ``[E, *B, 1]``: ``Q_i(s, a)`` (with gradients);
            - ``("next", "state_action_value")``: ``Q_target_i(s', a')`` ``[E, *B, 1]``, or
              ``[E, *B, K, 1]`` with ``max_q_backup``; ``("next", "log_prob")`` ``[*B]``:
              ``log pi(a'|s')`` (only without ``deterministic_backup``);
            - ``"cql_random_value"``, ``"cql_current_value"``, ``"cql_next_value"`` ``[E, *B, K, 1]``
              and ``"cql_current_log_prob"``, ``"cql_next_log_prob"`` ``[*B, K]`` (see
              :class:`~torchrl_functional.functional.keys.CQLKeys`);
            - ``"state_action_value_actor"`` ``[E, *B, 1]`` and ``"log_prob"`` ``[*B]`` at ``a~ ~ pi(s)``;
            - ``"bc_log_prob"`` ``[*B]`` and optional ``"bc_sample_log_prob"`` ``[*B]``;
            - ``"action"`` ``[*B, A]``; ``("next", "reward"/"done"/"terminated")`` ``[*B, 1]``;
              optional masks and ``"gamma"``/``"lmbda"`` overrides.
        log_alpha, target_entropy: temperature and entropy target (see :func:`sac_loss`).
        temperature, min_q_weight: of the conservative penalty.
        max_q_backup, deterministic_backup: the bootstrap value ``V'``.
        with_lagrange, log_alpha_prime, lagrange_thresh: the Lagrangian penalty weight.
        loss_function, keys: as :func:`sac_loss`.
        **options: ``gamma``, ``value_estimator``, ``lmbda``, ``time_dim``, ``average_rewards``, ``reduction``,
            ``loss_mask_key`` (:class:`~torchrl_functional.functional.OffPolicyOptions`; no
            priority weights, as TorchRL's).

    Returns:
        TensorDict with ``loss_actor``, ``loss_actor_bc``, ``loss_qvalue``, ``loss_cql``,
        ``loss_alpha`` (and ``loss_alpha_prime``), ``alpha``, ``entropy`` and
        ``td_error = max_i (Q_i - y)^2`` ``[*B]``.
    """
    name = "cql_loss"
    o, keys, tr = open_call(name, td, keys, CQLKeys, options, loss_function=loss_function, fields=OffPolicyOptions)
    check_range(name, "temperature", temperature, 0.0, low_open=True)
    b = tr.batch_shape
    target_entropy = _target_entropy(name, td, keys, target_entropy, b)
    pred = read_ensemble(name, td, keys.state_action_value, b, "Q_i(s, a) of the critics (with gradients)")
    log_alpha, alpha = log_alpha_terms(name, log_alpha, pred)

    # bootstrapped target
    if max_q_backup:
        k = _num_samples(require(name, td, next_key(keys.state_action_value), "Q_target_i(s', a'_k) of the target critics"), b)
        next_q = read_ensemble(name, td, next_key(keys.state_action_value), b,
                               "Q_target_i(s', a'_k) of the target critics at K actions sampled at s'",
                               extra_dims=(k,), like=(keys.state_action_value, pred))
        next_value = ensemble_min(next_q.max(-2)[0])
    else:
        next_q = read_ensemble(name, td, next_key(keys.state_action_value), b,
                               "Q_target_i(s', a') of the target critics at a' ~ pi(s')", like=(keys.state_action_value, pred))
        next_value = ensemble_min(next_q)
        if not deterministic_backup:
            next_log_prob = read_log_prob(name, td, next_key(keys.log_prob), b, "log pi(a'|s') of the action sampled at s'")
            next_value = next_value - alpha * next_log_prob.unsqueeze(-1)
    target = bootstrap_target(name, td, tr, next_value, o)

    # conservative penalty
    extra = (_num_samples(require(name, td, keys.cql_random_value, "Q_i(s, u) at K uniform random actions"), b),)
    q_random = read_ensemble(name, td, keys.cql_random_value, b, "Q_i(s, u) at K uniform random actions", extra_dims=extra, like=(keys.state_action_value, pred))
    q_curr = read_ensemble(name, td, keys.cql_current_value, b, "Q_i(s, a_k) at K actions sampled at s", extra_dims=extra, like=(keys.state_action_value, pred))
    q_next = read_ensemble(name, td, keys.cql_next_value, b, "Q_i(s', a'_k) at K actions sampled at s'", extra_dims=extra, like=(keys.state_action_value, pred))
    curr_lp = read_log_prob(name, td, keys.cql_current_log_prob, b, "log pi(a_k|s) of the K actions sampled at s", extra)
    next_lp = read_log_prob(name, td, keys.cql_next_log_prob, b, "log pi(a'_k|s') of the K actions sampled at s'", extra)
    action = require(name, td, keys.action, "the replayed action; its last dimension sets the uniform density")
    check_float(name, keys.action, action)
    if action.ndim != len(b) + 1 or action.shape[:-1] != b:
        raise EntryShapeError(name, keys.action, f"expected shape {tuple(b) + ('A',)} with batch {tuple(b)} "
                                                 f"(the batch of the reward), got {tuple(action.shape)}")
    random_density = math.log(0.5 ** action.shape[-1])
    cat = torch.cat(
        [
            q_random - random_density,
            q_next - next_lp.detach().unsqueeze(-1),
            q_curr - curr_lp.detach().unsqueeze(-1),
        ],
        -1,
    )  # [E, *B, K, 3]
    lse = torch.logsumexp(cat / temperature, dim=-1) * min_q_weight * temperature  # [E, *B, K]
    cql_per_critic = lse.mean(-1, keepdim=True) - pred * min_q_weight  # [E, *B, 1]

    # actor, behaviour cloning, temperature
    actor_q = read_ensemble(name, td, keys.state_action_value_actor, b,
                            "Q_i(s, a~) of the critics (detached parameters) at a~ ~ pi(s)", like=(keys.state_action_value, pred))
    log_prob = read_log_prob(name, td, keys.log_prob, b, "log pi(a~|s) of the reparameterised sample at s").unsqueeze(-1)
    bc_log_prob = read_log_prob(name, td, keys.bc_log_prob, b, "log pi(a|s) of the replayed action (with gradients)")
    bc_sample = entry(td, keys.bc_sample_log_prob)
    if bc_sample is None:
        bc_sample = log_prob
    else:
        bc_sample = read_log_prob(name, td, keys.bc_sample_log_prob, b, "").unsqueeze(-1)

    mask = loss_mask(name, td, o.loss_mask_key)
    out = finish_losses(
        name,
        {
            "loss_actor": alpha * log_prob - ensemble_min(actor_q),
            "loss_actor_bc": alpha * bc_sample - bc_log_prob.unsqueeze(-1),
            "loss_qvalue": ensemble_distance(pred, target, loss_function),
            "loss_cql": cql_per_critic.sum(0),
            "loss_alpha": alpha_loss(log_alpha, log_prob, target_entropy),
        },
        o.reduction, mask,
    )
    if with_lagrange:
        if not isinstance(log_alpha_prime, Tensor):
            log_alpha_prime = torch.tensor(float(log_alpha_prime), dtype=pred.dtype, device=pred.device)
        alpha_prime = torch.clamp_max(log_alpha_prime.exp(), max=1000000.0)
        gaps = [alpha_prime * (reduce_loss(name, c, "mean", mask) - lagrange_thresh) for c in cql_per_critic]
        out["loss_alpha_prime"] = (-sum(gaps) * 0.5).mean()
    out["alpha"] = alpha
    out["entropy"] = -log_prob.detach().mean()
    out["td_error"] = (pred.detach() - target.detach()).pow(2).max(0)[0].squeeze(-1)
    return out


def discrete_cql_loss(
    td: TensorDictBase,
    *,
    action_space: Literal["categorical", "one_hot", "mult_one_hot"] = "categorical",
    loss_function: str = "l2",
    action_sizes: Sequence[int] | None = None,
    keys: DiscreteCQLKeys | Mapping[str, NestedKey] | None = None,
    **options: Unpack[OffPolicyOptions],
) -> TensorDict:
    """Discrete CQL: ``loss_qvalue = d(Q(s, a), y) / 2`` (the DQN target of :func:`dqn_loss`)
    and ``loss_cql = logsumexp_a' Q(s, a') - Q(s, a)``.

    ``y`` bootstraps from ``max_a' Q(s', a')`` of whatever network produced
    ``("next", "action_value")``, detached. (TorchRL 0.14's ``DiscreteCQLLoss`` evaluates it
    with the *online* parameters whatever ``delay_value`` says; the drop-in module does the
    same, to keep its numbers.)

    Args:
        td: input TensorDict (not modified): ``"action_value"`` ``[*B, N]`` (with gradients),
            ``("next", "action_value")`` ``[*B, N]``, ``"action"`` (integer ``[*B]``/``[*B, 1]``
            or one-hot ``[*B, N]``), ``("next", "reward"/"done"/"terminated")`` ``[*B, 1]``;
            optional masks and ``"gamma"``/``"lmbda"`` overrides.
        action_space, loss_function, action_sizes, keys: as :func:`dqn_loss` (with multi
            one-hot actions the ``logsumexp`` runs over all ``N`` values, as TorchRL's).
        **options: ``gamma``, ``value_estimator``, ``lmbda``, ``time_dim``, ``average_rewards``, ``reduction``,
            ``loss_mask_key`` (:class:`~torchrl_functional.functional.OffPolicyOptions`; no
            priority weights, as TorchRL's).

    Returns:
        TensorDict with ``loss_qvalue``, ``loss_cql``, the replay priority
        ``td_error = (Q(s, a) - y)^2`` ``[*B, 1]``, ``pred_value = mean Q(s, .)`` and
        ``target_value = mean y`` (detached).
    """
    name = "discrete_cql_loss"
    o, keys, tr = open_call(name, td, keys, DiscreteCQLKeys, options, loss_function=loss_function,
                            fields=OffPolicyOptions)
    action_value, pred, target = discrete_q_terms(name, td, keys, tr, action_space=action_space, double_dqn=False,
                                                  options=o, action_sizes=action_sizes)
    out = finish_losses(
        name,
        {
            "loss_qvalue": 0.5 * distance_loss(target, pred, loss_function),
            "loss_cql": torch.logsumexp(action_value, dim=-1, keepdim=True) - pred,
        },
        o.reduction, *mask_and_weights(name, td, keys, o, tr.batch_shape),
    )
    out["td_error"] = (pred - target).detach().pow(2)
    out["pred_value"] = action_value.detach().mean()
    out["target_value"] = target.detach().mean()
    return out

"""CrossQ (SAC without target networks, batch-normalised critics) as a pure function of a
TensorDict of precomputed Q-values and log-probs.

Bhatt et al. 2024, "CrossQ: Batch Normalization in Deep Reinforcement Learning for Greater
Sample Efficiency and Simplicity" (arXiv 1902.05605). Same outputs and numbers as TorchRL
0.14's ``CrossQLoss``. The critics' joint forward over ``[(s, a); (s', a')]`` (one batch
normalisation over both halves) is the caller's: this function reads its two halves. TorchRL
clamps ``log_alpha`` in place when ``min_alpha``/``max_alpha`` are set: with this function that
is a caller step, as for :func:`sac_loss`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, Unpack

from tensordict import TensorDict, TensorDictBase
from torch import Tensor

from ._offpolicy import OffPolicyOptions
from .keys import CrossQKeys, NestedKey
from .sac import soft_actor_critic

__all__ = ["crossq_loss"]

Number = float | Tensor


def crossq_loss(
    td: TensorDictBase,
    *,
    log_alpha: Number = 0.0,
    target_entropy: Number | Literal["auto"] | None = "auto",
    loss_function: str = "smooth_l1",
    keys: CrossQKeys | Mapping[str, NestedKey] | None = None,
    **options: Unpack[OffPolicyOptions],
) -> TensorDict:
    """CrossQ: :func:`sac_loss`'s three losses with the bootstrap ``Q_i(s', a')`` from the online critics.

    - ``y = r + gamma (1 - terminated) min_i [Q_i(s', a') - alpha log pi(a'|s')]``, ``a' ~ pi(s')``;
      ``loss_qvalue = sum_i d(Q_i(s, a), y)``;
    - ``loss_actor = alpha log pi(a~|s) - min_i Q_i(s, a~)``; ``loss_alpha = -log_alpha (log pi(a~|s) + target_entropy)``.

    ``Q_i(s, a)`` and ``Q_i(s', a')`` are the two halves of one forward of the critics over the
    concatenated batch (train-mode batch normalisation sees both); ``y`` is detached from both
    halves (no target network: the stop-gradient replaces it). ``Q_i(s, a~)`` is used as given
    (TorchRL evaluates it with the critics' parameters detached and batch normalisation in eval
    mode). ``alpha = exp(log_alpha)`` enters ``y`` and ``loss_actor`` detached. No priority
    weights (as TorchRL).

    Args:
        td: input TensorDict (not modified); entries (``B`` = batch shape of the reward,
            ``E`` = number of critics):

            - ``"state_action_value"`` ``[E, *B, 1]``: ``Q_i(s, a)`` (with gradients);
            - ``("next", "state_action_value")`` ``[E, *B, 1]``: ``Q_i(s', a')`` (detached inside);
            - ``("next", "log_prob")`` ``[*B]``: ``log pi(a'|s')``;
            - ``"state_action_value_actor"`` ``[E, *B, 1]``: ``Q_i(s, a~)``;
            - ``"log_prob"`` ``[*B]``: ``log pi(a~|s)`` (with gradients);
            - ``("next", "reward"/"done"/"terminated")`` ``[*B, 1]``; ``"action"`` ``[*B, A]``
              when ``target_entropy="auto"``; optional masks, ``"gamma"``/``"lmbda"`` overrides.
        log_alpha, target_entropy, loss_function: as :func:`sac_loss`.
        keys: :class:`~torchrl_functional.functional.keys.CrossQKeys` or a mapping of renamed entries.
        **options: ``gamma``, ``value_estimator``, ``lmbda``, ``time_dim``, ``average_rewards``, ``reduction``,
            ``loss_mask_key`` (:class:`~torchrl_functional.functional.OffPolicyOptions`; no
            priority weights, as TorchRL's).

    Returns:
        TensorDict with ``loss_actor``, ``loss_qvalue``, ``loss_alpha``, and the detached ``alpha``,
        ``entropy = -mean log pi(a~|s)``, ``log_prob`` ``[*B]`` and the replay priority
        ``td_error = max_i |Q_i(s, a) - y|`` ``[*B]``.
    """
    name = "crossq_loss"
    out, log_prob = soft_actor_critic(
        name, td, keys, CrossQKeys, options, log_alpha=log_alpha, target_entropy=target_entropy,
        loss_function=loss_function, fields=OffPolicyOptions,
        next_hint="Q_i(s', a') of the critics at a' ~ pi(s') (the second half of their joint forward)",
    )
    out["log_prob"] = log_prob.detach().squeeze(-1)
    return out

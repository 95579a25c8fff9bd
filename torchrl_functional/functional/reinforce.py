"""REINFORCE with a learned baseline as a pure function of a TensorDict.

Williams 1992, "Simple statistical gradient-following algorithms for connectionist
reinforcement learning". Same outputs and numbers as TorchRL 0.14's ``ReinforceLoss``,
without its side effects (TorchRL writes the advantage and value target into the input).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

from tensordict import TensorDict, TensorDictBase
from torch import Tensor
from torch import distributions as D

from ._td import finish_losses
from ._terms import check_common, critic_outputs, prepare
from .keys import NestedKey, ReinforceKeys, resolve_keys
from .policy_gradient import policy_gradient_loss

__all__ = ["reinforce_loss"]

Number = float | Tensor


def reinforce_loss(
    td: TensorDictBase,
    dist_class: Callable[..., D.Distribution] | None = None,
    *,
    loss_critic_type: str = "smooth_l1",
    clip_value: Number | None = None,
    diagnostics: bool = True,
    reduction: Literal["mean", "sum", "none"] = "mean",
    loss_mask_key: NestedKey | None = "auto",
    value_estimator: Any = "gae",
    gamma: Number = 0.99,
    lmbda: Number = 0.95,
    time_dim: int | None = None,
    rho_thresh: Number = 1.0,
    c_thresh: Number = 1.0,
    keys: ReinforceKeys | Mapping[str, NestedKey] | None = None,
) -> TensorDict:
    """REINFORCE: ``loss_actor = -mean(log pi(a|s) * stop_gradient(A))`` and
    ``loss_value = mean d(value_target, V(s))`` (no coefficient, as TorchRL).

    The advantage is **detached** for the actor term (the baseline must not receive a
    policy gradient); use :func:`~torchrl_functional.functional.a2c_loss` to keep it. A
    composite (multi-head) policy's log-prob is the sum over its heads.

    Args:
        td: input TensorDict (not modified): ``"actor_output"`` (with ``dist_class``) or
            ``"log_prob"`` ``[*B]``; ``"action"``; ``"advantage"`` ``[*B, 1]`` or the entries
            to estimate it; ``"value_target"`` and ``"state_value"`` ``[*B, 1]``
            (``"old_state_value"`` with ``clip_value``). See
            :class:`~torchrl_functional.functional.keys.ReinforceKeys`.
        dist_class: distribution class (or callable) built from ``td["actor_output"]``.
        loss_critic_type: ``"smooth_l1"``, ``"l2"`` or ``"l1"``.
        clip_value: value clipping radius, or ``None``.
        diagnostics: add ``value_clip_fraction`` (logging only) with ``clip_value``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        loss_mask_key: ``"auto"``, an entry name or ``None``.
        value_estimator, gamma, lmbda, time_dim, rho_thresh, c_thresh: estimation of a missing
            advantage (see :func:`~torchrl_functional.functional.clip_ppo_loss`).
        keys: renamed entries.

    Returns:
        TensorDict with ``loss_actor``, ``loss_value`` and, with ``clip_value``,
        ``value_clip_fraction``.
    """
    name = "reinforce_loss"
    check_common(name, reduction, False, 1, 0.0, None, loss_critic_type, clip_value)
    batch = prepare(
        name, td, dist_class, ReinforceKeys, resolve_keys(keys, ReinforceKeys, name), importance_weighted=False,
        loss_mask_key=loss_mask_key, value_estimator=value_estimator, gamma=gamma, lmbda=lmbda,
        time_dim=time_dim, rho_thresh=rho_thresh, c_thresh=c_thresh,
    )
    out: dict[str, Tensor] = {
        "loss_actor": policy_gradient_loss(batch.policy.log_prob.unsqueeze(-1), batch.advantage.detach())
    }
    out.update(critic_outputs(name, td, batch, critic_coeff=None, loss_critic_type=loss_critic_type,
                              clip_value=clip_value, log_explained_variance=False, diagnostics=diagnostics,
                              output="loss_value"))
    return finish_losses(name, out, reduction, batch.mask)

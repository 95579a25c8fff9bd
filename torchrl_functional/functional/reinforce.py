"""REINFORCE with a learned baseline as a pure function of a TensorDict.

Williams 1992, "Simple statistical gradient-following algorithms for connectionist
reinforcement learning". Same outputs and numbers as TorchRL 0.14's ``ReinforceLoss``,
without its side effects (TorchRL writes the advantage and value target into the input).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal

from tensordict import TensorDict, TensorDictBase
from torch import Tensor
from torch import distributions as D

from ._onpolicy import advantage_and_target, check_critic_options, critic_terms, current_log_prob
from ._td import check_reduction, finish_losses, loss_mask
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
    reduction: Literal["mean", "sum", "none"] = "mean",
    loss_mask_key: NestedKey | None = "auto",
    value_estimator: str = "gae",
    gamma: Number = 0.99,
    lmbda: Number = 0.95,
    time_dim: int | None = None,
    keys: ReinforceKeys | Mapping[str, NestedKey] | None = None,
) -> TensorDict:
    """REINFORCE: ``loss_actor = -mean(log pi(a|s) * stop_gradient(A))`` and
    ``loss_value = mean d(value_target, V(s))`` (no coefficient, as TorchRL).

    The advantage is **detached** for the actor term (the baseline must not receive a
    policy gradient); use :func:`~torchrl_functional.functional.a2c_loss` to keep it.

    Args:
        td: input TensorDict (not modified): ``"actor_output"`` (with ``dist_class``) or
            ``"log_prob"`` ``[*B]``; ``"action"``; ``"advantage"`` ``[*B, 1]`` or the entries
            to estimate it; ``"value_target"`` and ``"state_value"`` ``[*B, 1]``
            (``"old_state_value"`` with ``clip_value``). See
            :class:`~torchrl_functional.functional.keys.ReinforceKeys`.
        dist_class: distribution class (or callable) built from ``td["actor_output"]``.
        loss_critic_type: ``"smooth_l1"``, ``"l2"`` or ``"l1"``.
        clip_value: value clipping radius, or ``None``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        loss_mask_key: ``"auto"``, an entry name or ``None``.
        value_estimator, gamma, lmbda, time_dim: estimation of a missing advantage.
        keys: renamed entries.

    Returns:
        TensorDict with ``loss_actor``, ``loss_value`` and, with ``clip_value``,
        ``value_clip_fraction``.
    """
    name = "reinforce_loss"
    if not isinstance(td, TensorDictBase):
        raise TypeError(f"{name}: expected a TensorDict, got {type(td).__name__}")
    check_reduction(name, reduction)
    check_critic_options(name, loss_critic_type, clip_value, None)
    keys = resolve_keys(keys, ReinforceKeys, name)
    log_prob, _ = current_log_prob(name, td, keys, dist_class)
    batch_shape = log_prob.shape
    advantage, value_target = advantage_and_target(
        name, td, keys, batch_shape,
        value_estimator=value_estimator, gamma=gamma, lmbda=lmbda, time_dim=time_dim,
    )
    out: dict[str, Tensor] = {
        "loss_actor": policy_gradient_loss(log_prob.unsqueeze(-1), advantage.detach())
    }
    per_sample, clip_fraction, _ = critic_terms(
        name, td, keys, batch_shape, value_target,
        loss_critic_type=loss_critic_type, clip_value=clip_value, log_explained_variance=False,
    )
    out["loss_value"] = per_sample
    if clip_fraction is not None:
        out["value_clip_fraction"] = clip_fraction
    return finish_losses(name, out, reduction, loss_mask(name, td, loss_mask_key))

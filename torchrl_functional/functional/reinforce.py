"""REINFORCE with a learned baseline as a pure function of a TensorDict.

Williams 1992, "Simple statistical gradient-following algorithms for connectionist
reinforcement learning". Same outputs and numbers as TorchRL 0.14's ``ReinforceLoss``,
without its side effects (TorchRL writes the advantage and value target into the input).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Unpack

from tensordict import TensorDict, TensorDictBase
from torch import Tensor
from torch import distributions as D

from ._td import finish_losses
from ._terms import ON_POLICY_DEFAULTS, OnPolicyOptions, check_common, critic_outputs, prepare
from ._validation import keyword_options
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
    keys: ReinforceKeys | Mapping[str, NestedKey] | None = None,
    **options: Unpack[OnPolicyOptions],
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
        keys: renamed entries.
        **options: :class:`~torchrl_functional.functional.OnPolicyOptions` (``reduction``,
            ``loss_mask_key`` and the estimate of a missing advantage).

    Returns:
        TensorDict with ``loss_actor``, ``loss_value`` and, with ``clip_value``,
        ``value_clip_fraction``.
    """
    name = "reinforce_loss"
    o = keyword_options(name, options, ON_POLICY_DEFAULTS)
    check_common(name, o["reduction"], False, 1, 0.0, None, loss_critic_type, clip_value)
    batch = prepare(name, td, dist_class, ReinforceKeys, resolve_keys(keys, ReinforceKeys, name), o,
                    importance_weighted=False)
    out: dict[str, Tensor] = {
        "loss_actor": policy_gradient_loss(batch.policy.log_prob.unsqueeze(-1), batch.advantage.detach())
    }
    out.update(critic_outputs(name, td, batch, critic_coeff=None, loss_critic_type=loss_critic_type,
                              clip_value=clip_value, log_explained_variance=False, diagnostics=diagnostics,
                              output="loss_value"))
    return finish_losses(name, out, o["reduction"], batch.mask)

"""Advantage actor-critic as a pure function of a TensorDict of precomputed outputs.

Mnih et al. 2016, "Asynchronous Methods for Deep Reinforcement Learning"
(arXiv 1602.01783). Same outputs and numbers as TorchRL 0.14's ``A2CLoss``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Unpack

from tensordict import TensorDict, TensorDictBase
from torch import Tensor
from torch import distributions as D

from ..errors import HyperparameterError
from ._td import finish_losses
from ._terms import A2C_DEFAULTS, A2COptions, check_common, critic_outputs, entropy_outputs, prepare
from ._validation import keyword_options
from .keys import A2CKeys, NestedKey, resolve_keys
from .policy_gradient import policy_gradient_loss

__all__ = ["a2c_loss"]



def a2c_loss(
    td: TensorDictBase,
    dist_class: Callable[..., D.Distribution] | None = None,
    *,
    keys: A2CKeys | Mapping[str, NestedKey] | None = None,
    **options: Unpack[A2COptions],
) -> TensorDict:
    """A2C loss: ``loss_objective = -mean(log pi(a|s) * A)`` plus entropy and critic terms.

    The advantage is used as given (TorchRL's ``A2CLoss`` does not detach it either);
    when estimated here from rewards and values, the values are detached. A composite
    (multi-head) policy's log-prob is the sum over its heads; its entropy is one
    reparameterised Monte-Carlo estimate over every head, as TorchRL's ``A2CLoss`` computes it.

    Args:
        td: input TensorDict (not modified): ``"actor_output"`` (with ``dist_class``) or
            ``"log_prob"`` ``[*B]``; ``"action"``; ``"advantage"`` ``[*B, 1]`` or the entries
            to estimate it (``("next", "reward"/"done"/"terminated"/"state_value")``,
            ``"state_value"``); ``"value_target"`` and ``"state_value"`` ``[*B, 1]`` for the
            critic term (``"old_state_value"`` with ``clip_value``); optional masks and
            ``[*B]``/``[*B, 1]`` hyperparameter overrides. See
            :class:`~torchrl_functional.functional.keys.A2CKeys`.
        dist_class: distribution class (or callable) built from ``td["actor_output"]``.
        keys: renamed entries.
        **options: :class:`~torchrl_functional.functional.A2COptions`: the entropy term
            (``entropy_bonus``, off when ``entropy_coeff == 0``; ``samples_mc_entropy``,
            ``entropy_coeff``: one coefficient, a number or a tensor), the critic term
            (``critic_coeff``, ``loss_critic_type``, ``clip_value``), ``advantage_scale``,
            ``diagnostics`` (``entropy``, ``value_clip_fraction``), ``generator``, and
            :class:`~torchrl_functional.functional.OnPolicyOptions`.

    Returns:
        TensorDict with ``loss_objective`` and, as enabled, ``entropy``, ``loss_entropy``,
        ``loss_critic``, ``value_clip_fraction``.
    """
    name = "a2c_loss"
    o = keyword_options(name, options, A2C_DEFAULTS)
    if isinstance(o["entropy_coeff"], (int, float)) and o["entropy_coeff"] == 0:
        o["entropy_bonus"] = False
    if isinstance(o["entropy_coeff"], Mapping):
        raise HyperparameterError(name, "entropy_coeff", "A2C takes one coefficient (a number or a tensor)")
    critic_coeff = check_common(name, o["reduction"], o["entropy_bonus"], o["samples_mc_entropy"], o["entropy_coeff"],
                                o["critic_coeff"], o["loss_critic_type"], o["clip_value"])
    batch = prepare(name, td, dist_class, A2CKeys, resolve_keys(keys, A2CKeys, name), o, importance_weighted=False)
    out: dict[str, Tensor] = {"loss_objective": policy_gradient_loss(batch.policy.log_prob.unsqueeze(-1), batch.advantage)}
    if o["entropy_bonus"]:
        out.update(entropy_outputs(name, td, batch, samples_mc_entropy=o["samples_mc_entropy"],
                                   entropy_coeff=o["entropy_coeff"], generator=o["generator"], diagnostics=o["diagnostics"],
                                   joint_mc=True))
    if critic_coeff is not None:
        out.update(critic_outputs(name, td, batch, critic_coeff=critic_coeff, loss_critic_type=o["loss_critic_type"],
                                  clip_value=o["clip_value"], log_explained_variance=False, diagnostics=o["diagnostics"]))
    return finish_losses(name, out, o["reduction"], batch.mask)

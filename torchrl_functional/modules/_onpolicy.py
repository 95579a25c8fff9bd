"""The impure part shared by the drop-in on-policy modules: run the actor, the critic
and the value estimator with the loss module's *current* parameters, and gather the
entries the functional loss reads. No loss math here."""

from __future__ import annotations

import functools
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import (
    CompositeDistribution,
    ProbabilisticTensorDictModule,
    ProbabilisticTensorDictSequential,
)
from torch import nn

from ..functional.keys import OnPolicyKeys
from ._binding import params_context
from ._common import ACTOR_OUTPUT, OLD_ACTOR_OUTPUT, OLD_VALUE


def find_dist_module(loss_name: str, actor: nn.Module) -> ProbabilisticTensorDictModule:
    """The (single) module that turns parameters into the policy distribution."""
    if isinstance(actor, ProbabilisticTensorDictModule):
        return actor
    found = [m for m in actor.modules() if isinstance(m, ProbabilisticTensorDictModule)]
    if isinstance(actor, ProbabilisticTensorDictSequential) and not actor.return_composite and found:
        return found[-1]
    raise NotImplementedError(
        f"{loss_name}: the actor must be a ProbabilisticTensorDictSequential or "
        "ProbabilisticTensorDictModule with a single (non-composite) distribution"
    )


def dist_class_of(dist_module: ProbabilisticTensorDictModule):
    """``dist_class`` such that ``dist_class(**params)`` equals ``dist_module.get_dist``."""
    kwargs = dict(dist_module.distribution_kwargs or {})
    cls = dist_module.distribution_class
    if isinstance(cls, type) and issubclass(cls, CompositeDistribution):
        raise NotImplementedError("composite action distributions are not supported yet")
    return functools.partial(cls, **kwargs) if kwargs else cls


def dist_params(dist_module: ProbabilisticTensorDictModule, td: TensorDictBase) -> dict[str, torch.Tensor]:
    """The keyword arguments the distribution module reads from ``td``."""
    params = {}
    for dist_key, td_key in zip(dist_module.dist_keys, dist_module.in_keys):
        if isinstance(dist_key, tuple):
            dist_key = dist_key[-1]
        value = td.get(td_key, None)
        if value is None:
            raise KeyError(f"the distribution parameter {td_key!r} was not found in the input")
        params[dist_key] = value
    return params


def run_actor(loss_module, td: TensorDictBase, dist_module: ProbabilisticTensorDictModule) -> dict:
    """Distribution parameters of the current policy on ``td`` (written into ``td`` like TorchRL)."""
    actor = loss_module.actor_network
    with params_context(loss_module, loss_module.actor_network_params, actor):
        if isinstance(actor, ProbabilisticTensorDictSequential):
            td = actor.get_dist_params(td)
    return dist_params(dist_module, td)


def run_critic(loss_module, td: TensorDictBase, value_key: Any) -> torch.Tensor:
    """The critic's current ``V(s)`` on ``td``, with gradients to its parameters."""
    critic = loss_module.critic_network
    with params_context(loss_module, loss_module.critic_network_params, critic):
        out = critic(td)
    value = out.get(value_key, None)
    if value is None:
        raise KeyError(
            f"{type(loss_module).__name__}: the critic did not write {value_key!r}; "
            "check its out_keys against set_keys(value=...)"
        )
    return value


def estimate_advantage(loss_module, td: TensorDictBase) -> None:
    """Run the loss module's value estimator in place on ``td`` (a shallow copy).

    The critic parameters are detached *now*, from the parameters the module holds at
    this call (TorchRL caches a detached copy, which goes stale when parameters are
    swapped with ``functional_call`` or ``to_module``).
    """
    params = loss_module.critic_network_params
    target = getattr(loss_module, "target_critic_network_params", None)
    if params is not None and getattr(loss_module, "functional", True):
        params = params.detach()
    else:
        params = None
    loss_module.value_estimator(td, params=params, target_params=target)


def on_policy_inputs(
    loss_module,
    tensordict: TensorDictBase,
    dist_module: ProbabilisticTensorDictModule,
    *,
    with_critic: bool,
    detach_critic_input: bool = False,
    old_actor: bool = False,
) -> TensorDictBase:
    """Run the value estimator (when the advantage is absent), the actor and the critic on a
    shallow copy of ``tensordict``; return the entries the on-policy functional losses read.

    ``old_actor`` also reads the behaviour policy's distribution parameters from the caller's
    data (the KL-penalty loss); ``detach_critic_input`` is TorchRL's ``separate_losses``.
    """
    tk = loss_module.tensor_keys
    td = tensordict.copy()
    if td.get(tk.advantage, None) is None:
        if loss_module.critic_network is None:
            raise RuntimeError("Critic network is not specified, cannot compute advantage within forward.")
        estimate_advantage(loss_module, td)
    old_params = dist_params(dist_module, tensordict) if old_actor else None
    actor_output = run_actor(loss_module, td, dist_module)
    inputs = td.select(tk.action, tk.sample_log_prob, tk.advantage, tk.value_target,
                       *loss_module._loss_mask_keys(), strict=False)
    for name, value in actor_output.items():
        inputs.set(ACTOR_OUTPUT + (name,), value)
    if old_params is not None:
        for name, value in old_params.items():
            inputs.set(OLD_ACTOR_OUTPUT + (name,), value)
    if with_critic:
        critic_td = td.detach() if detach_critic_input else td
        if loss_module.clip_value is not None:
            old_value = critic_td.get(tk.value, None)
            if old_value is None:
                raise KeyError(
                    f"clip_value is set to {loss_module.clip_value}, but the key {tk.value} was not found "
                    "in the input tensordict."
                )
            inputs.set(OLD_VALUE, old_value)
        inputs.set(tk.value, run_critic(loss_module, critic_td, tk.value))
    return inputs


def on_policy_keys(loss_module, cls: type[OnPolicyKeys], **extra: Any) -> OnPolicyKeys:
    """Translate the module's ``tensor_keys`` into the functional loss's keys object (cached
    until ``set_keys`` changes them)."""
    tk = loss_module.tensor_keys
    names = dict(
        action=tk.action,
        sample_log_prob=tk.sample_log_prob,
        actor_output=ACTOR_OUTPUT,
        advantage=tk.advantage,
        value_target=tk.value_target,
        value=tk.value,
        old_value=OLD_VALUE,
        reward=tk.reward,
        done=tk.done,
        terminated=tk.terminated,
        **extra,
    )
    signature = (cls, tuple(map(str, names.values())))
    cached = loss_module.__dict__.get("_tf_keys")
    if cached is None or cached[0] != signature:
        cached = loss_module.__dict__["_tf_keys"] = (signature, cls(**names))
    return cached[1]


def check_single_key(loss_name: str, key: Any, what: str) -> None:
    if isinstance(key, list):
        raise NotImplementedError(f"{loss_name}: several {what} keys (composite actions) are not supported yet")


"""The impure part shared by the drop-in on-policy modules: run the actor, the critic
and the value estimator with the loss module's *current* parameters, and gather the
entries the functional loss reads. No loss math here."""

from __future__ import annotations

import contextlib
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

#: Entries the modules add to the (shallow) copy they hand to the functional loss.
#: Nested under a private root so they can never collide with user entries.
PRIVATE = "_torchrl_functional"
ACTOR_OUTPUT = (PRIVATE, "actor_output")
OLD_ACTOR_OUTPUT = (PRIVATE, "old_actor_output")
OLD_VALUE = (PRIVATE, "old_state_value")


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


def params_context(loss_module: nn.Module, params: Any, module: nn.Module):
    """Run ``module`` with ``params`` (TorchRL's functional convention), or as is."""
    if params is None or not getattr(loss_module, "functional", True):
        return contextlib.nullcontext()
    return params.to_module(module, preserve_module_state=False)


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


def on_policy_keys(loss_module, cls: type[OnPolicyKeys], **extra: Any) -> OnPolicyKeys:
    """Translate the module's ``tensor_keys`` into the functional loss's keys object."""
    tk = loss_module.tensor_keys
    return cls(
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


def check_single_key(loss_name: str, key: Any, what: str) -> None:
    if isinstance(key, list):
        raise NotImplementedError(f"{loss_name}: several {what} keys (composite actions) are not supported yet")


class _ParamsAlias(nn.Module):
    """Dot-free, write-through names for the leaves of one ``TensorDictParams`` of a loss module.

    ``functional_call`` resolves ``"actor_network_params.module.0.weight"`` by ``getattr`` one
    component at a time, and ``TensorDictParams`` answers a nested ``getattr`` with a *new*
    object each time: a swap under TorchRL's names lands in a temporary and is silently lost.
    An alias ``"_fc_actor_network_params.module__0__weight"`` resolves to this object, whose
    ``setattr`` replaces the leaf in the loss module's ``TensorDictParams`` (as
    ``TensorDict.to_module`` does, so gradients flow to the swapped-in tensors) and whose
    restore puts the original TensorDict back.
    """

    def __init__(self, owner: nn.Module, params_name: str, keys: list) -> None:
        super().__init__()
        names = {"__".join(key if isinstance(key, tuple) else (key,)): key for key in keys}
        if len(names) != len(keys):  # pragma: no cover - only with keys containing "__"
            raise RuntimeError(f"{params_name}: parameter names collide once flattened with '__'")
        self.__dict__["_owner"] = owner  # not a submodule: no recursion, no state_dict entries
        self.__dict__["_params_name"] = params_name
        self.__dict__["_names"] = names
        self.__dict__["_saved"] = None  # the TensorDict in place before the first swap
        self.__dict__["_changed"] = set()

    def _params(self):
        return self._owner._modules[self._params_name]

    def __getattr__(self, name: str):
        names = self.__dict__.get("_names", {})
        if name in names:
            return self._params()._param_td.get(names[name])
        return super().__getattr__(name)

    def __setattr__(self, name: str, value) -> None:
        names = self.__dict__.get("_names", {})
        if name not in names:
            return super().__setattr__(name, value)
        key = names[name]
        params = self._params()
        if self._saved is None:
            self.__dict__["_saved"] = params._param_td
        if value is self._saved.get(key):
            self._changed.discard(key)
        else:
            self._changed.add(key)
        if not self._changed:  # every leaf is back: restore the very same TensorDict
            params._param_td = self._saved
            self.__dict__["_saved"] = None
            return
        swapped = params._param_td.copy()
        swapped.set(key, value)  # a plain TensorDict: the tensor keeps its graph
        params._param_td = swapped


def _is_params(module: Any) -> bool:
    from tensordict.nn import TensorDictParams

    return isinstance(module, TensorDictParams)


class FunctionalCallMixin:
    """Lets ``torch.func.functional_call`` swap the loss module's parameters and buffers.

    Pass the names of ``loss.named_parameters()`` / ``loss.named_buffers()`` (TorchRL's names,
    e.g. ``"actor_network_params.module.0.module.0.weight"``, ``"clip_epsilon"``)::

        fast = {name: p - lr * g for (name, p), g in zip(loss.named_parameters(), grads)}
        out = torch.func.functional_call(loss, fast, (td,))

    The swapped tensors are used everywhere in ``forward`` (actor, critic, and the critic
    inside the value estimator: nothing is cached) and gradients flow back to them.

    How: TorchRL's ``LossModule.named_parameters`` rejects the ``remove_duplicate`` argument
    that ``functional_call`` passes, and the parameters live in ``TensorDictParams``, where
    a swap under TorchRL's dotted names would be lost (see :class:`_ParamsAlias`). With
    ``remove_duplicate=False`` (how ``functional_call`` looks for tied weights) this class
    also lists a write-through alias of every leaf, ``"_fc_<params>.<key joined by __>"``,
    tied to TorchRL's name; ``functional_call``'s default ``tie_weights=True`` then swaps
    the alias too. With ``tie_weights=False`` pass the alias names themselves.
    """

    def _functional_call_aliases(self) -> dict[str, _ParamsAlias]:
        aliases = {}
        for name, module in list(self._modules.items()):
            if not _is_params(module):
                continue
            keys = list(module._param_td.keys(True, True))
            alias = self.__dict__.get("_fc_" + name)
            # rebuilt if the parameters changed, never in the middle of a swap
            if alias is None or (alias._saved is None and set(alias._names.values()) != set(keys)):
                alias = _ParamsAlias(self, name, keys)
                self.__dict__["_fc_" + name] = alias
            aliases[name] = alias
        return aliases

    def _aliased(self, named, prefix: str, want_params: bool):
        yield from named
        for alias in self._functional_call_aliases().values():
            td = alias._params()._param_td
            for short, key in alias._names.items():
                value = td.get(key)
                if isinstance(value, nn.Parameter) == want_params:
                    yield f"{prefix}_fc_{alias._params_name}.{short}", value

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        if remove_duplicate:
            yield from super().named_parameters(prefix=prefix, recurse=recurse)
            return
        named = (
            (name, p)
            for name, p in nn.Module.named_parameters(self, prefix=prefix, recurse=recurse, remove_duplicate=False)
            if not name.startswith("_target")
        )
        yield from self._aliased(named, prefix + "." if prefix else "", want_params=True)

    def named_buffers(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        named = super().named_buffers(prefix=prefix, recurse=recurse, remove_duplicate=remove_duplicate)
        if remove_duplicate:
            yield from named
            return
        yield from self._aliased(named, prefix + "." if prefix else "", want_params=False)

"""The impure part shared by the drop-in on-policy modules: run the actor, the critic
and the value estimator with the loss module's *current* parameters, and gather the
entries the functional loss reads. No loss math here."""

from __future__ import annotations

import contextlib
import functools
import weakref
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase, TensorDictParams
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


class _ParamBinder:
    """Binds the leaves of a ``TensorDictParams`` to the parameter slots of ``module``.

    Equivalent to ``params.to_module(module, preserve_module_state=False)`` for plain
    ``nn.Module`` trees, at a fraction of the cost: the slots are resolved once, and when
    every leaf already *is* the module's tensor (the usual case: TorchRL keeps the same
    ``Parameter`` objects in both) nothing is swapped at all. Swapped-in leaves (e.g.
    after ``TensorDict.from_module(loss).to_module(loss)``, which replaces the params'
    inner TensorDict) are bound for the duration of the call and restored afterwards.
    """

    def __init__(self, module: nn.Module, params: TensorDictBase) -> None:
        self.params = params
        self.keys: list[tuple] = []
        self.slots: list[tuple[dict, str]] = []
        for key in params.keys(True, True):
            key = key if isinstance(key, tuple) else (key,)
            owner = module
            for part in key[:-1]:
                owner = owner._modules[part]
            if type(owner).__getattr__ is not nn.Module.__getattr__ or type(owner).__setattr__ is not nn.Module.__setattr__:
                raise TypeError("custom attribute access")
            name = key[-1]
            store = owner._parameters if name in owner._parameters else owner._buffers
            if name not in store:
                raise KeyError(name)
            self.keys.append(key)
            self.slots.append((store, name))
        self._root = None
        self._leaf_dicts: list[dict] = []
        self._saved: list | None = None

    def _leaves(self) -> list:
        # the leaves live in plain dicts inside the params' TensorDict; cache those dicts and
        # re-resolve them only when the inner TensorDict is replaced (as ``to_module`` does)
        root = getattr(self.params, "_param_td", None)
        if root is None or not hasattr(root, "_tensordict"):
            return [self.params.get(key) for key in self.keys]
        if root is not self._root:
            self._leaf_dicts = [
                (root.get(key[:-1]) if len(key) > 1 else root)._tensordict for key in self.keys
            ]
            self._root = root
        return [d[key[-1]] for d, key in zip(self._leaf_dicts, self.keys)]

    def __enter__(self) -> None:
        saved = None
        for (store, name), leaf in zip(self.slots, self._leaves()):
            current = store[name]
            if leaf is not current:
                if saved is None:
                    saved = []
                saved.append((store, name, current))
                store[name] = leaf
        self._saved = saved

    def __exit__(self, *exc) -> None:
        if self._saved:
            for store, name, value in reversed(self._saved):
                store[name] = value
            # swapped-in leaves (possibly transform wrappers) must not outlive the call
            self._root, self._leaf_dicts = None, []
        self._saved = None


#: binders per loss module, outside the module so that deepcopy/pickle never see them
_BINDERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def params_context(loss_module, params: Any, module: nn.Module):
    """Run ``module`` with ``params`` (TorchRL's functional convention), or as is.

    Parameters held by the loss module (``TensorDictParams``: online and target parameters)
    are bound with a cached :class:`_ParamBinder`; anything else goes through
    ``TensorDict.to_module``.
    """
    if params is None or not getattr(loss_module, "functional", True):
        return contextlib.nullcontext()
    if torch.compiler.is_compiling() or not isinstance(params, TensorDictParams):
        return params.to_module(module, preserve_module_state=False)
    cache = _BINDERS.get(loss_module)
    if cache is None:
        cache = _BINDERS[loss_module] = {}
    key = (id(module), id(params))
    entry = cache.get(key)
    if entry is None or entry[0] is not params:
        try:
            binder = _ParamBinder(module, params)
        except (KeyError, TypeError, AttributeError):
            binder = None  # unusual module tree: use TensorDict.to_module
        entry = cache[key] = (params, binder)
    if entry[1] is None:
        return params.to_module(module, preserve_module_state=False)
    return entry[1]


def run_value_network(loss_module, td: TensorDictBase, params: Any, key: Any) -> torch.Tensor:
    """``loss_module.value_network`` on ``td`` with ``params``; the entry ``key`` of its output."""
    net = loss_module.value_network
    with params_context(loss_module, params, net):
        out = net(td.select(*net.in_keys, strict=False))
    return out.get(key)


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


# ----------------------------------------------------------------------------- off-policy


def estimator_kwargs(loss_module, tensordict: TensorDictBase | None = None) -> dict:
    """The loss module's value estimator (TorchRL's TD0 by default) as keyword arguments of
    the off-policy functional losses: ``value_estimator``, ``gamma``, ``lmbda``, ``time_dim``."""
    from torchrl.objectives.value import TD0Estimator, TD1Estimator, TDLambdaEstimator

    name = type(loss_module).__name__
    est = loss_module.value_estimator
    if isinstance(est, TDLambdaEstimator):
        kind = "td_lambda"
    elif isinstance(est, TD1Estimator):
        kind = "td1"
    elif isinstance(est, TD0Estimator):
        kind = "td0"
    else:
        raise NotImplementedError(f"{name}: value estimator {type(est).__name__} is not supported")
    if getattr(est, "average_rewards", False):
        raise NotImplementedError(f"{name}: value estimators with average_rewards=True are not supported yet")
    lmbda = getattr(est, "lmbda", 0.95)
    time_dim = getattr(est, "time_dim", None)
    if time_dim is None and tensordict is not None and tensordict.batch_dims:
        # TorchRL's rule: a dim named "time", else the last one
        names = tensordict.names if tensordict._has_names() else []
        time_dim = names.index("time") if "time" in names else tensordict.batch_dims - 1
    return {"value_estimator": kind, "gamma": est.gamma, "lmbda": lmbda, "time_dim": time_dim}


def transition_inputs(loss_module, tensordict: TensorDictBase, *extra: Any) -> TensorDictBase:
    """A new TensorDict holding what a functional off-policy loss reads from the data:
    action, ``("next", reward/done/terminated)``, the priority weight (when the module uses
    it), loss masks and ``extra`` entries. Network outputs are added to it afterwards."""
    tk = loss_module.tensor_keys
    keys = [getattr(tk, "action", "action"), ("next", tk.reward), ("next", tk.done), ("next", tk.terminated), *extra,
            *loss_module._loss_mask_keys()]
    if getattr(loss_module, "use_prioritized_weights", False) in (True, "auto") and hasattr(tk, "priority_weight"):
        keys.append(tk.priority_weight)
    if "steps_to_next_obs" in tensordict.keys():
        raise NotImplementedError(
            f"{type(loss_module).__name__}: n-step data ('steps_to_next_obs') is not supported yet"
        )
    # Q-ensemble outputs are [E, *B, 1]: the inputs carry no batch dimensions
    inputs = TensorDict(batch_size=[], device=tensordict.device)
    for key, value in tensordict.select(*keys, strict=False).items(True, True):
        inputs.set(key, value)
    return inputs


def off_policy_keys(loss_module, cls: type, **private: Any):
    """The functional loss's keys object: data entries named by the module's ``tensor_keys``,
    network outputs under the private root (``private`` maps a field to its private name)."""
    tk = loss_module.tensor_keys
    names = dict(action=getattr(tk, "action", "action"), reward=tk.reward, done=tk.done, terminated=tk.terminated)
    if hasattr(tk, "priority_weight"):
        names["priority_weight"] = tk.priority_weight
    names.update({field: (PRIVATE, value) for field, value in private.items()})
    return cls(**names)


def write_priority(tensordict: TensorDictBase, key: Any, value: torch.Tensor) -> None:
    """Write the replay priority into the caller's data, as TorchRL does (for prioritized replay)."""
    if tensordict.device is not None:
        value = value.to(tensordict.device)
    tensordict.set(key, value, inplace=True)


def output_td(out: TensorDictBase, loss_module, tensordict: TensorDictBase, scalars: tuple[str, ...]):
    """Arrange a functional loss's outputs as TorchRL's SAC/IQL/CQL modules do for ``reduction="none"``
    (per-sample losses in a TensorDict of the data's batch size, scalars excluded or non-tensor)."""
    if loss_module.reduction != "none":
        return out
    losses = {k: v for k, v in out.items() if k.startswith("loss_")}
    td_out = TensorDict(losses, batch_size=tensordict.batch_size)
    if getattr(loss_module, "scalar_output_mode", None) == "non_tensor":
        for key in scalars:
            td_out.set_non_tensor(key, out[key])
    return td_out

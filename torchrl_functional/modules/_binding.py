"""Running a network with the loss module's *current* parameters (the fast binder), and
``torch.func.functional_call`` on the drop-in modules (write-through aliases of TorchRL's
parameter names). No loss math here."""

from __future__ import annotations

import contextlib
import weakref
from typing import Any

import torch
from tensordict import TensorDictBase, TensorDictParams
from torch import nn


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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # TensorDictModuleBase.__new__ turns a class's *own* ``in_keys``/``out_keys`` list into
        # the property that ``select_out_keys`` and ``dispatch`` rely on; a subclass inherits
        # TorchRL's plain list instead, so give each drop-in class its own copy to convert.
        for attr in ("in_keys", "out_keys"):
            if attr not in cls.__dict__:
                value = getattr(cls, attr, None)
                if isinstance(value, list):
                    setattr(cls, attr, list(value))

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


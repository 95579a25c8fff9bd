"""Running a network with the loss module's *current* parameters (the fast binder), and
``torch.func.functional_call`` on the drop-in modules (write-through aliases of TorchRL's
parameter names). No loss math here."""

from __future__ import annotations

import contextlib
import inspect
import weakref
from collections.abc import MutableMapping
from typing import Any

import torch
from tensordict import TensorDictBase, TensorDictParams
from torch import nn

from ..functional._validation import _is_wrapped


class _LeafReader:
    """The leaves of a ``TensorDictParams`` under ``keys``, read from the plain dicts inside its
    TensorDict: those dicts are cached and re-resolved only when the inner TensorDict is
    replaced (as ``to_module`` does)."""

    def __init__(self, params: TensorDictBase | None, keys: list[tuple]) -> None:
        self.params, self.keys = params, keys
        self.reset()

    def reset(self) -> None:
        self._root, self._leaf_dicts = None, []

    def __call__(self, params: TensorDictBase | None = None) -> list:
        params = self.params if params is None else params
        root = getattr(params, "_param_td", None)
        if root is None or not hasattr(root, "_tensordict"):
            return [params.get(key) for key in self.keys]
        if root is not self._root:
            self._leaf_dicts = [
                (root.get(key[:-1]) if len(key) > 1 else root)._tensordict for key in self.keys
            ]
            self._root = root
        return [d[key[-1]] for d, key in zip(self._leaf_dicts, self.keys)]


class _ParamBinder:
    """Binds the leaves of a ``TensorDictParams`` to the parameter slots of ``module``.

    Equivalent to ``params.to_module(module, preserve_module_state=False)`` for plain
    ``nn.Module`` trees, at a fraction of the cost: the slots are resolved once, and when
    every leaf already *is* the module's tensor (the usual case: TorchRL keeps the same
    ``Parameter`` objects in both) nothing is swapped at all. Swapped-in leaves (e.g.
    after ``TensorDict.from_module(loss).to_module(loss)``, which replaces the params'
    inner TensorDict) are bound for the duration of the call and restored afterwards.
    """

    def __init__(self, module: nn.Module, params: TensorDictBase, leaves: list | None = None) -> None:
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
        self._leaves = _LeafReader(params, self.keys) if leaves is None else (lambda: leaves)
        self._saved: list | None = None

    def reset(self) -> None:
        """Forget the cached leaf dicts (re-read from the params on the next call)."""
        if isinstance(self._leaves, _LeafReader):
            self._leaves.reset()

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
            self.reset()
        self._saved = None


#: binders per loss module, outside the module so that deepcopy/pickle never see them
_BINDERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
#: functional_call aliases per loss module, for the same reason
_ALIASES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def params_context(loss_module, params: Any, module: nn.Module):
    """Run ``module`` with ``params`` (TorchRL's functional convention), or as is.

    Parameters held by the loss module (``TensorDictParams``: online and target parameters)
    are bound with a cached :class:`_ParamBinder`; anything else goes through
    ``TensorDict.to_module``.
    """
    if params is None or not getattr(loss_module, "functional", True):
        return contextlib.nullcontext()
    if torch.compiler.is_compiling():
        return params.to_module(module, preserve_module_state=False)
    if not isinstance(params, TensorDictParams):
        view = _DETACHED_VIEWS.get(id(params))
        if view is not None and view.td is params:
            return view.binder(module)
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


class _DetachedView:
    """``params.detach()`` (or ``params.data``) of a loss module's ``TensorDictParams``, kept while
    its leaves stay the same tensors on the same storage (as TorchRL caches its detached
    parameters, but a swap, ``functional_call`` included, or a ``param.data = ...`` is seen)."""

    __slots__ = ("td", "leaves", "sources", "ptrs", "binders", "__weakref__")

    def __init__(self, td: TensorDictBase, leaves: list, sources: list) -> None:
        self.td, self.leaves = td, leaves
        self.sources = [weakref.ref(x) for x in sources]
        self.ptrs = [x.data_ptr() for x in sources]
        self.binders: dict[int, _ParamBinder | None] = {}

    def matches(self, sources: list) -> bool:
        return all(ref() is x and x.data_ptr() == ptr for ref, ptr, x in zip(self.sources, self.ptrs, sources))

    def binder(self, module: nn.Module):
        key = id(module)
        if key not in self.binders:
            try:
                self.binders[key] = _ParamBinder(module, self.td, self.leaves)
            except (KeyError, TypeError, AttributeError):
                self.binders[key] = None  # unusual module tree: use TensorDict.to_module
        binder = self.binders[key]
        return binder if binder is not None else self.td.to_module(module, preserve_module_state=False)


#: the cached detached views by ``id`` of their ``TensorDictParams`` (``{"detach": view, "data": view}``;
#: by ``id``: a ``TensorDictParams`` compares elementwise, and ``__dict__`` is walked by deepcopy/pickle)
_DETACHED: dict[int, dict] = {}
#: the same views by ``id`` of their TensorDict, for :func:`params_context`
_DETACHED_VIEWS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def _detached(params: TensorDictParams, how: str) -> TensorDictBase | None:
    """The cached ``params.detach()`` (``how="detach"``) or ``params.data`` (``"data"``), rebuilt
    when a leaf changes; ``None`` when it cannot be cached (compiling, leaves swapped in inside
    a ``torch.func`` transform or without storage)."""
    if torch.compiler.is_compiling():
        return None
    views = _DETACHED.get(id(params))
    if views is None or views["owner"]() is not params:
        keys = [key if isinstance(key, tuple) else (key,) for key in params._param_td.keys(True, True)]
        views = _DETACHED[id(params)] = {"owner": weakref.ref(params), "reader": _LeafReader(None, keys)}
        weakref.finalize(params, _DETACHED.pop, id(params), None)
    reader = views["reader"]
    try:
        sources = reader(params)
        if any(_is_wrapped(x) for x in sources):  # swapped in inside a torch.func transform
            return None
        view = views.get(how)
        if view is not None and view.matches(sources):
            return view.td
        td = params._param_td.detach() if how == "detach" else params._param_td.data
        view = _DetachedView(td, [td.get(key) for key in reader.keys], sources)
    except RuntimeError:  # e.g. tensors without storage
        return None
    old = views.get(how)
    if old is not None:
        _DETACHED_VIEWS.pop(id(old.td), None)
    views[how] = view
    _DETACHED_VIEWS[id(td)] = view
    return td


def _write_leaf(params: TensorDictParams, key: tuple, value: Any) -> None:
    """Swap one leaf of ``params`` for ``value`` (or put the original back), copy-on-write.

    The ``TensorDict`` in place before the first swap is kept on ``params`` (one state per
    ``TensorDictParams``, whichever name the swap came through); once every leaf is back, that
    very ``TensorDict`` is restored. Swapped tensors keep their graph (as ``to_module``)."""
    state = params.__dict__.setdefault("_fc_swap", {"saved": None, "changed": set()})
    if state["saved"] is None:
        state["saved"] = params._param_td
    saved, changed = state["saved"], state["changed"]
    if value is saved.get(key):
        changed.discard(key)
    else:
        changed.add(key)
    if not changed:  # every leaf is back: restore the very same TensorDict
        params._param_td = saved
        state["saved"] = None
        return
    swapped = params._param_td.copy()
    swapped.set(key, value)  # a plain TensorDict: the tensor keeps its graph
    params._param_td = swapped


def _read_leaf(params: TensorDictParams, key: tuple) -> Any:
    return params._param_td.get(key, None)


class _ParamsAlias(nn.Module):
    """Dot-free, write-through names for the leaves of one ``TensorDictParams`` of a loss module.

    An alias ``"_fc_actor_network_params.module__0__weight"`` resolves to this object, whose
    ``setattr`` replaces the leaf in the loss module's ``TensorDictParams`` (see
    :func:`_write_leaf`). TorchRL's own dotted names write through as well (see
    :class:`_NestedParams`); the aliases remain for callers that use them.
    """

    def __init__(self, owner: nn.Module, params_name: str, keys: list) -> None:
        super().__init__()
        names = {"__".join(key if isinstance(key, tuple) else (key,)): key for key in keys}
        if len(names) != len(keys):  # pragma: no cover - only with keys containing "__"
            raise RuntimeError(f"{params_name}: parameter names collide once flattened with '__'")
        self.__dict__["_owner"] = weakref.ref(owner)  # not a submodule; weak: cached per owner
        self.__dict__["_params_name"] = params_name
        self.__dict__["_names"] = names

    def _params(self):
        return self.__dict__["_owner"]()._modules[self._params_name]

    @property
    def _saved(self):
        return self._params().__dict__.get("_fc_swap", {}).get("saved")

    def __getattr__(self, name: str):
        names = self.__dict__.get("_names", {})
        if name in names:
            return _read_leaf(self._params(), names[name])
        return super().__getattr__(name)

    def __setattr__(self, name: str, value) -> None:
        names = self.__dict__.get("_names", {})
        if name not in names:
            return super().__setattr__(name, value)
        _write_leaf(self._params(), names[name], value)


class _Leaves(MutableMapping):
    """The parameters (or buffers) directly under one path of a ``TensorDictParams``, as the
    ``_parameters``/``_buffers`` dict of a module: reads and writes go to the leaves."""

    def __init__(self, params: TensorDictParams, prefix: tuple, parameters: bool) -> None:
        self._root, self._prefix, self._parameters = params, prefix, parameters

    def _td(self):
        return self._root._param_td.get(self._prefix) if self._prefix else self._root._param_td

    def _is_mine(self, value: Any) -> bool:
        return isinstance(value, torch.Tensor) and isinstance(value, nn.Parameter) == self._parameters

    def __getitem__(self, name: str):
        value = _read_leaf(self._root, self._prefix + (name,))
        if not self._is_mine(value):
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._is_mine(_read_leaf(self._root, self._prefix + (name,)))

    def __setitem__(self, name: str, value: Any) -> None:
        _write_leaf(self._root, self._prefix + (name,), value)

    def __delitem__(self, name: str) -> None:  # pragma: no cover - functional_call never deletes
        raise TypeError("the parameters of a loss module cannot be deleted through functional_call")

    def __iter__(self):
        td = self._td()
        return iter([k for k in td.keys() if self._is_mine(td.get(k))])

    def __len__(self) -> int:
        return len(list(iter(self)))


class _NestedParams(nn.Module):
    """What ``getattr`` on a drop-in module's ``TensorDictParams`` returns for a nested entry
    (how ``functional_call`` resolves TorchRL's dotted names, ``"actor_network_params.module.0.weight"``):
    a view whose leaves read from and write through to the loss module's parameters, so a swap
    under TorchRL's names is honoured with ``tie_weights=False`` too (plain ``TensorDictParams``
    answers with a temporary copy, where the swap would be lost)."""

    def __init__(self, params: TensorDictParams, prefix: tuple) -> None:
        super().__init__()
        self.__dict__["_root"] = params
        self.__dict__["_prefix"] = prefix
        self.__dict__["_parameters"] = _Leaves(params, prefix, True)
        self.__dict__["_buffers"] = _Leaves(params, prefix, False)

    def __getattr__(self, name: str):
        if not name.startswith("_"):
            value = _read_leaf(self._root, self._prefix + (name,))
            if isinstance(value, TensorDictBase):
                return _NestedParams(self._root, self._prefix + (name,))
            if value is not None:
                return value
        return super().__getattr__(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, torch.Tensor) and not name.startswith("_"):
            _write_leaf(self._root, self._prefix + (name,), value)
        else:
            super().__setattr__(name, value)


class _WriteThroughParams(TensorDictParams):
    """``TensorDictParams`` whose nested attributes are :class:`_NestedParams` views (installed on
    the drop-in modules' parameter containers); ``detach()`` and ``data`` are cached while the
    leaves stay the same (:class:`_DetachedView`); everything else is ``TensorDictParams``."""

    def detach(self) -> TensorDictBase:
        td = _detached(self, "detach")
        return super().detach() if td is None else td

    @property
    def data(self) -> TensorDictBase:
        td = _detached(self, "data")
        return self._param_td.data if td is None else td

    def __getattr__(self, item: str) -> Any:
        if not item.startswith("_"):
            td = self.__dict__.get("_param_td")
            if td is not None and item in td.keys() and isinstance(td.get(item), TensorDictBase):
                return _NestedParams(self, (item,))
        return super().__getattr__(item)


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
    a swap under TorchRL's dotted names would land in a temporary and be lost. The loss
    module's ``TensorDictParams`` answer nested attribute access with write-through views
    (:class:`_NestedParams`), so TorchRL's names work with ``tie_weights=True`` and ``False``.
    Each leaf also answers to a dot-free alias, ``"_fc_<params>.<key joined by __>"`` (e.g.
    ``"_fc_actor_network_params.module__0__weight"``), kept for callers that use it.
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
        # a drop-in's constructor is TorchRL's: show its signature (help, IDEs), not the
        # ``(*args, **kwargs)`` of a mixin's __init__ that only forwards to it
        replaced = next((c for c in cls.__mro__ if c.__module__.startswith("torchrl.objectives")), None)
        own = inspect.signature(cls.__init__).parameters
        if replaced is not None and "__signature__" not in cls.__dict__ and any(
                p.kind is p.VAR_POSITIONAL for p in own.values()):
            cls.__signature__ = inspect.signature(replaced)

    def __setattr__(self, name: str, value: Any) -> None:
        if type(value) is TensorDictParams:
            value.__class__ = _WriteThroughParams  # TorchRL's dotted names write through (_NestedParams)
        super().__setattr__(name, value)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_fc_"):
            alias = self._functional_call_aliases().get(name[4:])
            if alias is not None:
                return alias
        return super().__getattr__(name)

    def _functional_call_aliases(self) -> dict[str, _ParamsAlias]:
        """The dot-free aliases, kept outside the module (its ``__dict__`` is walked by TorchRL
        and by ``deepcopy``/``pickle``; a copy rebuilds its own)."""
        cache = _ALIASES.get(self)
        if cache is None:
            cache = _ALIASES[self] = {}
        for name, module in list(self._modules.items()):
            if not _is_params(module):
                continue
            keys = list(module._param_td.keys(True, True))
            alias = cache.get(name)
            # rebuilt if the parameters changed, never in the middle of a swap
            if alias is None or (alias._saved is None and set(alias._names.values()) != set(keys)):
                alias = cache[name] = _ParamsAlias(self, name, keys)
        return cache

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        if remove_duplicate:
            yield from super().named_parameters(prefix=prefix, recurse=recurse)
            return
        # TorchRL's LossModule.named_parameters rejects ``remove_duplicate`` (functional_call passes it)
        yield from (
            (name, p)
            for name, p in nn.Module.named_parameters(self, prefix=prefix, recurse=recurse, remove_duplicate=False)
            if not name.startswith("_target")
        )


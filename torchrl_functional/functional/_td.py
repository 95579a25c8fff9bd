"""TensorDict plumbing shared by every TensorDict loss: reading and checking entries,
per-sample hyperparameters, masks and reductions (TorchRL 0.14 semantics)."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase, unravel_key
from torch import Tensor

from ..errors import EntryDtypeError, EntryRequiresGradError, EntryShapeError, HyperparameterError, MissingEntryError
from ._validation import assert_finite, check_choice, finite_checks_enabled

REDUCTIONS = ("mean", "sum", "none")
#: Entries that ``loss_mask_key="auto"`` ANDs together when present (as TorchRL's LossModule).
AUTO_LOSS_MASK_KEYS: tuple = (("collector", "mask"), "shifted_valid")


def time_dim_of(td: TensorDictBase, time_dim: int | None = None, *, loss: str = "time_dim_of",
                entries_batch: torch.Size | None = None) -> int:
    """The batch dimension of ``td`` that holds time, as a non-negative index (TorchRL's rule).

    ``time_dim`` if given (a batch dim of ``td``; negative values count from its last batch
    dim), else the batch dim named ``"time"``, else the **last batch dim** of ``td``. Never
    inferred from an entry's rank: in a ``[B, T]`` TensorDict, multi-agent entries
    ``[B, T, N_agents, 1]`` keep time at dim 1. Every entry starts with the batch dims of
    ``td``, so the index addresses the entries' time dim too.

    Args:
        td: the input TensorDict, batch ``[*B]`` (at least one dim).
        time_dim: a batch dim of ``td`` (negative counts from its last), or ``None`` for the rule.
        loss: name used in error messages.
        entries_batch: for a TensorDict without batch dims (the off-policy losses accept
            ``batch_size=[]``), the batch ``[*B]`` of its entries ``[*B, F]``: time is then
            ``time_dim`` of it (default its last dim), returned counted from the entries' end.

    Returns:
        The time dim, ``0 <= t < td.batch_dims`` (negative with ``entries_batch``).

    Raises:
        EntryShapeError: ``td`` has no batch dimension (nothing can hold time).
        HyperparameterError: ``time_dim`` is not a batch dim of ``td``.
    """
    nb = td.batch_dims
    if nb == 0 and entries_batch is not None and len(entries_batch):
        ne = len(entries_batch)
        time_dim = ne - 1 if time_dim is None else time_dim
        if isinstance(time_dim, bool) or not isinstance(time_dim, int) or not -ne <= time_dim < ne:
            raise HyperparameterError(loss, "time_dim", f"{time_dim!r} is not a dim of the batch {tuple(entries_batch)}")
        return (time_dim % ne) - ne - 1
    if nb == 0:
        raise EntryShapeError(
            loss, "batch_size",
            "the input TensorDict has no batch dimension to hold time; give it batch_size=[..., T] "
            "(time is its 'time'-named dim, else its last one)",
        )
    if time_dim is None:
        try:
            names = td.names
        except (RuntimeError, ValueError, AttributeError):
            names = None
        if names is not None and "time" in names:
            return list(names).index("time")
        return nb - 1
    if isinstance(time_dim, bool) or not isinstance(time_dim, int) or not -nb <= time_dim < nb:
        raise HyperparameterError(
            loss, "time_dim", f"{time_dim!r} is not a batch dim of the input (batch size {tuple(td.batch_size)})"
        )
    return time_dim % nb


def next_key(key: Any) -> tuple:
    return ("next", *key) if isinstance(key, tuple) else ("next", key)


def missing(loss: str, key: Any, hint: str) -> MissingEntryError:
    return MissingEntryError(loss, key, f"not found in the input TensorDict; {hint}")


_ABSENT = object()
_SCALAR = torch.Size([])


def entry(td: TensorDictBase, key: Any, default: Any = None) -> Any:
    """``td.get(key, default)``, the one way the losses read an entry.

    A plain :class:`~tensordict.TensorDict` and a string key, or a tuple of strings, are read
    from its storage: ``get`` spends about 1 µs per call normalising the key and dispatching,
    and a loss reads 5 to 20 entries. Every other TensorDict type, key form or path goes
    through ``get`` itself, so the value is ``get``'s in every case (the storage attribute is
    pinned in ``tests/test_private_api.py``).
    """
    if type(td) is TensorDict:
        if type(key) is str:
            return td._tensordict.get(key, default)
        if type(key) is tuple and key:
            node: Any = td
            for name in key:
                if type(node) is not TensorDict or type(name) is not str:
                    return td.get(key, default)
                node = node._tensordict.get(name, _ABSENT)
                if node is _ABSENT:
                    return default
            return node
    return td.get(key, default)


def put(source: dict[str, Any], key: Any, value: Any) -> None:
    """Store ``value`` at ``key`` (a string or a nested tuple) in the nested dict ``source``."""
    path = key if type(key) is tuple else (key,)
    if not all(type(name) is str for name in path):
        path = unravel_key(key)
        path = path if isinstance(path, tuple) else (path,)
    node = source
    for name in path[:-1]:
        node = node.setdefault(name, {})
    node[path[-1]] = value


def _packable(source: dict, device: torch.device | None) -> bool:
    for name, value in source.items():
        if type(name) is not str:
            return False
        if isinstance(value, dict):
            if not _packable(value, device):
                return False
        elif not isinstance(value, Tensor) or (device is not None and value.device != device):
            return False
    return True


def pack(source: dict[Any, Any], batch_size: torch.Size = _SCALAR, device: torch.device | None = None) -> TensorDict:
    """``TensorDict(source, batch_size=batch_size, device=device)`` for a TensorDict the package
    builds itself (a loss's outputs, a module's inputs): tensors (or dicts of them) whose
    leading dims are ``batch_size`` by construction, already on ``device``, at string or tuple
    keys. Such a source is stored without the constructor's checks (about 3 µs per call);
    anything else goes through the constructor. ``source`` is a dict built for the call (its
    tuple keys are nested in place).

    Args:
        source: ``{key: tensor or nested dict}``.
        batch_size: the batch size, ``[]`` for a loss's outputs.
        device: the TensorDict's device, or ``None``.
    """
    batch_size = batch_size if type(batch_size) is torch.Size else torch.Size(batch_size)
    if any(type(key) is not str for key in source):
        nested: dict[str, Any] = {}
        for key, value in source.items():
            put(nested, key, value)
        source = nested
    if _packable(source, device):
        return TensorDict._new_unsafe(source, batch_size=batch_size, device=device)
    return TensorDict(source, batch_size=batch_size, device=device)


def rename_entry(td: TensorDictBase, old: Any, new: Any, *, safe: bool = False) -> TensorDictBase:
    """``td.rename_key_(old, new, safe=safe)``, the one way a module renames an entry of its own
    (shallow) copy. An unlocked plain TensorDict whose two keys are tuples of strings under the
    same existing parent moves the leaf in its parent's storage (``rename_key_`` spends about
    6 µs validating and re-setting it); every other case, and every error, is ``rename_key_``'s
    (the storage attribute is pinned in ``tests/test_private_api.py``)."""
    if (type(td) is TensorDict and type(old) is tuple and type(new) is tuple and len(old) == len(new) > 1
            and old[:-1] == new[:-1] and old != new and all(type(name) is str for name in old + new[-1:])):
        parent: Any = td
        for name in old[:-1]:
            if type(parent) is not TensorDict or parent._is_locked:
                break
            parent = parent._tensordict.get(name)
        else:
            if type(parent) is TensorDict and not parent._is_locked and not td._is_locked:
                store = parent._tensordict
                if old[-1] in store and not (safe and new[-1] in store):
                    store[new[-1]] = store.pop(old[-1])
                    return td
    return td.rename_key_(old, new, safe=safe)


def gather(td: TensorDictBase, keys: Any) -> dict[str, Any]:
    """The entries of ``td`` present at ``keys`` (strings or tuples), as a nested dict for
    :func:`pack`: what ``td.select(*keys, strict=False)`` holds, without building it."""
    source: dict[str, Any] = {}
    for key in keys:
        value = entry(td, key)
        if value is None:
            continue
        if isinstance(value, TensorDictBase):  # as select + items(True, True): its leaves, copied over
            for sub, leaf in value.items(True, True):
                put(source, (key, sub), leaf)
        else:
            put(source, key, value)
    return source


def require(loss: str, td: TensorDictBase, key: Any, hint: str) -> Tensor:
    """``td[key]`` or :class:`MissingEntryError` explaining who normally writes it."""
    value = entry(td, key)
    if value is None:
        raise missing(loss, key, hint)
    return value


def check_float(loss: str, key: Any, x: Tensor) -> None:
    if not isinstance(x, Tensor):
        raise EntryDtypeError(loss, key, f"expected a tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise EntryDtypeError(loss, key, f"expected a floating point tensor, got {x.dtype}")
    if finite_checks_enabled():
        assert_finite(loss, key, x)


def read_float(loss: str, td: TensorDictBase, key: Any, hint: str, shape: tuple | None = None,
               what: str = "") -> Tensor:
    """``td[key]``, checked floating point (:func:`require`, :func:`check_float`) and, when
    ``shape`` is given, of that shape (``what`` describes it in the error)."""
    x = entry(td, key)  # require + check_float, inlined: the losses' most frequent call
    if x is None:
        raise missing(loss, key, hint)
    if not isinstance(x, Tensor) or not x.is_floating_point():
        check_float(loss, key, x)  # raises, naming what it got
    elif finite_checks_enabled():
        assert_finite(loss, key, x)
    if shape is not None and x.shape != shape:
        check_shape(loss, key, x, torch.Size(shape), what)
    return x


def check_finite_leaves(loss: str, key: Any, td: Any) -> None:
    """With :func:`check_finite` on, check every float leaf of a sub-TensorDict entry."""
    if finite_checks_enabled() and td is not None and not isinstance(td, Tensor):
        for name, leaf in td.items(True, True):
            name = name if isinstance(name, tuple) else (name,)
            assert_finite(loss, (key if isinstance(key, tuple) else (key,)) + name, leaf)


def check_bool(loss: str, key: Any, x: Tensor) -> None:
    if not isinstance(x, Tensor) or x.dtype != torch.bool:
        got = x.dtype if isinstance(x, Tensor) else type(x).__name__
        raise EntryDtypeError(loss, key, f"expected a torch.bool tensor, got {got}")


def check_constant(loss: str, key: Any, x: Tensor, why: str) -> None:
    if isinstance(x, Tensor) and x.requires_grad:
        raise EntryRequiresGradError(loss, key, f"requires grad, but {why}; detach it when storing it")


def check_shape(loss: str, key: Any, x: Tensor, shape: torch.Size, what: str) -> None:
    if x.shape != shape:
        raise EntryShapeError(loss, key, f"expected shape {tuple(shape)} ({what}), got {tuple(x.shape)}")


def check_per_sample(loss: str, key: Any, x: Tensor, batch_shape: torch.Size) -> None:
    """A per-sample quantity must be ``[*B, F]``: a ``[*B]`` tensor would silently broadcast."""
    if x.ndim != len(batch_shape) + 1 or x.shape[:-1] != batch_shape:
        hint = ""
        if x.shape == batch_shape:
            hint = " (add the trailing feature dimension: x.unsqueeze(-1))"
        raise EntryShapeError(
            loss,
            key,
            f"expected shape {tuple(batch_shape) + ('F',)} with batch {tuple(batch_shape)} "
            f"(the shape of the current log-prob), got {tuple(x.shape)}{hint}",
        )


def hyperparameter(
    loss: str, td: TensorDictBase, name: str, value: Any, batch_shape: torch.Size | None
) -> Any:
    """The keyword value of a hyperparameter, overridden by a same-named entry of ``td``.

    A TensorDict entry is per sample: ``[*B]`` or ``[*B, 1]``; it is returned as
    ``[*B, 1]`` so that it broadcasts against per-sample losses. When ``B`` extends the
    TensorDict's batch (multi-agent ``[B, T, N]`` entries in a ``[B, T]`` TensorDict), an entry
    per TensorDict sample (``[B, T]`` or ``[B, T, 1]``) is shared by the extra dims.
    """
    given = entry(td, name)
    if given is None:
        return value
    if not isinstance(given, Tensor) or not (given.is_floating_point() or given.dtype in (torch.int64, torch.int32)):
        raise EntryDtypeError(loss, name, f"a hyperparameter entry must be a real tensor, got {getattr(given, 'dtype', type(given))}")
    if finite_checks_enabled():
        assert_finite(loss, name, given)
    if batch_shape is not None:
        per_td_sample = td.batch_size
        extra = len(batch_shape) - len(per_td_sample)
        if given.shape == batch_shape:
            given = given.unsqueeze(-1)
        elif (
            extra > 0 and batch_shape[: len(per_td_sample)] == per_td_sample
            and given.shape in (per_td_sample, per_td_sample + (1,))
        ):
            # one value per sample of the TensorDict (e.g. per step), shared by the entries' extra
            # dims (e.g. the agents of [B, T, N, ...] entries)
            given = given.reshape(per_td_sample + (1,) * (extra + 1))
        elif given.shape != batch_shape + (1,):
            raise EntryShapeError(
                loss, name,
                f"a hyperparameter entry must have shape {tuple(batch_shape)} or {tuple(batch_shape) + (1,)}, "
                f"got {tuple(given.shape)}",
            )
    return given


def check_reduction(loss: str, reduction: str) -> None:
    check_choice(loss, "reduction", reduction, REDUCTIONS)


def loss_mask(loss: str, td: TensorDictBase, loss_mask_key: Any) -> Tensor | None:
    """The validity mask to apply to per-sample losses, or ``None``.

    ``"auto"`` ANDs every entry of :data:`AUTO_LOSS_MASK_KEYS` present in ``td``; a key
    uses that entry only; ``None`` disables masking (TorchRL's ``loss_mask_key``).
    """
    if loss_mask_key is None:
        return None
    keys = AUTO_LOSS_MASK_KEYS if isinstance(loss_mask_key, str) and loss_mask_key == "auto" else (loss_mask_key,)
    mask = None
    for key in keys:
        value = entry(td, key)
        if value is None:
            continue
        check_bool(loss, key, value)
        mask = value if mask is None else _and(mask, value)
    return mask


def _and(a: Tensor, b: Tensor) -> Tensor:
    while a.ndim > b.ndim and a.shape[-1] == 1:
        a = a.squeeze(-1)
    while b.ndim > a.ndim and b.shape[-1] == 1:
        b = b.squeeze(-1)
    return a & b


def expand_mask(loss: str, mask: Tensor, value: Tensor, key: Any = "mask") -> Tensor:
    """Broadcast a ``[*B]``/``[*B, 1]`` mask to a per-sample loss ``[*B, F]`` (TorchRL rules)."""
    while mask.ndim > value.ndim and mask.shape[-1] == 1:
        mask = mask.squeeze(-1)
    if mask.ndim > value.ndim:
        raise EntryShapeError(loss, key, f"a mask of shape {tuple(mask.shape)} cannot mask a loss of shape {tuple(value.shape)}")
    if mask.ndim < value.ndim:
        mask = mask.reshape(mask.shape + (1,) * (value.ndim - mask.ndim))
    if mask.shape == value.shape:
        return mask
    try:
        return mask.expand_as(value)
    except RuntimeError as err:
        raise EntryShapeError(loss, key, f"a mask of shape {tuple(mask.shape)} does not match the loss shape {tuple(value.shape)}") from err


def reduce_loss(
    loss: str,
    value: Tensor,
    reduction: str,
    mask: Tensor | None = None,
    weights: Tensor | None = None,
    *,
    squeeze: bool = True,
) -> Tensor:
    """Reduce a per-sample loss ``[*B, F]`` as TorchRL's ``LossModule._reduce_loss(...).squeeze(-1)``.

    Masked-out elements are *selected away* (``where``, not multiplied), so NaN/inf in
    them changes neither the value nor the gradient. ``"mean"`` divides by the number
    of valid elements (or by the sum of ``weights``); ``"none"`` keeps the shape (masked
    elements are 0) and drops a trailing singleton dimension unless ``squeeze`` is false
    (the losses that return ``_reduce_loss`` unsqueezed: imitation, DreamerV3).
    """
    if mask is not None:
        mask = expand_mask(loss, mask, value)
        value = torch.where(mask, value, 0.0)
    if weights is not None and weights.shape != value.shape:
        weights = expand_mask(loss, weights, value, key="priority_weight")
    if reduction == "none":
        out = value if weights is None else value * weights
    elif reduction == "mean":
        if weights is not None:
            w = weights if mask is None else weights * mask.to(weights.dtype)
            out = (value * w).sum() / w.sum()
        elif mask is not None:
            out = value.sum() / mask.sum().clamp_min(1)
        else:
            out = value.mean()
    elif reduction == "sum":
        out = value.sum() if weights is None else (value * weights).sum()
    else:  # pragma: no cover - validated by check_reduction
        raise HyperparameterError(loss, "reduction", f"expected one of {REDUCTIONS}, got {reduction!r}")
    return out.squeeze(-1) if squeeze and out.ndim else out


def finish_losses(loss: str, out: dict[str, Tensor], reduction: str, mask: Tensor | None = None,
                  weights: Tensor | None = None) -> TensorDict:
    """Reduce every ``loss_*`` entry of ``out`` and pack the outputs in a TensorDict."""
    for key, value in out.items():
        if key.startswith("loss_"):
            out[key] = reduce_loss(loss, value, reduction, mask, weights)
    return pack(out)

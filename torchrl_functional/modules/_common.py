"""Names shared by the drop-in modules."""

import dataclasses
import functools
import operator
from collections.abc import Callable

#: Entries the modules add to the (shallow) copy they hand to the functional loss.
#: Nested under a private root so they can never collide with user entries.
PRIVATE = "_torchrl_functional"
ACTOR_OUTPUT = (PRIVATE, "actor_output")
OLD_ACTOR_OUTPUT = (PRIVATE, "old_actor_output")
OLD_VALUE = (PRIVATE, "old_state_value")
PROXIMAL_ACTOR_OUTPUT = (PRIVATE, "proximal_actor_output")

#: keys objects built by :func:`cached_keys`
_KEYS_CACHE: dict = {}


def cached_keys(cls: type, **names):
    """``cls(**names)``, one shared object per set of names (the keys objects are frozen and
    validate their names when built; the modules name their entries on every call)."""
    try:
        # a list of keys is cached apart from the nested key of the same names (a tuple)
        key = (cls, tuple((k, v) if type(v) is not list else (k, list, tuple(v)) for k, v in names.items()))
        keys = _KEYS_CACHE.get(key)
    except TypeError:  # unhashable names: build it
        return cls(**names)
    if keys is None:
        if len(_KEYS_CACHE) >= 1024:
            _KEYS_CACHE.clear()
        keys = _KEYS_CACHE[key] = cls(**names)
    return keys


@functools.cache
def _shared_fields(tensor_keys_cls: type, cls: type) -> tuple[tuple[str, ...], Callable, list]:
    """The fields both classes declare, a reader of their values, and the slot holding the last
    ``(values, extra, keys)`` built for this pair of classes."""
    names = {f.name for f in dataclasses.fields(cls)}
    fields = tuple(f.name for f in dataclasses.fields(tensor_keys_cls) if f.name in names)
    if len(fields) > 1:
        return fields, operator.attrgetter(*fields), [None]
    return fields, lambda tensor_keys: tuple(getattr(tensor_keys, f) for f in fields), [None]


def keys_from(tensor_keys, cls: type, **extra):
    """Our keys object ``cls`` from a TorchRL module's ``tensor_keys``: the entry names of the
    fields both declare, plus ``extra`` (private entries of the module), shared as
    :func:`cached_keys` shares them. A module names its entries on every call: the names are
    read in one ``attrgetter`` call and compared with the last ones (the same objects, unless
    ``set_keys`` changed them) before anything is built or hashed."""
    fields, read, last = _shared_fields(type(tensor_keys), cls)
    values = read(tensor_keys)
    hit = last[0]  # one read: another thread may replace the slot, never half of it
    if hit is not None and hit[0] == values and hit[1] == extra:
        return hit[2]
    names = dict(zip(fields, values))
    names.update(extra)
    keys = cached_keys(cls, **names)
    last[0] = (values, extra, keys)
    return keys

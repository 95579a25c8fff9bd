"""Names shared by the drop-in modules."""

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
        key = (cls, tuple(names.items()))
        keys = _KEYS_CACHE.get(key)
    except TypeError:  # unhashable names (a list of keys): build it
        return cls(**names)
    if keys is None:
        if len(_KEYS_CACHE) >= 1024:
            _KEYS_CACHE.clear()
        keys = _KEYS_CACHE[key] = cls(**names)
    return keys

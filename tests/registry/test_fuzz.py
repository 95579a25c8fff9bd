"""Bad-input fuzzing of every loss in the registry.

For each spec and each of its layouts, every entry is mutated in turn: dropped, renamed
(with and without the matching keys object), cast to a dtype of the wrong kind or to
another float precision, reshaped, made to require grad; extra entries are added (a
mutation TensorDict itself refuses to build is not a case). Every case must either give
the clean result (extra/unused entries, renamed with keys, dtypes that mean the same
numbers, documented optional entries) or raise the library's own ``LossInputError`` whose
message names the entry. Never a silently different number; never a mutated input.
Out-of-range hyperparameters raise ``HyperparameterError`` naming the hyperparameter.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tests.specs import SPECS
from torchrl_functional.errors import HyperparameterError, LossInputError
from torchrl_functional.functional.keys import resolve_keys

# ----------------------------------------------------------------------------- mutations


def _leaves(td):
    return [k if isinstance(k, tuple) else (k,) for k in td.keys(True, True)]


def _key_field(keys_obj, key):
    """The keys-object field that names ``key`` (root or under "next"), if any."""
    for f in dataclasses.fields(keys_obj):
        value = getattr(keys_obj, f.name)
        value = value if isinstance(value, tuple) else (value,)
        if key == value or key == ("next",) + value or key[: len(value)] == value:
            return f.name, value
    return None, None


def mutations(spec, layout):
    clean = layout.make_td(0, torch.float32)
    keys_obj = spec.keys()
    for key in _leaves(clean):
        yield f"drop {key}", key, lambda td, key=key: td.exclude(key), None
        value = clean.get(key)
        if value.is_floating_point():
            yield f"{key} -> int64", key, lambda td, key=key: td.set(key, td.get(key).long()), None
            yield f"{key} -> bool", key, lambda td, key=key: td.set(key, td.get(key) > 0), None
            yield f"{key} -> float64", key, lambda td, key=key: td.set(key, td.get(key).double()), "close"
        else:
            yield f"{key} -> float32", key, lambda td, key=key: td.set(key, td.get(key).float()), None
        if value.ndim >= 1:
            yield f"{key} drop last dim", key, lambda td, key=key: td.set(key, td.get(key)[..., 0]), None
        yield f"{key} add dim 1", key, lambda td, key=key: td.set(key, td.get(key).unsqueeze(-1)), None
        yield f"{key} add dim 2", key, lambda td, key=key: td.set(
            key, td.get(key).unsqueeze(-1).expand(*td.get(key).shape, 2).clone()), None
        yield f"{key} batch+1", key, lambda td, key=key: td.set(key, torch.cat([td.get(key), td.get(key)[:1]], 0)), None
        if value.is_floating_point():
            yield f"{key} requires grad", key, lambda td, key=key: td.set(key, td.get(key).clone().requires_grad_()), "grad"
        if keys_obj is not None:
            fname, prefix = _key_field(keys_obj, key)
            if fname is not None and len(prefix) == len(key) - (key[0] == "next" and prefix[0] != "next"):
                new = ("renamed_" + prefix[-1],)

                def rename(td, key=key, prefix=prefix, new=new):
                    moved = td.exclude(key)
                    target = (key[:-len(prefix)] + new) if key[0] == "next" and prefix[0] != "next" else new
                    moved.set(target, td.get(key))
                    return moved

                yield f"rename {key} (no keys)", key, rename, None
                yield f"rename {key} with keys", key, rename, ("keys", fname, new[0])


def _extra_entries(td):
    g = torch.Generator().manual_seed(1)
    out = td.clone()
    b = tuple(td.batch_size)
    out["unrelated"] = torch.randn(*b, 7, generator=g)
    out["next", "unrelated_flag"] = torch.ones(*b, 2, dtype=torch.bool)
    out["meta", "note"] = torch.arange(3).expand(*b, 3).clone()
    return out


def _results_equal(a, b, exact=True):
    if set(a.keys(True, True)) != set(b.keys(True, True)):
        return False
    for key in a.keys(True, True):
        x, y = a.get(key), b.get(key)
        if x.shape != y.shape:
            return False
        if exact:
            if not torch.equal(x, y) and not (torch.isnan(x) == torch.isnan(y)).all() or not torch.equal(
                torch.nan_to_num(x), torch.nan_to_num(y)
            ):
                return False
        elif not torch.allclose(x.double(), y.double(), rtol=1e-5, atol=1e-6, equal_nan=True):
            return False
    return True


def _run(spec, layout, td, keys=None):
    torch.manual_seed(0)
    return spec.call(td, layout, **({} if keys is None else {"keys": keys}))


def _names_entry(err: LossInputError, key) -> bool:
    text = str(err)
    candidates = {repr(key), repr(key[0]) if len(key) == 1 else repr(tuple(key))}
    for n in range(1, len(key)):
        candidates.add(repr(tuple(key[:n])) if n > 1 else repr(key[0]))
    renamed = "renamed_" + key[-1]
    return any(c in text for c in candidates) or renamed in text




def _constructible(spec, layout, mutate) -> bool:
    try:
        mutate(layout.make_td(0, torch.float32))
    except Exception:  # TensorDict refuses it: a user cannot build this input
        return False
    return True


FUZZED = [(s, layout) for s in SPECS for layout in s.layouts if layout.fuzz]
CASES = [
    (spec, layout, *m) for spec, layout in FUZZED for m in mutations(spec, layout)
    if _constructible(spec, layout, m[2])
]


def test_case_count():
    # reported in the project notes; guards against the harness silently shrinking
    assert len(CASES) >= 1500, len(CASES)


@pytest.mark.parametrize("spec, layout", FUZZED, ids=[f"{s.name}-{layout.id}" for s, layout in FUZZED])
def test_extra_entries_change_nothing(spec, layout):
    clean = _run(spec, layout, layout.make_td(0, torch.float32))
    assert _results_equal(_run(spec, layout, _extra_entries(layout.make_td(0, torch.float32))), clean)


@pytest.mark.parametrize(
    "spec, layout, label, key, mutate, expect",
    CASES,
    ids=[f"{c[0].name}-{c[1].id}: {c[2]}" for c in CASES],
)
def test_mutation_is_rejected_or_harmless(spec, layout, label, key, mutate, expect):
    clean = _run(spec, layout, layout.make_td(0, torch.float32))
    mutated = mutate(layout.make_td(0, torch.float32))
    snapshot = mutated.clone()
    keys = None
    if isinstance(expect, tuple) and expect[0] == "keys":  # the layout's own renames kept
        keys = resolve_keys(layout.kwargs.get("keys"), spec.keys, spec.name).replace(**{expect[1]: expect[2]})
    try:
        out = _run(spec, layout, mutated, keys)
    except LossInputError as err:
        assert _names_entry(err, key), f"{label}: the error does not name the entry: {err}"
        assert err.loss == spec.name, err
    else:
        dropped = label.startswith("drop") or label.endswith("(no keys)")
        if expect == "close":
            assert _results_equal(out, clean, exact=False), f"{label}: a float64 entry changed the result"
        elif dropped and key == ("priority_weight",):
            # documented optional entry: without it the loss is unweighted, as TorchRL's
            assert _results_equal(out, _run(spec, layout, layout.make_td(0, torch.float32).exclude(key))), label
        elif key == ("next", "terminated") and not _results_equal(out, clean):
            # documented default (TorchRL's): a missing "terminated" means "terminated = done"
            alt = layout.make_td(0, torch.float32)
            alt["next", "terminated"] = alt["next", "done"]
            assert _results_equal(out, _run(spec, layout, alt)), f"{label}: neither the clean result nor terminated=done"
        else:
            assert _results_equal(out, clean), f"{label}: computed a different result instead of raising"
    # the input is never modified, whatever happened
    assert set(mutated.keys(True, True)) == set(snapshot.keys(True, True))
    for k in snapshot.keys(True, True):
        assert torch.equal(mutated.get(k), snapshot.get(k)), k


INVALID = [
    pytest.param(s, h, v, id=f"{s.name}-{h.name}={v}") for s in SPECS for h in s.hypers for v in h.invalid
]


@pytest.mark.parametrize("spec, hyper, value", INVALID)
def test_out_of_range_hyperparameter_is_refused(spec, hyper, value):
    layout = next(lay for lay in spec.layouts if hyper.layouts is None or lay.id in hyper.layouts)
    td = layout.make_td(0, torch.float32)
    for given in (value, torch.tensor(value)) if hyper.tensor else (value,):
        with pytest.raises(HyperparameterError) as info:
            spec.call(td, layout, **{hyper.name: given})
        assert info.value.loss == spec.name
        assert hyper.name in str(info.value)

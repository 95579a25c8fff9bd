"""The registry covers every loss: each functional loss and each drop-in class has exactly
one spec, and every spec is well formed."""

from __future__ import annotations

import inspect

import pytest

import torchrl_functional
from tests.specs import SPECS
from torchrl_functional import functional, modules
from torchrl_functional.functional._offpolicy import option_names


def test_every_functional_loss_has_a_spec():
    losses = {name for name in functional.__all__ if name.endswith("_loss") and inspect.isfunction(getattr(functional, name))}
    # kernels named *_loss that are not TensorDict losses
    kernels = {name for name in losses if "td" not in inspect.signature(getattr(functional, name)).parameters}
    assert {s.name for s in SPECS} == losses - kernels


def test_every_drop_in_class_has_a_spec():
    assert {s.module.__name__ for s in SPECS if s.module is not None} == set(modules.__all__)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_spec_is_well_formed(spec):
    assert spec.function is getattr(functional, spec.name)
    assert spec.function is getattr(torchrl_functional, spec.name)
    assert inspect.signature(spec.function).parameters["keys"]
    params = option_names(spec.function)
    for hyper in spec.hypers:
        assert hyper.name in params, hyper.name
    if spec.module is not None:
        cases = spec.module_cases()
        assert cases, "a drop-in class needs at least one parity case"
        assert sum(c.functional_call for c in cases) >= 1, "mark one case for the functional_call guarantee"
        assert len({c.id for c in cases}) == len(cases)


def _names_in(path) -> set[str]:
    """The identifiers a Python file uses (strings and comments left out)."""
    import io
    import tokenize

    with open(path, "rb") as f:
        return {t.string for t in tokenize.tokenize(io.BytesIO(f.read()).readline) if t.type == tokenize.NAME}


def test_a_loss_is_named_in_its_own_test_file_and_its_spec_only():
    """The cross-cutting tests find a loss through the registry: a loss function's or a drop-in
    class's name stands in at most two test files (its family's test file and its spec)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    used = {path: _names_in(path) for path in root.rglob("*.py")}
    names = [s.name for s in SPECS] + [s.module.__name__ for s in SPECS if s.module is not None]
    spread = {n: sorted(str(p.relative_to(root)) for p, ids in used.items() if n in ids) for n in names}
    assert {n: files for n, files in spread.items() if len(files) > 2} == {}
    assert sum(map(bool, spread.values())) > 0.9 * len(names)  # the scan sees the losses (a few only by string)


@pytest.mark.parametrize("spec", [s for s in SPECS if s.module is not None], ids=lambda s: s.name)
def test_a_drop_in_shows_torchrl_constructor_signature(spec):
    """``help``/IDEs show TorchRL's constructor (not a mixin's ``(*args, **kwargs)``)."""
    assert inspect.signature(spec.module) == inspect.signature(spec.torchrl)

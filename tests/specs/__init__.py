"""The registry: one :class:`~tests.specs._spec.LossSpec` per loss.

Every module of this package (one per loss family) defines ``SPECS``; :data:`SPECS`
collects them all. The cross-cutting tests in ``tests/registry/`` and
``benchmarks/bench_registry.py`` are parametrized over it, so a new loss joins every
guarantee by adding its spec module here (see CONTRIBUTING.md).
"""

from __future__ import annotations

import importlib
import pkgutil

from ._spec import TAGS, Hyper, Layout, LossSpec, ModuleCase

__all__ = ["SPECS", "TAGS", "Hyper", "Layout", "LossSpec", "ModuleCase", "by_name", "tagged"]


def _collect() -> list[LossSpec]:
    specs: list[LossSpec] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        specs.extend(importlib.import_module(f"{__name__}.{info.name}").SPECS)
    names = [s.name for s in specs]
    duplicated = {n for n in names if names.count(n) > 1}
    if duplicated:
        raise RuntimeError(f"several specs for {sorted(duplicated)}")
    return specs


SPECS: list[LossSpec] = _collect()


def by_name(name: str) -> LossSpec:
    return next(s for s in SPECS if s.name == name)


def tagged(*tags: str) -> list[LossSpec]:
    """The specs carrying every one of ``tags`` (see :data:`TAGS`), in registry order."""
    unknown = set(tags) - TAGS.keys()
    if unknown:
        raise KeyError(f"unknown tags {sorted(unknown)}")
    return [s for s in SPECS if set(tags) <= s.tags]

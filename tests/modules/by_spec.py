"""The drop-in classes the cross-cutting module tests run, found through the registry
(:data:`tests.specs.SPECS`) by a property of their spec, never by name."""

from __future__ import annotations

import inspect

from torchrl.objectives import ValueEstimators

from tests.specs import SPECS, LossSpec


def _unique_modules(specs: list[LossSpec]) -> list[LossSpec]:
    seen: set[type] = set()
    out = []
    for spec in specs:
        if spec.module not in seen:
            seen.add(spec.module)
            out.append(spec)
    return out


def on_policy_specs() -> list[LossSpec]:
    """One spec per single-agent on-policy drop-in class (TorchRL's default estimator: GAE)."""
    return _unique_modules([
        s for s in SPECS
        if s.module is not None and getattr(s.torchrl, "default_value_estimator", None) == ValueEstimators.GAE
    ])


def off_policy_specs() -> list[LossSpec]:
    """One spec per off-policy drop-in class (TorchRL's default estimator: TD(0))."""
    return _unique_modules([
        s for s in SPECS
        if s.module is not None and getattr(s.torchrl, "default_value_estimator", None) == ValueEstimators.TD0
    ])


def pairs(specs: list[LossSpec]) -> dict[str, tuple[type, type]]:
    """``{class name: (TorchRL's class, ours)}``."""
    return {s.module.__name__: (s.torchrl, s.module) for s in specs}


def accepts(torchrl_cls: type, *names: str) -> bool:
    """Whether TorchRL's constructor of ``torchrl_cls`` takes every keyword in ``names``."""
    return all(_takes(torchrl_cls, n) for n in names)


def _takes(torchrl_cls: type, name: str) -> bool:
    for klass in torchrl_cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(vars(klass)["__init__"]).parameters
        if name in params:
            return True
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return False
    return False


def with_option(specs: list[LossSpec], *names: str) -> list[LossSpec]:
    """The specs whose TorchRL class takes every constructor keyword in ``names``."""
    return [s for s in specs if accepts(s.torchrl, *names)]


def adapts_in_forward(torchrl_cls: type) -> bool:
    """Whether ``forward`` updates the module's state: the KL-penalty classes move their
    coefficient ``beta`` toward ``dtarg`` on every call (two calls differ)."""
    return accepts(torchrl_cls, "dtarg")

"""pytest plugin: TorchRL's own loss tests with torchrl-functional's classes swapped in.

Loaded with ``-p conformance.plugin`` (the repository root on ``sys.path``). At import,
before any test module is collected, every ``torchrl.objectives`` class that
:mod:`torchrl_functional.modules` re-implements is replaced by ours, both in
``torchrl.objectives`` and in the submodule that defines it, so that
``from torchrl.objectives import ClipPPOLoss`` and
``from torchrl.objectives.ppo import ClipPPOLoss`` both give ours.

No fallback: the replaced TorchRL classes' ``forward`` raises when it is reached from one
of our classes, so a test can only pass on numbers computed by ``torchrl_functional``.

Outcomes per test file are written as JSON to ``$TORCHRL_CONFORMANCE_REPORT`` (when set)
for ``conformance/run.py`` to print.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict

import torchrl.objectives as _objectives

import torchrl_functional.modules as _ours

REPLACED: dict[str, tuple[type, type]] = {}


class FallbackError(AssertionError):
    """One of our classes reached a TorchRL ``forward`` for its numbers."""


def _guard(original_forward, name: str):
    def forward(self, *args, **kwargs):
        if type(self).__module__.startswith("torchrl_functional"):
            raise FallbackError(
                f"{type(self).__name__} reached torchrl.objectives.{name}.forward: "
                "the numbers must come from torchrl_functional.functional"
            )
        return original_forward(self, *args, **kwargs)

    forward.__wrapped__ = original_forward
    return forward


def swap_classes() -> dict[str, tuple[type, type]]:
    """Replace TorchRL's classes by ours (idempotent); returns ``{name: (torchrl, ours)}``."""
    if REPLACED:
        return REPLACED
    for name in _ours.__all__:
        ours = getattr(_ours, name)
        theirs = next(
            (c for c in getattr(ours, "__mro__", ())[1:] if c.__name__ == name and c.__module__.startswith("torchrl.")),
            None,
        )
        if theirs is None:
            raise RuntimeError(f"conformance: torchrl_functional.modules.{name} subclasses no TorchRL class of that name")
        # the defining submodule, every package on the way up that re-exports it, torchrl.objectives
        parts = theirs.__module__.split(".")
        for i in range(2, len(parts) + 1):
            module = __import__(".".join(parts[:i]), fromlist=["_"])
            if getattr(module, name, None) is theirs:
                setattr(module, name, ours)
        if getattr(_objectives, name, None) is theirs:
            setattr(_objectives, name, ours)
        if "forward" in theirs.__dict__:
            theirs.forward = _guard(theirs.__dict__["forward"], name)
        REPLACED[name] = (theirs, ours)
    return REPLACED


if os.environ.get("TORCHRL_CONFORMANCE_SWAP", "1") != "0":
    swap_classes()


def pytest_report_header(config):
    return "torchrl-functional conformance: swapped " + ", ".join(sorted(REPLACED))


_OUTCOMES: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))


def pytest_runtest_logreport(report):
    # on the xdist controller this sees the workers' reports too
    if getattr(report, "worker_id", None) is None and os.environ.get("PYTEST_XDIST_WORKER"):
        return
    file = report.nodeid.split("::", 1)[0].rsplit("/", 1)[-1]
    if report.when == "call":
        if report.passed:
            _OUTCOMES[file]["passed"] += 1
        elif report.skipped:
            _OUTCOMES[file]["xfailed" if hasattr(report, "wasxfail") else "skipped"] += 1
        else:
            _OUTCOMES[file]["failed"] += 1
    elif report.when == "setup":
        if report.skipped:
            _OUTCOMES[file]["skipped"] += 1
        elif report.failed:
            _OUTCOMES[file]["error"] += 1
    elif report.failed:  # teardown
        _OUTCOMES[file]["error"] += 1


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("TORCHRL_CONFORMANCE_REPORT")
    if path and not os.environ.get("PYTEST_XDIST_WORKER"):
        with open(path, "w") as f:
            json.dump({k: dict(v) for k, v in _OUTCOMES.items()}, f, indent=1, sort_keys=True)

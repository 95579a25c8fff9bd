"""Input checks shared by every kernel and loss (one place, one wording)."""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor

from ..errors import HyperparameterError, NonFiniteEntryError

_CHECK_FINITE: contextvars.ContextVar[bool] = contextvars.ContextVar("torchrl_functional_check_finite", default=False)
#: whether any context ever turned the check on: until then it is off everywhere, and a loss's
#: entry reads skip the context lookup (one global read instead of two calls per entry)
_EVER_ENABLED = False

try:  # torch >= 2.0
    from torch._C._functorch import is_functorch_wrapped_tensor as _is_wrapped
except ImportError:  # pragma: no cover
    def _is_wrapped(x: Tensor) -> bool:
        return False


_is_compiling = getattr(torch.compiler, "is_dynamo_compiling", torch.compiler.is_compiling)


def can_inspect_values(x: Tensor) -> bool:
    """True when reading a tensor's values is allowed and cheap.

    Value checks (ranges, finiteness) need a host sync; they are skipped under
    ``torch.compile`` tracing and inside ``torch.func`` transforms, where values are
    symbolic or batched. Shape and dtype checks always run.
    """
    if torch.compiler.is_compiling():
        return False
    return not _is_wrapped(x) and x.device.type != "meta"


def check_range(
    loss: str,
    name: str,
    x: float | Tensor,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Raise :class:`HyperparameterError` if ``x`` lies outside ``[low, high]`` (or open bounds)."""
    if isinstance(x, Tensor):
        if x.numel() == 0 or not can_inspect_values(x):
            return
        if not (x.is_floating_point() or x.dtype in (torch.int32, torch.int64)):
            raise HyperparameterError(loss, name, f"expected a real-valued tensor, got {x.dtype}")
        with torch.no_grad():
            if x.numel() == 1:  # one host sync instead of two
                lo_val = hi_val = x.item()
            else:
                lo_val = x.min().item()
                hi_val = x.max().item()
    elif isinstance(x, (int, float)) and not isinstance(x, bool):
        lo_val = hi_val = float(x)
    else:
        raise HyperparameterError(loss, name, f"expected a number or a tensor, got {type(x).__name__}")
    if math.isnan(lo_val) or math.isnan(hi_val):
        raise HyperparameterError(loss, name, "is NaN")
    if low is not None and (lo_val < low or (low_open and lo_val == low)):
        raise HyperparameterError(loss, name, f"must be {'>' if low_open else '>='} {low}, got {lo_val}")
    if high is not None and (hi_val > high or (high_open and hi_val == high)):
        raise HyperparameterError(loss, name, f"must be {'<' if high_open else '<='} {high}, got {hi_val}")


def check_unit_interval(loss: str, name: str, x: float | Tensor) -> None:
    """Discount-like factors (``gamma``, ``lmbda``) must lie in ``[0, 1]``."""
    check_range(loss, name, x, 0.0, 1.0)


def keyword_options(loss: str, given: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """A loss's ``**options`` over its defaults; a name without a default is a ``TypeError``, as
    for any keyword argument."""
    for name in given:
        if name not in defaults:
            raise TypeError(f"{loss}() got an unexpected keyword argument {name!r}")
    return {**defaults, **given}


def check_choice(loss: str, name: str, value: object, choices: tuple) -> None:
    if value not in choices:
        raise HyperparameterError(loss, name, f"expected one of {choices}, got {value!r}")


@contextlib.contextmanager
def check_finite(enabled: bool = True) -> Iterator[None]:
    """Opt-in: inside this context every loss and kernel input entry that a loss reads is
    checked for NaN/inf, and a :class:`~torchrl_functional.errors.NonFiniteEntryError` names
    the loss and the entry. Off by default (the check costs a host sync per entry); skipped
    under ``torch.compile`` tracing and ``torch.func`` transforms.

    Args:
        enabled: ``False`` turns the check off inside the block (e.g. within an enabled one).

    Example::

        with torchrl_functional.check_finite():
            out = clip_ppo_loss(td, Categorical)
    """
    global _EVER_ENABLED
    _EVER_ENABLED = _EVER_ENABLED or bool(enabled)
    token = _CHECK_FINITE.set(enabled)
    try:
        yield
    finally:
        _CHECK_FINITE.reset(token)


def set_check_finite(enabled: bool) -> None:
    """Turn the finiteness check on or off for the current context (see :func:`check_finite`).

    Args:
        enabled: ``True`` to check every input entry for NaN/inf, ``False`` to stop.
    """
    global _EVER_ENABLED
    _EVER_ENABLED = _EVER_ENABLED or bool(enabled)
    _CHECK_FINITE.set(enabled)


def finite_checks_enabled() -> bool:
    """Whether :func:`check_finite` is on. Always ``False`` while ``torch.compile`` traces (the
    checks are skipped there anyway): Dynamo before torch 2.14 cannot trace ``ContextVar.get``."""
    if not _EVER_ENABLED or _is_compiling():
        return False
    return _CHECK_FINITE.get()


def assert_finite(loss: str, key: Any, x: Tensor) -> None:
    """Raise :class:`NonFiniteEntryError` if ``x`` holds NaN or inf (values permitting)."""
    if not x.is_floating_point() or not can_inspect_values(x):
        return
    with torch.no_grad():
        finite = torch.isfinite(x)
        if bool(finite.all()):
            return
        n_nan = int(torch.isnan(x).sum())
        n_inf = int((~finite).sum()) - n_nan
    raise NonFiniteEntryError(
        loss, key, f"holds {n_nan} NaN and {n_inf} infinite value(s) out of {x.numel()} (shape {tuple(x.shape)})"
    )

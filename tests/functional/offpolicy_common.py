"""Helpers shared by the off-policy functional tests: random transitions, a purity check,
a finite-difference gradient check and a bad-input check."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from torchrl_functional.errors import LossInputError


def transition(batch=(6,), seed=0, dtype=torch.float64) -> tuple[TensorDict, torch.Generator]:
    g = torch.Generator().manual_seed(seed)
    shape = torch.Size(batch)
    done = torch.zeros(*shape, 1, dtype=torch.bool)
    done.view(-1)[1] = True
    terminated = done.clone()
    done.view(-1)[2] = True  # truncated, not terminated
    td = TensorDict({"next": {"reward": torch.randn(*shape, 1, generator=g, dtype=dtype),
                              "done": done, "terminated": terminated}}, batch_size=[])
    return td, g


def replay_td(kind: str, **options) -> TensorDict:
    """The registry's float64 replayed transition of ``kind`` (``tests.specs._inputs.off_policy_td``)."""
    from tests.specs._inputs import off_policy_td

    return off_policy_td(0, torch.float64, kind=kind, **options)


def base_loss(name: str):
    """The registry's replay loss whose keys class the keys class of ``name`` directly extends:
    the loss it is built on (CrossQ on SAC, TD3+BC on TD3)."""
    from tests.specs import by_name, tagged

    base = by_name(name).keys.__bases__[0]
    (spec,) = [s for s in tagged("replay") if s.keys is base]
    return spec.function


def assert_same(a: TensorDict, b: TensorDict) -> None:
    """Same output keys, values equal to float64 rounding."""
    assert set(a.keys()) == set(b.keys())
    for key in a.keys():
        torch.testing.assert_close(a[key], b[key], rtol=1e-12, atol=1e-12, msg=lambda m, k=key: f"{k}: {m}")


def randn(g, *shape, dtype=torch.float64, grad=False):
    x = torch.randn(*shape, generator=g, dtype=dtype)
    return x.requires_grad_(grad)


def assert_pure(fn, td, **kwargs):
    """Call ``fn(td, **kwargs)``; the input must be bit-identical afterwards."""
    before = td.clone()
    keys = set(td.keys(True, True))
    out = fn(td, **kwargs)
    assert set(td.keys(True, True)) == keys
    for key in keys:
        assert torch.equal(td.get(key), before.get(key)), key
    return out


def fd_grad(f, x: float, h: float = 1e-6) -> tuple[float, float]:
    """``(autograd, central finite difference)`` of the scalar ``f`` at ``x`` (float64)."""
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(f(t), t)
    with torch.no_grad():
        fd = (f(torch.tensor(x + h, dtype=torch.float64)) - f(torch.tensor(x - h, dtype=torch.float64))) / (2 * h)
    return g.item(), fd.item()


def assert_fd(f, x: float) -> None:
    g, fd = fd_grad(f, x)
    assert g != 0.0
    assert g == pytest.approx(fd, rel=1e-5, abs=1e-8)


def assert_bad(fn, td, exc: type, loss: str, entry, **kwargs) -> None:
    with pytest.raises(exc) as info:
        fn(td, **kwargs)
    assert isinstance(info.value, LossInputError)
    assert info.value.loss == loss
    assert info.value.entry == entry, (info.value.entry, entry)
    assert loss in str(info.value)


def assert_stateless(module) -> None:
    """A functional loss module-level object holds no parameters or buffers."""
    import inspect

    import torch.nn as nn

    for name, obj in vars(module).items():
        assert not isinstance(obj, (nn.Parameter, nn.Module)), name
        if isinstance(obj, torch.Tensor):
            raise AssertionError(f"module-level tensor {name}")
    assert inspect.isfunction(getattr(module, module.__all__[0]))

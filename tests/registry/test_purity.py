"""Every functional loss is pure: the input is bit-identical afterwards (entries, dtypes,
version counters, ``requires_grad``), the function keeps no state, and only the declared
outputs carry gradients."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

from tests.specs import SPECS

LAYOUTS = [pytest.param(s, layout, id=f"{s.name}-{layout.id}") for s in SPECS for layout in s.layouts]


def _snapshot(td):
    return {key: (value.clone(), value.dtype, value.requires_grad, value._version)
            for key, value in td.items(True, True)}


@pytest.mark.parametrize("spec, layout", LAYOUTS)
def test_input_is_left_bit_identical(spec, layout):
    td = layout.make_td(0, torch.float32)
    for key in layout.grad_inputs:
        td.set(key, td.get(key).clone().requires_grad_(True))
    before = _snapshot(td)
    torch.manual_seed(0)
    out = spec.call(td, layout)
    spec.total(out).backward()
    after = _snapshot(td)
    assert after.keys() == before.keys()
    for key, (value, dtype, requires_grad, version) in before.items():
        now = after[key]
        assert torch.equal(now[0], value), key
        assert (now[1], now[2], now[3]) == (dtype, requires_grad, version), key


@pytest.mark.parametrize("spec, layout", LAYOUTS)
def test_only_declared_outputs_carry_gradients(spec, layout):
    td = layout.make_td(0, torch.float32)
    for key in layout.grad_inputs:
        td.set(key, td.get(key).clone().requires_grad_(True))
    torch.manual_seed(0)
    out = spec.call(td, layout)
    carrying = {k for k, v in out.items() if isinstance(v, torch.Tensor) and v.requires_grad}
    assert carrying <= set(spec.grad_outputs), sorted(carrying - set(spec.grad_outputs))
    assert carrying, "no output carries a gradient"


@pytest.mark.parametrize("spec, layout", LAYOUTS)
def test_same_input_same_output(spec, layout):
    td = layout.make_td(3, torch.float64)
    torch.manual_seed(0)
    first = spec.call(td, layout)
    torch.manual_seed(0)
    second = spec.call(td, layout)
    for key, value in first.items(True, True):
        torch.testing.assert_close(second.get(key), value, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_the_function_keeps_no_state(spec):
    module = inspect.getmodule(spec.function)
    for name, obj in vars(module).items():
        assert not isinstance(obj, (nn.Module, torch.Tensor)), f"{module.__name__}.{name} holds state"
    assert not any(isinstance(c, (nn.Module, torch.Tensor)) for c in (spec.function.__defaults__ or ()))
    assert not any(isinstance(c, (nn.Module, torch.Tensor)) for c in (spec.function.__kwdefaults__ or {}).values())

"""No fallback: the off-policy drop-in modules compute every number with
``torchrl_functional.functional``. Under :func:`~tests.modules.offpolicy_no_fallback.forbid_torchrl_math`
(TorchRL's ``forward``, every loss helper of the replaced classes, its value estimators' math and
its critic distance raise), every module case of every registered off-policy loss runs forward
and backward, while TorchRL's own class on the same case is caught. Each family's test file runs
the rest of its module's configurations under the same guard."""

from __future__ import annotations

import warnings

import pytest
import torch

from tests.modules.by_spec import off_policy_specs
from tests.modules.offpolicy_no_fallback import FORBIDDEN_NAMES, Reached, forbid_torchrl_math
from tests.specs import SPECS
from tests.specs._modules import loss_sum

_MODULES = {s.module for s in off_policy_specs()}
CASES = [pytest.param(spec, case, id=f"{spec.name}-{case.id}")
         for spec in SPECS if spec.module in _MODULES for case in spec.module_cases()]


def _build(case):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return case.build()


def test_the_forbidden_list_covers_the_estimators():
    assert {"TD0Estimator.value_estimate", "TDLambdaEstimator.value_estimate", "TD1Estimator.forward"} <= FORBIDDEN_NAMES


def test_every_off_policy_class_is_guarded():
    for spec in off_policy_specs():
        assert f"{spec.torchrl.__name__}.forward" in FORBIDDEN_NAMES or any(
            f"{k.__name__}.forward" in FORBIDDEN_NAMES for k in spec.torchrl.__mro__[1:]), spec.name


@pytest.mark.parametrize("spec, case", CASES)
def test_registered_module_never_reaches_torchrl_math(spec, case):
    _, mine = _build(case)
    data = case.data(4)
    torch.manual_seed(0)
    with forbid_torchrl_math():
        loss_sum(mine(data)).backward()
    assert any(p.grad is not None for p in mine.parameters())


@pytest.mark.parametrize("spec, case", CASES)
def test_a_fallback_would_be_caught(spec, case):
    """The guard is live: TorchRL's own class fails under it."""
    theirs, _ = _build(case)
    with forbid_torchrl_math(), pytest.raises(Reached):
        theirs(case.data(4))

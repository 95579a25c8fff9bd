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


FIRST_CASES = [pytest.param(spec, spec.module_cases()[0], id=spec.name) for spec in off_policy_specs()]


@pytest.mark.parametrize("spec, case", FIRST_CASES)
def test_average_rewards_as_torchrl_or_refused_by_name(spec, case):
    """An estimator built with ``average_rewards=True``: our module's losses are TorchRL's (its
    rewards standardised), or the module refuses it naming its class; group-wise standardisation
    (``group_key``) is refused wherever the estimator's options are read."""
    theirs, mine = _build(case)
    for loss in (theirs, mine):
        loss.make_value_estimator(gamma=0.9, average_rewards=True)
    data = case.data(4)
    torch.manual_seed(0)
    try:
        ours = mine(data.clone())
    except NotImplementedError as err:
        assert type(mine).__name__ in str(err) and "average_rewards" in str(err)
        return
    torch.manual_seed(0)
    ref = theirs(data.clone())
    ours, ref = (out[0] if isinstance(out, tuple) else out for out in (ours, ref))
    for key in ref.keys():
        if key.startswith("loss"):
            torch.testing.assert_close(ours[key], ref[key], rtol=1e-5, atol=1e-5)
    if spec.name == "distributional_dqn_loss":  # reads the estimator's gamma only, as TorchRL's class
        return
    mine.make_value_estimator(gamma=0.9, average_rewards=True, group_key="group")
    with pytest.raises(NotImplementedError, match=f"{type(mine).__name__}.*group_key"):
        mine(data.clone())

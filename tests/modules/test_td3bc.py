"""The ``TD3BCLoss`` drop-in: parity with TorchRL 0.14.1 (values, every parameter gradient, the
written priority; see ``offpolicy_parity_common``), no TorchRL math reached (see
``offpolicy_no_fallback``), ``functional_call``, multi-agent layouts and a training pipeline (see
``offpolicy_checks``, ``offpolicy_marl``). The cross-cutting guarantees find it through the registry."""

from __future__ import annotations

import pytest
import torch
from torchrl.objectives import TD3BCLoss as TTD3BC
from torchrl.objectives import ValueEstimators

from tests.modules.offpolicy_no_fallback import run_ours
from tests.modules.offpolicy_parity_common import ACT, COMMON, WEIGHTED, det_actor, ids, qvalue, run
from torchrl_functional import modules as ours

TD3BC_CASES = COMMON + WEIGHTED + [
    ("ensemble_3", {"num_qvalue_nets": 3}, {}),
    ("alpha", {"alpha": 0.7}, {}),
    ("no_delay", {"delay_actor": False, "delay_qvalue": False}, {}),
    ("renamed_action", {}, {"keys": {"action": "act2", "state_action_value": "sav2"}}),
]


@pytest.mark.parametrize("case_id, kwargs, opts", TD3BC_CASES, ids=ids(TD3BC_CASES))
def test_td3bc_parity(case_id, kwargs, opts):
    keys = opts.get("keys") or {}
    act, sav = keys.get("action", "action"), keys.get("state_action_value", "state_action_value")
    bounds = (-torch.ones(ACT) * 0.8, torch.ones(ACT) * 0.8)
    run(TTD3BC, ours.TD3BCLoss, (det_actor(action_key=act), qvalue(out_key=sav, action_key=act)),
        {"bounds": bounds, **kwargs}, opts)


@pytest.mark.parametrize("case_id, opts", [("base", {}), ("td_lambda_BT", {"batch": (2, 6), "estimator": "td_lambda"})])
def test_no_torchrl_math_reached(case_id, opts):
    """Our forward never reaches TorchRL's loss methods, properties or value estimators."""
    nets = lambda: (det_actor(), qvalue())  # noqa: E731
    if opts.get("estimator"):
        opts = {**opts, "estimator": ValueEstimators.TDLambda}
    run_ours(ours.TD3BCLoss, nets(), {"bounds": (-torch.ones(ACT), torch.ones(ACT))}, opts)

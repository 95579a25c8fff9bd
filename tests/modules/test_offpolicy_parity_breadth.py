"""Drop-in parity of TD3BCLoss, REDQLoss and CrossQLoss with TorchRL 0.14.1 (values, every
parameter gradient, the written priority); see ``offpolicy_parity_common``."""

from __future__ import annotations

import pytest
import torch
from torchrl.objectives import TD3BCLoss as TTD3BC

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

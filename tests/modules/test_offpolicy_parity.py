"""Drop-in parity of DQN, DDPG, TD3 and discrete CQL with TorchRL 0.14.1 (values, every
parameter gradient, the written priority); see ``offpolicy_parity_common``."""

from __future__ import annotations

import pytest
import torch
from torchrl.objectives import DDPGLoss as TDDPG
from torchrl.objectives import DiscreteCQLLoss as TDCQL
from torchrl.objectives import DQNLoss as TDQN
from torchrl.objectives import TD3Loss as TTD3

from tests.modules.offpolicy_parity_common import (
    ACT,
    COMMON,
    WEIGHTED,
    build,
    compare,
    data_for,
    det_actor,
    dqn_actor,
    ids,
    qvalue,
    run,
)
from torchrl_functional import modules as ours

DQN_CASES = COMMON + WEIGHTED + [
    ("double", {"double_dqn": True}, {}),
    ("double_BT_mask", {"double_dqn": True}, {"batch": (3, 4), "mask": True}),
    ("no_delay", {"delay_value": False}, {}),
]


@pytest.mark.parametrize("space", ["categorical", "one_hot"])
@pytest.mark.parametrize("case_id, kwargs, opts", DQN_CASES, ids=ids(DQN_CASES))
def test_dqn_parity(space, case_id, kwargs, opts):
    run(TDQN, ours.DQNLoss, (dqn_actor(one_hot=space == "one_hot"),), {"action_space": space, **kwargs}, opts,
         discrete=space)


DDPG_CASES = COMMON + WEIGHTED + [
    ("delay_actor", {"delay_actor": True}, {}),
    ("no_delay_value", {"delay_value": False}, {}),
    ("renamed_value", {}, {"keys": {"state_action_value": "sav2"}}),
]


@pytest.mark.parametrize("case_id, kwargs, opts", DDPG_CASES, ids=ids(DDPG_CASES))
def test_ddpg_parity(case_id, kwargs, opts):
    out_key = (opts.get("keys") or {}).get("state_action_value", "state_action_value")
    run(TDDPG, ours.DDPGLoss, (det_actor(), qvalue(out_key=out_key)), kwargs, opts)


TD3_CASES = COMMON + WEIGHTED + [
    ("ensemble_3", {"num_qvalue_nets": 3}, {}),
    ("ensemble_1", {"num_qvalue_nets": 1}, {}),
    ("no_delay", {"delay_actor": False, "delay_qvalue": False}, {}),
    ("noise", {"policy_noise": 0.5, "noise_clip": 0.3}, {}),
    ("renamed_action", {}, {"keys": {"action": "act2", "state_action_value": "sav2"}}),
]


@pytest.mark.parametrize("case_id, kwargs, opts", TD3_CASES, ids=ids(TD3_CASES))
def test_td3_parity(case_id, kwargs, opts):
    keys = opts.get("keys") or {}
    act, sav = keys.get("action", "action"), keys.get("state_action_value", "state_action_value")
    bounds = (-torch.ones(ACT) * 0.8, torch.ones(ACT) * 0.8)
    run(TTD3, ours.TD3Loss, (det_actor(action_key=act), qvalue(out_key=sav, action_key=act)),
         {"bounds": bounds, **kwargs}, opts)




DCQL_CASES = [c for c in COMMON] + [
    ("no_delay", {"delay_value": False}, {}),
]


@pytest.mark.parametrize("space", ["categorical", "one_hot"])
@pytest.mark.parametrize("case_id, kwargs, opts", DCQL_CASES, ids=ids(DCQL_CASES))
def test_discrete_cql_parity(space, case_id, kwargs, opts):
    ref, mine = build(TDCQL, ours.DiscreteCQLLoss, (dqn_actor(one_hot=space == "one_hot"),),
                      {"action_space": space, **kwargs}, opts.get("keys"), opts.get("estimator"))
    compare(ref, mine, data_for(opts, space))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bool])
def test_nstep_entry_of_the_wrong_dtype_names_loss_and_entry(dtype):
    """n-step data must hold integer step counts (MultiStep writes int64): a module says which
    loss and which entry, instead of discounting by gamma ** (a float or a flag)."""
    from torchrl_functional.errors import EntryDtypeError

    _, mine = build(TDQN, ours.DQNLoss, (dqn_actor(),), {"action_space": "categorical"})
    data = data_for({"batch": (3, 5), "nstep": 2}, "categorical")
    data["steps_to_next_obs"] = data["steps_to_next_obs"].to(dtype)
    with pytest.raises(EntryDtypeError) as info:
        mine(data)
    assert info.value.loss == "dqn_loss" and info.value.entry == "steps_to_next_obs"

"""The ``TD3Loss`` drop-in: parity with TorchRL 0.14.1 (values, every parameter gradient, the
written priority; see ``offpolicy_parity_common``), no TorchRL math reached (see
``offpolicy_no_fallback``), ``functional_call``, multi-agent layouts and a training pipeline (see
``offpolicy_checks``, ``offpolicy_marl``). The cross-cutting guarantees find it through the registry."""

from __future__ import annotations

import pytest
import torch
from torchrl.data import Bounded
from torchrl.objectives import TD3Loss as TTD3

from tests.modules import offpolicy_checks as C
from tests.modules import offpolicy_marl as M
from tests.modules.offpolicy_checks import check_functional_call
from tests.modules.offpolicy_marl import MODE_PARAMS, marl_parity
from tests.modules.offpolicy_no_fallback import FORBIDDEN_NAMES, keys_of, run_ours
from tests.modules.offpolicy_parity_common import ACT, COMMON, WEIGHTED, det_actor, ids, qvalue, run
from torchrl_functional import modules as ours

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


@pytest.mark.parametrize("case_id, kwargs, opts", TD3_CASES, ids=ids(TD3_CASES))
def test_td3_never_reaches_torchrl_math(case_id, kwargs, opts):
    act, sav = keys_of(opts).get("action", "action"), keys_of(opts).get("state_action_value", "state_action_value")
    bounds = (-torch.ones(ACT), torch.ones(ACT))
    run_ours(ours.TD3Loss, (det_actor(action_key=act), qvalue(out_key=sav, action_key=act)),
              {"bounds": bounds, **kwargs}, opts)


def test_the_forbidden_list_covers_the_loss_helpers():
    assert {"TD3Loss.actor_loss"} <= FORBIDDEN_NAMES


def _td3():
    spec = Bounded(-torch.ones(ACT), torch.ones(ACT), (ACT,))
    return ours.TD3Loss(det_actor(), qvalue(), action_spec=spec)


FUNCTIONAL_CALL = {
    "TD3Loss": (_td3, None),
}


@pytest.mark.parametrize("name", list(FUNCTIONAL_CALL))
def test_functional_call_equals_loading_the_parameters(name):
    check_functional_call(*FUNCTIONAL_CALL[name])


@MODE_PARAMS
def test_td3_multiagent_parity(mode, kwargs, estimator):
    marl_parity(TTD3, ours.TD3Loss, lambda: (M.det_actor(), M.qvalue()), {"bounds": (-1.0, 1.0)},
                {**M.ACTION, "state_action_value": M._k("state_action_value")},
                False, mode, kwargs, estimator)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_td3_trains_in_a_torchrl_pipeline():
    def make(env):
        qnet, _, actor = C.qnet(env), C.vnet(env), C.det_actor(env)
        return ours.TD3Loss(actor, qnet, action_spec=env.action_spec), actor
    C.train_in_pipeline("Pendulum-v1", make)

"""The ``DDPGLoss`` drop-in: parity with TorchRL 0.14.1 (values, every parameter gradient, the
written priority; see ``offpolicy_parity_common``), no TorchRL math reached (see
``offpolicy_no_fallback``), ``functional_call``, multi-agent layouts and a training pipeline (see
``offpolicy_checks``, ``offpolicy_marl``). The cross-cutting guarantees find it through the registry."""

from __future__ import annotations

import pytest
from torchrl.objectives import DDPGLoss as TDDPG

from tests.modules import offpolicy_checks as C
from tests.modules import offpolicy_marl as M
from tests.modules.offpolicy_checks import check_functional_call
from tests.modules.offpolicy_marl import MODE_PARAMS, marl_parity
from tests.modules.offpolicy_no_fallback import FORBIDDEN_NAMES, keys_of, run_ours
from tests.modules.offpolicy_parity_common import COMMON, WEIGHTED, det_actor, ids, qvalue, run
from torchrl_functional import modules as ours

DDPG_CASES = COMMON + WEIGHTED + [
    ("delay_actor", {"delay_actor": True}, {}),
    ("no_delay_value", {"delay_value": False}, {}),
    ("renamed_value", {}, {"keys": {"state_action_value": "sav2"}}),
]


@pytest.mark.parametrize("case_id, kwargs, opts", DDPG_CASES, ids=ids(DDPG_CASES))
def test_ddpg_parity(case_id, kwargs, opts):
    out_key = (opts.get("keys") or {}).get("state_action_value", "state_action_value")
    run(TDDPG, ours.DDPGLoss, (det_actor(), qvalue(out_key=out_key)), kwargs, opts)


@pytest.mark.parametrize("case_id, kwargs, opts", DDPG_CASES, ids=ids(DDPG_CASES))
def test_ddpg_never_reaches_torchrl_math(case_id, kwargs, opts):
    sav = keys_of(opts).get("state_action_value", "state_action_value")
    run_ours(ours.DDPGLoss, (det_actor(), qvalue(out_key=sav)), kwargs, opts)


def test_the_forbidden_list_covers_the_loss_helpers():
    assert {"DDPGLoss.loss_value"} <= FORBIDDEN_NAMES


FUNCTIONAL_CALL = {
    "DDPGLoss": (lambda: ours.DDPGLoss(det_actor(), qvalue()), None),
}


@pytest.mark.parametrize("name", list(FUNCTIONAL_CALL))
def test_functional_call_equals_loading_the_parameters(name):
    check_functional_call(*FUNCTIONAL_CALL[name])


@MODE_PARAMS
def test_ddpg_multiagent_parity(mode, kwargs, estimator):
    marl_parity(TDDPG, ours.DDPGLoss, lambda: (M.det_actor(), M.qvalue()), {},
                {"state_action_value": M._k("state_action_value")}, False, mode, kwargs, estimator)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_ddpg_trains_in_a_torchrl_pipeline():
    def make(env):
        qnet, _, actor = C.qnet(env), C.vnet(env), C.det_actor(env)
        return ours.DDPGLoss(actor, qnet), actor
    C.train_in_pipeline("Pendulum-v1", make)

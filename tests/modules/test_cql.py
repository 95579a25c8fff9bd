"""The CQL drop-ins (``CQLLoss``, ``DiscreteCQLLoss``): parity with TorchRL 0.14.1 (values, every parameter
gradient, the written priority; see ``offpolicy_parity_common``), no TorchRL math reached (see
``offpolicy_no_fallback``), ``functional_call``, multi-agent layouts and a training pipeline
(see ``offpolicy_checks``, ``offpolicy_marl``). The cross-cutting guarantees find them through
the registry."""

from __future__ import annotations

import inspect

import pytest
import torch
from torchrl.objectives import CQLLoss as TCQL
from torchrl.objectives import DiscreteCQLLoss as TDCQL

from tests.modules import offpolicy_checks as C
from tests.modules import offpolicy_marl as M
from tests.modules.offpolicy_checks import check_functional_call
from tests.modules.offpolicy_marl import MODE_PARAMS, marl_parity
from tests.modules.offpolicy_no_fallback import ALLOWED, FORBIDDEN_NAMES, run_ours
from tests.modules.offpolicy_parity_common import COMMON, build, compare, data_for, dqn_actor, ids, qvalue, stoch_actor
from torchrl_functional import modules as ours

CQL_COMMON = [c for c in COMMON if c[0] not in ("none", "mask_BT", "none_mask", "nstep2_mask_BT")
              and not c[2].get("shifted")]
CQL_CASES = CQL_COMMON + [
    ("num_random_3_BT", {"num_random": 3}, {"batch": (2, 3)}),
    ("stochastic_backup", {"deterministic_backup": False}, {}),
    ("max_q_backup", {"max_q_backup": True, "num_random": 4}, {}),
    ("max_q_backup_BT", {"max_q_backup": True, "num_random": 2}, {"batch": (2, 3)}),
    ("temperature_weight", {"temperature": 2.0, "min_q_weight": 0.5}, {}),
    ("lagrange", {"with_lagrange": True, "lagrange_thresh": 0.3}, {}),
    ("alpha_bounds", {"alpha_init": 5.0, "min_alpha": 0.1, "max_alpha": 2.0}, {}),
    ("fixed_alpha", {"fixed_alpha": True, "alpha_init": 0.4}, {}),
    ("delay_actor", {"delay_actor": True}, {}),
    # per-sample loss_cql differs by design (see the functional CQL loss); its total and all else match
    ("none", {"reduction": "none", "scalar_output_mode": "exclude"}, {"sum_only": ("loss_cql",)}),
    ("none_BT", {"reduction": "none", "scalar_output_mode": "exclude"}, {"batch": (2, 3), "sum_only": ("loss_cql",)}),
]


@pytest.mark.parametrize("case_id, kwargs, opts", CQL_CASES, ids=ids(CQL_CASES))
def test_cql_parity(case_id, kwargs, opts):
    ref, mine = build(TCQL, ours.CQLLoss, (stoch_actor(), qvalue()), kwargs, opts.get("keys"), opts.get("estimator"))
    compare(ref, mine, data_for(opts), sum_only=opts.get("sum_only", ()), atol=2e-6)
    torch.testing.assert_close(mine.log_alpha, ref.log_alpha)


def test_cql_per_sample_penalty_differs_from_torchrl_only_per_sample():
    """TorchRL broadcasts the [B] log-sum-exp against Q(s, a) [B, 1]: each sample gets the
    batch mean of the log-sum-exp. Ours keeps each sample's own; totals agree."""
    ref, mine = build(TCQL, ours.CQLLoss, (stoch_actor(), qvalue()), {"reduction": "none"}, None, None)
    data = data_for({})
    torch.manual_seed(3)
    out_ref = ref(data.clone())
    torch.manual_seed(3)
    out_mine = mine(data.clone())
    torch.testing.assert_close(out_mine["loss_cql"].sum(), out_ref["loss_cql"].sum())
    assert not torch.allclose(out_mine["loss_cql"], out_ref["loss_cql"])


DCQL_CASES = [c for c in COMMON] + [
    ("no_delay", {"delay_value": False}, {}),
]


@pytest.mark.parametrize("space", ["categorical", "one_hot", "mult_one_hot"])
@pytest.mark.parametrize("case_id, kwargs, opts", DCQL_CASES, ids=ids(DCQL_CASES))
def test_discrete_cql_parity(space, case_id, kwargs, opts):
    ref, mine = build(TDCQL, ours.DiscreteCQLLoss, (dqn_actor(one_hot=space == "one_hot", mult=space == "mult_one_hot"),),
                      {"action_space": space, **kwargs}, opts.get("keys"), opts.get("estimator"))
    compare(ref, mine, data_for(opts, space))


@pytest.mark.parametrize("space", ["categorical", "one_hot", "mult_one_hot"])
def test_discrete_cql_parity_at_tied_greedy_actions(space):
    """Actions 0 and 1 share their Q-value (a tie at the greedy action wherever it is 0): the
    bootstrap follows TorchRL's greedy action (one-hot: both ties summed)."""
    actor = dqn_actor(one_hot=space == "one_hot", tied=True, mult=space == "mult_one_hot")
    data = data_for({}, space)
    with torch.no_grad():
        q = actor(data["next"].clone())["action_value"]
    assert (q[..., 0] > q[..., 2]).any(), "the data must hold tied greedy actions"
    ref, mine = build(TDCQL, ours.DiscreteCQLLoss, (actor,), {"action_space": space}, None, None)
    compare(ref, mine, data)


@pytest.mark.parametrize("case_id, kwargs, opts", CQL_CASES, ids=ids(CQL_CASES))
def test_cql_never_reaches_torchrl_math(case_id, kwargs, opts):
    run_ours(ours.CQLLoss, (stoch_actor(), qvalue()), kwargs, opts)


@pytest.mark.parametrize("case_id, kwargs, opts", DCQL_CASES, ids=ids(DCQL_CASES))
def test_discrete_cql_never_reaches_torchrl_math(case_id, kwargs, opts):
    run_ours(ours.DiscreteCQLLoss, (dqn_actor(),), {"action_space": "categorical", **kwargs}, opts,
              "categorical")


def test_the_forbidden_list_covers_the_loss_helpers():
    assert {"CQLLoss._get_policy_actions", "CQLLoss._get_value_v", "CQLLoss._alpha"} <= FORBIDDEN_NAMES
    # every method the discrete class defines (its penalty helper included) but configuration
    assert {f"DiscreteCQLLoss.{name}" for name, attr in vars(TDCQL).items()
            if inspect.isfunction(attr) and name not in ALLOWED} <= FORBIDDEN_NAMES


FUNCTIONAL_CALL = {
    "CQLLoss": (lambda: ours.CQLLoss(stoch_actor(), qvalue()), None),
    "DiscreteCQLLoss": (lambda: ours.DiscreteCQLLoss(dqn_actor(), action_space="categorical"), "categorical"),
}


@pytest.mark.parametrize("name", list(FUNCTIONAL_CALL))
def test_functional_call_equals_loading_the_parameters(name):
    check_functional_call(*FUNCTIONAL_CALL[name])


@MODE_PARAMS
def test_discrete_cql_multiagent_parity(mode, kwargs, estimator):
    marl_parity(TDCQL, ours.DiscreteCQLLoss, lambda: (M.dqn_actor(),), {"action_space": "categorical"},
                {**M.ACTION, "action_value": M._k("action_value"), "value": M._k("chosen_action_value")},
                True, mode, kwargs, estimator)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_cql_trains_in_a_torchrl_pipeline():
    def make(env):
        qnet, _, actor = C.qnet(env), C.vnet(env), C.stoch_actor(env)
        return ours.CQLLoss(actor, qnet, num_random=3), actor
    C.train_in_pipeline("Pendulum-v1", make)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_discrete_cql_trains_in_a_torchrl_pipeline():
    def make(env):
        qactor = C.qvalue_actor(env)
        return ours.DiscreteCQLLoss(qactor, action_space=env.action_spec), qactor
    C.train_in_pipeline("CartPole-v1", make, hard_update=True)

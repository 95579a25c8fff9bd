"""The IQL drop-ins (``IQLLoss``, ``DiscreteIQLLoss``): parity with TorchRL 0.14.1 (values, every parameter
gradient, the written priority; see ``offpolicy_parity_common``), no TorchRL math reached (see
``offpolicy_no_fallback``), ``functional_call``, multi-agent layouts and a training pipeline
(see ``offpolicy_checks``, ``offpolicy_marl``). The cross-cutting guarantees find them through
the registry."""

from __future__ import annotations

import pytest
import torch
from torchrl.objectives import DiscreteIQLLoss as TDIQL
from torchrl.objectives import IQLLoss as TIQL
from torchrl.objectives import ValueEstimators

from tests.modules import offpolicy_checks as C
from tests.modules import offpolicy_marl as M
from tests.modules.offpolicy_checks import check_functional_call
from tests.modules.offpolicy_marl import MODE_PARAMS, marl_parity
from tests.modules.offpolicy_no_fallback import FORBIDDEN_NAMES, keys_of, run_ours
from tests.modules.offpolicy_parity_common import (
    COMMON,
    build,
    compare,
    data_for,
    discrete_actor,
    discrete_q,
    ids,
    make_data,
    qvalue,
    stoch_actor,
    vvalue,
)
from torchrl_functional import modules as ours

# TorchRL's IQL targets ignore "shifted_valid" (see test_iql_shifted_valid_unlike_torchrl)
IQL_CASES = [c for c in COMMON if not c[2].get("shifted")] + [
    ("ensemble_1", {"num_qvalue_nets": 1}, {}),
    ("ensemble_3_BT", {"num_qvalue_nets": 3}, {"batch": (3, 4)}),
    ("expectile_temperature", {"expectile": 0.8, "temperature": 3.0}, {}),
    ("none_non_tensor", {"reduction": "none", "scalar_output_mode": "non_tensor"}, {}),
    ("renamed_value", {}, {"keys": {"value": "sv2", "state_action_value": "sav2"}}),
]


def _iql_data(ref, mine, opts, discrete=None):
    """TorchRL's IQL losses drop n-step data from their target (``qvalue_loss`` selects
    ``"next"``, the observations and the action only; see test_iql_nstep_unlike_torchrl).
    The reference then reads the number of steps from under ``"next"``, where its selection
    keeps it: both modules are told so through their value estimator's keys."""
    data = data_for(opts, discrete)
    if opts.get("nstep"):
        data["next", "steps_to_next_obs"] = data.pop("steps_to_next_obs")
        for loss in (ref, mine):
            loss.value_estimator.set_keys(steps_to_next_obs=("next", "steps_to_next_obs"))
    return data


@pytest.mark.parametrize("case_id, kwargs, opts", IQL_CASES, ids=ids(IQL_CASES))
def test_iql_parity(case_id, kwargs, opts):
    keys = opts.get("keys") or {}
    nets = (stoch_actor(), qvalue(out_key=keys.get("state_action_value", "state_action_value")),
            vvalue(out_key=keys.get("value", "state_value")))
    ref, mine = build(TIQL, ours.IQLLoss, nets, kwargs, keys, opts.get("estimator"))
    data = _iql_data(ref, mine, opts)
    if opts.get("mask"):
        # TorchRL's IQLLoss drops the mask from loss_qvalue (see test_iql_masks_loss_qvalue_unlike_torchrl)
        compare(ref, mine, data, skip=("loss_qvalue",), skip_grads="qvalue_network")
    else:
        compare(ref, mine, data)


def _iql_pair(discrete):
    if discrete:
        nets = (discrete_actor(), discrete_q(out_key="state_action_value"), vvalue())
        return build(TDIQL, ours.DiscreteIQLLoss, nets, {"action_space": discrete})
    return build(TIQL, ours.IQLLoss, (stoch_actor(), qvalue(), vvalue()), {})


@pytest.mark.parametrize("estimator", [ValueEstimators.TD1, ValueEstimators.TDLambda])
@pytest.mark.parametrize("discrete", [None, "categorical"])
def test_iql_shifted_valid_unlike_torchrl(discrete, estimator):
    """TorchRL 0.14.1's IQL targets drop ``"shifted_valid"`` (as they drop n-step data); its other
    multi-step losses end each trajectory at its last valid step (truncated) and mask the rest.
    Ours does so in IQL too: equal to TorchRL's IQL given that cut and that mask explicitly."""
    ref, mine = _iql_pair(discrete)
    for loss in (ref, mine):
        loss.make_value_estimator(estimator, gamma=0.9)
    data = data_for({"batch": (4, 6), "shifted": True}, discrete)
    valid = data["shifted_valid"]
    last = valid & ~torch.cat([valid[:, 1:], torch.ones_like(valid[:, :1])], 1)
    explicit = data.clone().exclude("shifted_valid")
    explicit["next", "done"] = data["next", "done"] | last.unsqueeze(-1)
    explicit["next", "terminated"] = data["next", "terminated"] & ~last.unsqueeze(-1)
    explicit["collector", "mask"] = valid
    # TorchRL's IQLLoss also drops the mask from loss_qvalue (test_iql_masks_loss_qvalue_unlike_torchrl)
    skip = () if discrete else ("loss_qvalue",)
    d_mine, d_raw = data.clone(), data.clone()
    torch.manual_seed(0)
    out = mine(d_mine)
    torch.manual_seed(0)
    expected = ref(explicit)
    for key in expected.keys():
        if key not in skip:
            torch.testing.assert_close(out[key], expected[key], msg=lambda m, k=key: f"{k}: {m}")
    torch.testing.assert_close(d_mine["td_error"], explicit["td_error"])
    ref(d_raw)  # TorchRL on the data as given: its target runs past the valid steps
    assert not torch.allclose(d_raw["td_error"], d_mine["td_error"])


@pytest.mark.parametrize("discrete", [None, "categorical"])
def test_iql_nstep_unlike_torchrl(discrete):
    """TorchRL 0.14.1's IQL losses ignore ``steps_to_next_obs`` (they bootstrap n-step rewards
    with ``gamma``); ours discount by ``gamma ** steps_to_next_obs`` as its other losses do."""
    if discrete:
        nets, ref_cls, our_cls = (discrete_actor(), discrete_q(out_key="state_action_value"), vvalue()), TDIQL, ours.DiscreteIQLLoss
        kwargs = {"action_space": discrete}
    else:
        nets, ref_cls, our_cls, kwargs = (stoch_actor(), qvalue(), vvalue()), TIQL, ours.IQLLoss, {}
    ref, mine = build(ref_cls, our_cls, nets, kwargs)
    data = data_for({"batch": (3, 5), "nstep": 3}, discrete)
    one_step = data.exclude("steps_to_next_obs")
    torch.testing.assert_close(ref(data.clone())["loss_qvalue"], ref(one_step.clone())["loss_qvalue"])
    ours_nstep = mine(data.clone())["loss_qvalue"]
    assert not torch.allclose(ours_nstep, mine(one_step.clone())["loss_qvalue"])
    nested = data.clone()
    nested["next", "steps_to_next_obs"] = nested.pop("steps_to_next_obs")
    ref.value_estimator.set_keys(steps_to_next_obs=("next", "steps_to_next_obs"))
    torch.testing.assert_close(ours_nstep, ref(nested)["loss_qvalue"])


def test_iql_masks_loss_qvalue_unlike_torchrl():
    """TorchRL 0.14.1's IQLLoss.qvalue_loss selects entries without the mask; ours masks it
    like every other term: the masked loss equals the loss on the valid samples alone."""
    nets = (stoch_actor(), qvalue(), vvalue())
    ref, mine = build(TIQL, ours.IQLLoss, nets, {}, None, None)
    data = make_data((12,), mask=True)
    valid = data["collector", "mask"]
    assert not valid.all()
    masked = mine(data.clone())["loss_qvalue"]
    only_valid = data[valid].clone()
    del only_valid["collector"]
    torch.testing.assert_close(masked, mine(only_valid)["loss_qvalue"])
    unmasked = data.clone()
    del unmasked["collector"]
    torch.testing.assert_close(ref(data.clone())["loss_qvalue"], mine(unmasked)["loss_qvalue"])


@pytest.mark.parametrize("space", ["categorical", "one_hot"])
@pytest.mark.parametrize("case_id, kwargs, opts", IQL_CASES, ids=ids(IQL_CASES))
def test_discrete_iql_parity(space, case_id, kwargs, opts):
    keys = opts.get("keys") or {}
    nets = (discrete_actor(one_hot=space == "one_hot"),
            discrete_q(out_key=keys.get("state_action_value", "state_action_value")),
            vvalue(out_key=keys.get("value", "state_value")))
    ref, mine = build(TDIQL, ours.DiscreteIQLLoss, nets, {"action_space": space, **kwargs}, keys, opts.get("estimator"))
    compare(ref, mine, _iql_data(ref, mine, opts, space))


@pytest.mark.parametrize("case_id, kwargs, opts", IQL_CASES, ids=ids(IQL_CASES))
def test_iql_never_reaches_torchrl_math(case_id, kwargs, opts):
    k = keys_of(opts)
    nets = (stoch_actor(), qvalue(out_key=k.get("state_action_value", "state_action_value")),
            vvalue(out_key=k.get("value", "state_value")))
    run_ours(ours.IQLLoss, nets, kwargs, opts)


@pytest.mark.parametrize("case_id, kwargs, opts", IQL_CASES, ids=ids(IQL_CASES))
def test_discrete_iql_never_reaches_torchrl_math(case_id, kwargs, opts):
    k = keys_of(opts)
    nets = (discrete_actor(), discrete_q(out_key=k.get("state_action_value", "state_action_value")),
            vvalue(out_key=k.get("value", "state_value")))
    run_ours(ours.DiscreteIQLLoss, nets, {"action_space": "categorical", **kwargs}, opts, "categorical")


def test_the_forbidden_list_covers_the_loss_helpers():
    assert {"IQLLoss.loss_value_diff"} <= FORBIDDEN_NAMES


FUNCTIONAL_CALL = {
    "IQLLoss": (lambda: ours.IQLLoss(stoch_actor(), qvalue(), vvalue()), None),
    "DiscreteIQLLoss": (lambda: ours.DiscreteIQLLoss(discrete_actor(), discrete_q(out_key="state_action_value"),
                                                      vvalue(), action_space="categorical"), "categorical"),
}


@pytest.mark.parametrize("name", list(FUNCTIONAL_CALL))
def test_functional_call_equals_loading_the_parameters(name):
    check_functional_call(*FUNCTIONAL_CALL[name])


@MODE_PARAMS
def test_iql_multiagent_parity(mode, kwargs, estimator):
    marl_parity(TIQL, ours.IQLLoss, lambda: (M.stoch_actor(), M.qvalue(), M.vvalue()), {},
                {**M.ACTION, "state_action_value": M._k("state_action_value"), "value": M._k("state_value"),
                 "log_prob": M._k("action_log_prob")},
                False, mode, kwargs, estimator, scalar_output_mode=True)


@MODE_PARAMS
def test_discrete_iql_multiagent_parity(mode, kwargs, estimator):
    marl_parity(TDIQL, ours.DiscreteIQLLoss, lambda: (M.discrete_actor(), M.discrete_q("state_action_value"), M.vvalue()),
                {"action_space": "categorical"},
                {**M.ACTION, "state_action_value": M._k("state_action_value"), "value": M._k("state_value"),
                 "log_prob": M._k("action_log_prob")},
                True, mode, kwargs, estimator, scalar_output_mode=True)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_iql_trains_in_a_torchrl_pipeline():
    def make(env):
        qnet, vnet, actor = C.qnet(env), C.vnet(env), C.stoch_actor(env)
        return ours.IQLLoss(actor, qnet, vnet), actor
    C.train_in_pipeline("Pendulum-v1", make)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_discrete_iql_trains_in_a_torchrl_pipeline():
    def make(env):
        actor = C.discrete_actor(env)
        qnet, vnet = C.discrete_qnet(env, "state_action_value"), C.vnet(env)
        return ours.DiscreteIQLLoss(actor, qnet, vnet, action_space=env.action_spec), actor
    C.train_in_pipeline("CartPole-v1", make)

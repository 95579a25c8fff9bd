"""Drop-in parity of IQL, discrete IQL and CQL with TorchRL 0.14.1 (values, every parameter
gradient, the written priority); see ``offpolicy_parity_common``."""

from __future__ import annotations

import pytest
import torch
from torchrl.objectives import CQLLoss as TCQL
from torchrl.objectives import DiscreteIQLLoss as TDIQL
from torchrl.objectives import IQLLoss as TIQL
from torchrl.objectives import ValueEstimators

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
    # per-sample loss_cql differs by design (see cql_loss); its total and all else match
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

"""Drop-in parity of SAC and discrete SAC with TorchRL 0.14.1 (values, every parameter
gradient, the written priority); see ``offpolicy_parity_common``."""

from __future__ import annotations

import pytest
import torch
from torchrl.objectives import DiscreteSACLoss as TDSAC
from torchrl.objectives import SACLoss as TSAC

from tests.modules.offpolicy_parity_common import (
    COMMON,
    NACT,
    WEIGHTED,
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

SAC_CASES = COMMON + WEIGHTED + [
    ("ensemble_1", {"num_qvalue_nets": 1}, {}),
    ("ensemble_3_BT", {"num_qvalue_nets": 3}, {"batch": (3, 4)}),
    ("delay_actor", {"delay_actor": True, "delay_qvalue": False}, {}),
    ("fixed_alpha", {"fixed_alpha": True, "alpha_init": 0.3}, {}),
    ("alpha_bounds", {"alpha_init": 5.0, "min_alpha": 0.1, "max_alpha": 2.0}, {}),
    ("target_entropy", {"target_entropy": -0.5}, {}),
    ("separate_losses", {"separate_losses": True}, {}),
    ("none_non_tensor", {"reduction": "none", "scalar_output_mode": "non_tensor"}, {}),
    ("renamed_action", {}, {"keys": {"action": "act2", "state_action_value": "sav2"}}),
    ("skip_done_states", {"skip_done_states": True}, {}),
]


@pytest.mark.parametrize("case_id, kwargs, opts", SAC_CASES, ids=ids(SAC_CASES))
def test_sac_parity(case_id, kwargs, opts):
    keys = opts.get("keys") or {}
    act, sav = keys.get("action", "action"), keys.get("state_action_value", "state_action_value")
    ref, mine = _pair_sac(act, sav, kwargs, opts)
    out_mine, _ = compare(ref, mine, data_for(opts))
    torch.testing.assert_close(mine.log_alpha, ref.log_alpha)
    if case_id == "alpha_bounds":
        assert float(mine.log_alpha.exp()) == pytest.approx(2.0)  # clamped in place, as TorchRL


def _pair_sac(act, sav, kwargs, opts):
    nets = (stoch_actor(action_key=act), qvalue(out_key=sav, action_key=act))
    return build(TSAC, ours.SACLoss, nets, kwargs, opts.get("keys"), opts.get("estimator"))


def test_sac_skip_done_states_on_a_time_batch():
    """TorchRL 0.14.1's SACLoss fails with ``skip_done_states`` on ``[B, T]`` data (its scatter of
    the sampled actions breaks); ours equals TorchRL on the same transitions flattened to ``[B*T]``."""
    ref, mine = _pair_sac("action", "state_action_value", {"skip_done_states": True, "reduction": "none",
                                                          "scalar_output_mode": "exclude"}, {})
    data = make_data((3, 5))
    assert data["next", "done"].any()
    torch.manual_seed(0)
    out = mine(data.clone())
    torch.manual_seed(0)
    flat = ref(data.reshape(-1).clone())
    for key in flat.keys():
        torch.testing.assert_close(out[key].reshape(-1), flat[key])


def _even(opts):
    """SAC v1 splits the first batch dimension between the critics: make it even."""
    batch = opts.get("batch", (12,))
    return {**opts, "batch": (batch[0] + batch[0] % 2, *batch[1:])}


SAC_V1_CASES = [(i, k, _even(o)) for i, k, o in COMMON + WEIGHTED] + [
    ("ensemble_3", {"num_qvalue_nets": 3}, {}),
    ("no_delay", {"delay_value": False, "delay_qvalue": False}, {}),
    ("delay_actor", {"delay_actor": True}, {}),
    ("fixed_alpha", {"fixed_alpha": True, "alpha_init": 0.3}, {}),
    ("target_entropy", {"target_entropy": -0.5}, {}),
    ("none_non_tensor", {"reduction": "none", "scalar_output_mode": "non_tensor"}, {}),
    ("renamed_value", {}, {"keys": {"value": "sv2"}}),
    ("skip_done_states", {"skip_done_states": True}, {}),  # no effect in version 1, as TorchRL
]


@pytest.mark.parametrize("case_id, kwargs, opts", SAC_V1_CASES, ids=ids(SAC_V1_CASES))
def test_sac_v1_parity(case_id, kwargs, opts):
    """SAC with a value network (TorchRL's version 1): loss_value included."""
    keys = opts.get("keys") or {}
    nets = (stoch_actor(), qvalue(), vvalue(out_key=keys.get("value", "state_value")))
    ref, mine = build(TSAC, ours.SACLoss, nets, kwargs, keys, opts.get("estimator"))
    out, _ = compare(ref, mine, data_for(opts))
    assert "loss_value" in out.keys()


def test_sac_v1_odd_batch_is_torchrl_error():
    ref, mine = build(TSAC, ours.SACLoss, (stoch_actor(), qvalue(), vvalue()), {}, None, None)
    for loss in (ref, mine):
        with pytest.raises(RuntimeError, match="incompatible"):
            loss(make_data((5,)))


def test_sac_alpha_bounds_follow_torchrl_over_steps():
    ref, mine = _pair_sac("action", "state_action_value", {"alpha_init": 1.0, "min_alpha": 0.5, "max_alpha": 1.5}, {})
    for loss in (ref, mine):
        opt = torch.optim.SGD([loss.log_alpha], lr=5.0)
        for step in range(3):
            torch.manual_seed(step)
            out = loss(make_data((8,), seed=step))
            opt.zero_grad()
            out["loss_alpha"].backward()
            opt.step()
    torch.testing.assert_close(mine.log_alpha, ref.log_alpha)


DSAC_CASES = COMMON + WEIGHTED + [
    ("ensemble_3", {"num_qvalue_nets": 3}, {}),
    ("fixed_alpha", {"fixed_alpha": True, "alpha_init": 0.3}, {}),
    ("alpha_bounds", {"alpha_init": 5.0, "min_alpha": 0.1, "max_alpha": 2.0}, {}),
    ("target_entropy", {"target_entropy": 0.4}, {}),
    ("entropy_weight", {"target_entropy_weight": 0.5}, {}),
    ("skip_done_states", {"skip_done_states": True}, {}),
    ("skip_done_states_BT", {"skip_done_states": True}, {"batch": (3, 5)}),
]


@pytest.mark.parametrize("space", ["categorical", "one_hot"])
@pytest.mark.parametrize("case_id, kwargs, opts", DSAC_CASES, ids=ids(DSAC_CASES))
def test_discrete_sac_parity(space, case_id, kwargs, opts):
    nets = (discrete_actor(one_hot=space == "one_hot"), discrete_q())
    kwargs = {"action_space": space, "num_actions": NACT, **kwargs}
    ref, mine = build(TDSAC, ours.DiscreteSACLoss, nets, kwargs, opts.get("keys"), opts.get("estimator"))
    compare(ref, mine, data_for(opts, space))
    torch.testing.assert_close(mine.log_alpha, ref.log_alpha)

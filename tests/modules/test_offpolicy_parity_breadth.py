"""Drop-in parity of TD3BCLoss, REDQLoss and CrossQLoss with TorchRL 0.14.1 (values, every
parameter gradient, the written priority); see ``offpolicy_parity_common``."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchrl.modules import ValueOperator
from torchrl.objectives import CrossQLoss as TCrossQ
from torchrl.objectives import REDQLoss as TREDQ
from torchrl.objectives import TD3BCLoss as TTD3BC

from tests.modules.offpolicy_parity_common import (
    ACT,
    COMMON,
    HID,
    OBS,
    WEIGHTED,
    build,
    compare,
    data_for,
    det_actor,
    ids,
    qvalue,
    run,
    stoch_actor,
)
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


# TorchRL's REDQLoss runs its value estimator on ``tensordict.select("next", *obs, action)``: it drops
# n-step data (discounting by gamma instead of gamma ** steps_to_next_obs) and the "shifted_valid" cut
# of multi-step returns. Ours keeps both (a documented difference); one-step n-step data (nstep1) still matches.
REDQ_CASES = [c for c in COMMON if not c[0].startswith(("nstep2", "nstep3", "shifted"))] + [
    ("ensemble_2_sub_1", {"num_qvalue_nets": 2, "sub_sample_len": 1}, {}),
    ("ensemble_5_sub_3", {"num_qvalue_nets": 5, "sub_sample_len": 3}, {}),
    ("alpha_bounds", {"alpha_init": 5.0, "min_alpha": 0.5, "max_alpha": 2.0}, {}),
    ("fixed_alpha_no_entropy", {"fixed_alpha": True, "target_entropy": 0.3}, {}),
    ("no_delay", {"delay_qvalue": False}, {}),
    ("none_non_tensor", {"reduction": "none", "scalar_output_mode": "non_tensor"}, {}),
]


@pytest.mark.parametrize("case_id, kwargs, opts", REDQ_CASES, ids=ids(REDQ_CASES))
def test_redq_parity(case_id, kwargs, opts):
    run(TREDQ, ours.REDQLoss, (stoch_actor(), qvalue()), {"num_qvalue_nets": 4, **kwargs}, opts)


class _BNQNet(nn.Module):
    """A CrossQ critic: batch normalisation before each layer (running statistics updated in train mode)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.BatchNorm1d(OBS + ACT, momentum=0.3), nn.Linear(OBS + ACT, HID), nn.Tanh(),
                                 nn.BatchNorm1d(HID, momentum=0.3), nn.Linear(HID, 1))

    def forward(self, obs, action):
        return self.net(torch.cat([obs, action], -1))


def bn_qvalue():
    torch.manual_seed(5)
    return ValueOperator(_BNQNet(), in_keys=["observation", "action"])


CROSSQ_CASES = [c for c in COMMON if not c[0].endswith("_BT")] + [
    ("ensemble_3", {"num_qvalue_nets": 3}, {}),
    ("alpha_bounds", {"alpha_init": 5.0, "min_alpha": 0.5, "max_alpha": 2.0}, {}),
    ("fixed_alpha", {"fixed_alpha": True, "target_entropy": 0.3}, {}),
    ("none_non_tensor", {"reduction": "none", "scalar_output_mode": "non_tensor"}, {}),
]


@pytest.mark.parametrize("case_id, kwargs, opts", CROSSQ_CASES, ids=ids(CROSSQ_CASES))
def test_crossq_parity(case_id, kwargs, opts):
    run(TCrossQ, ours.CrossQLoss, (stoch_actor(), qvalue()), kwargs, opts)


@pytest.mark.parametrize("case_id, kwargs, opts", [("bn", {}, {}), ("bn_3_none", {"num_qvalue_nets": 3, "reduction": "none"}, {})],
                         ids=["bn", "bn_3_none"])
def test_crossq_batchnorm_parity(case_id, kwargs, opts):
    """A batch-normalised critic: same losses, gradients and running statistics as TorchRL's."""
    ref, mine = build(TCrossQ, ours.CrossQLoss, (stoch_actor(), bn_qvalue()), kwargs)
    compare(ref, mine, data_for(opts))
    for (name, a), (_, b) in zip(ref.named_buffers(), mine.named_buffers()):
        if "running" in name:
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=name)
    assert mine.qvalue_network.training


@pytest.mark.parametrize("name, nets, kwargs", [
    ("TD3BCLoss", lambda: (det_actor(), qvalue()), {"bounds": (-torch.ones(ACT), torch.ones(ACT))}),
    ("REDQLoss", lambda: (stoch_actor(), qvalue()), {"num_qvalue_nets": 3}),
    ("CrossQLoss", lambda: (stoch_actor(), bn_qvalue()), {}),
])
@pytest.mark.parametrize("case_id, opts", [("base", {}), ("td_lambda_BT", {"batch": (2, 6), "estimator": "td_lambda"})])
def test_no_torchrl_math_reached(name, nets, kwargs, case_id, opts):
    """Our forward never reaches TorchRL's loss methods, properties or value estimators."""
    from torchrl.objectives import ValueEstimators

    from tests.modules.test_no_fallback_offpolicy import _run_ours

    if name == "CrossQLoss" and opts.get("batch"):
        nets = lambda: (stoch_actor(), qvalue())  # noqa: E731 - BatchNorm1d reads dim 1 of [B, T, F] as channels
    if opts.get("estimator"):
        opts = {**opts, "estimator": ValueEstimators.TDLambda}
    _run_ours(getattr(ours, name), nets(), kwargs, opts)

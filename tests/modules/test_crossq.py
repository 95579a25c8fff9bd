"""The ``CrossQLoss`` drop-in: parity with TorchRL 0.14.1 (values, every parameter gradient, the
written priority; see ``offpolicy_parity_common``), no TorchRL math reached (see
``offpolicy_no_fallback``), ``functional_call``, multi-agent layouts and a training pipeline (see
``offpolicy_checks``, ``offpolicy_marl``). The cross-cutting guarantees find it through the registry."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchrl.modules import ValueOperator
from torchrl.objectives import CrossQLoss as TCrossQ
from torchrl.objectives import ValueEstimators

from tests.modules.offpolicy_no_fallback import run_ours
from tests.modules.offpolicy_parity_common import (
    ACT,
    COMMON,
    HID,
    OBS,
    build,
    compare,
    data_for,
    ids,
    qvalue,
    run,
    stoch_actor,
)
from torchrl_functional import modules as ours


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


@pytest.mark.parametrize("case_id, opts", [("base", {}), ("td_lambda_BT", {"batch": (2, 6), "estimator": "td_lambda"})])
def test_no_torchrl_math_reached(case_id, opts):
    """Our forward never reaches TorchRL's loss methods, properties or value estimators."""
    nets = lambda: (stoch_actor(), bn_qvalue())  # noqa: E731
    if opts.get("batch"):
        nets = lambda: (stoch_actor(), qvalue())  # noqa: E731 - BatchNorm1d reads dim 1 of [B, T, F] as channels
    if opts.get("estimator"):
        opts = {**opts, "estimator": ValueEstimators.TDLambda}
    run_ours(ours.CrossQLoss, nets(), {}, opts)

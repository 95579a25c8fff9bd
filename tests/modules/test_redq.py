"""The ``REDQLoss`` drop-in: parity with TorchRL 0.14.1 (values, every parameter gradient, the
written priority; see ``offpolicy_parity_common``), no TorchRL math reached (see
``offpolicy_no_fallback``), ``functional_call``, multi-agent layouts and a training pipeline (see
``offpolicy_checks``, ``offpolicy_marl``). The cross-cutting guarantees find it through the registry."""

from __future__ import annotations

import pytest
from torchrl.objectives import REDQLoss as TREDQ
from torchrl.objectives import ValueEstimators

from tests.modules.offpolicy_no_fallback import run_ours
from tests.modules.offpolicy_parity_common import COMMON, ids, qvalue, run, stoch_actor
from torchrl_functional import modules as ours

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


@pytest.mark.parametrize("case_id, opts", [("base", {}), ("td_lambda_BT", {"batch": (2, 6), "estimator": "td_lambda"})])
def test_no_torchrl_math_reached(case_id, opts):
    """Our forward never reaches TorchRL's loss methods, properties or value estimators."""
    nets = lambda: (stoch_actor(), qvalue())  # noqa: E731
    if opts.get("estimator"):
        opts = {**opts, "estimator": ValueEstimators.TDLambda}
    run_ours(ours.REDQLoss, nets(), {"num_qvalue_nets": 3}, opts)

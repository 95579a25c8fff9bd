"""The value-target dispatcher and TorchRL's estimator options as pure functions, against
TorchRL's estimator classes (run on the same values, ``value_network=None``), float64 loops and
hand-computed numbers; TorchRL's time-dimension rule."""

from __future__ import annotations

import itertools

import pytest
import torch
from tensordict import TensorDict
from torchrl._utils import _standardize
from torchrl.objectives.utils import ValueEstimators
from torchrl.objectives.value import GAE, TD0Estimator, TD1Estimator, TDLambdaEstimator
from torchrl.objectives.value.advantages import MultiAgentGAE, _standardize_by_group

from tests.specs import tagged
from torchrl_functional.errors import EntryShapeError, HyperparameterError
from torchrl_functional.functional import (
    EstimatorOptions,
    estimate_advantage,
    estimator_name,
    standardize,
    standardize_by_group,
    time_dim_of,
    value_target,
)

B, T = 3, 7


def _signals(seed=0, shape=(B, T), dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    done = torch.rand(*shape, 1, generator=g) < 0.25
    return dict(
        state_value=torch.randn(*shape, 1, generator=g, dtype=dtype),
        next_state_value=torch.randn(*shape, 1, generator=g, dtype=dtype),
        reward=torch.randn(*shape, 1, generator=g, dtype=dtype),
        done=done,
        terminated=done & (torch.rand(*shape, 1, generator=g) < 0.5),
    )


def _td(s, shape=(B, T), **extra):
    return TensorDict({
        "state_value": s["state_value"],
        "next": {"state_value": s["next_state_value"], "reward": s["reward"], "done": s["done"],
                 "terminated": s["terminated"], **extra.pop("next", {})},
        **extra,
    }, list(shape))


def _torchrl(cls, td, **kwargs):
    est = cls(value_network=None, **kwargs)
    out = est(td.clone())
    return out["advantage"], out["value_target"]


ESTIMATORS = [
    ("gae", GAE, {"gamma": 0.9, "lmbda": 0.8}, EstimatorOptions(advantage_eps=1e-4)),
    ("gae", GAE, {"gamma": 0.9, "lmbda": 0.8, "average_gae": True}, EstimatorOptions(average_advantage=True)),
    ("td0", TD0Estimator, {"gamma": 0.9}, EstimatorOptions()),
    ("td0", TD0Estimator, {"gamma": 0.9, "average_rewards": True}, EstimatorOptions(average_rewards=True)),
    ("td1", TD1Estimator, {"gamma": 0.9}, EstimatorOptions()),
    ("td1", TD1Estimator, {"gamma": 0.9, "average_rewards": True}, EstimatorOptions(average_rewards=True)),
    ("td_lambda", TDLambdaEstimator, {"gamma": 0.9, "lmbda": 0.8}, EstimatorOptions()),
    ("td_lambda", TDLambdaEstimator, {"gamma": 0.9, "lmbda": 0.8, "average_rewards": True},
     EstimatorOptions(average_rewards=True, reward_eps=1e-4)),
]


@pytest.mark.parametrize("valid", [False, True])
@pytest.mark.parametrize("steps", [False, True])
@pytest.mark.parametrize("kind, cls, kwargs, options", ESTIMATORS,
                         ids=[f"{e[0]}-{'avg' if len(e[2]) > 1 + ('lmbda' in e[2]) else 'plain'}" for e in ESTIMATORS])
def test_estimate_advantage_matches_torchrl_estimator(kind, cls, kwargs, options, steps, valid):
    s = _signals(seed=1)
    extra = {}
    g = torch.Generator().manual_seed(5)
    if steps:
        extra["steps_to_next_obs"] = torch.randint(1, 4, (B, T, 1), generator=g)
    if valid:
        mask = torch.ones(B, T, dtype=torch.bool)
        mask[0, 5:] = False
        extra["shifted_valid"] = mask
    want_adv, want_target = _torchrl(cls, _td(s, **extra), **kwargs)
    adv, target = estimate_advantage(
        kind, options, gamma=0.9, lmbda=kwargs.get("lmbda"), time_dim=1,
        steps_to_next_obs=extra.get("steps_to_next_obs"), valid=extra.get("shifted_valid"), **s,
    )
    torch.testing.assert_close(target, want_target)
    torch.testing.assert_close(adv, want_adv)


@pytest.mark.parametrize("average", [False, True])
def test_groups_and_auto_reset_match_torchrl(average):
    s = _signals(seed=2)
    groups = torch.randint(0, 3, (B, T, 1), generator=torch.Generator().manual_seed(0))
    truncated = s["done"] & ~s["terminated"]
    td = _td(s, group=groups, next={"truncated": truncated})
    want_adv, want_target = _torchrl(GAE, td, gamma=0.9, lmbda=0.8, average_gae=average, group_key="group",
                                     auto_reset_env=True)
    adv, target = estimate_advantage(
        "gae", EstimatorOptions(average_advantage=average, auto_reset_env=True), gamma=0.9, lmbda=0.8,
        time_dim=1, truncated=truncated, groups=groups, **s,
    )
    torch.testing.assert_close(target, want_target)
    torch.testing.assert_close(adv, want_adv)


def test_multi_agent_team_signals_match_torchrl():
    s = _signals(seed=3, shape=(B, T, 4))  # per-agent values [B, T, N, 1]
    team = {k: s[k][..., 0, :] for k in ("reward", "done", "terminated")}
    td = TensorDict({"state_value": s["state_value"],
                     "next": {"state_value": s["next_state_value"], **team}}, [B, T])
    want_adv, want_target = _torchrl(MultiAgentGAE, td, gamma=0.9, lmbda=0.8, average_gae=True)
    adv, target = estimate_advantage(
        ValueEstimators.MAGAE, EstimatorOptions(average_advantage=True, agent_dim=-2), gamma=0.9, lmbda=0.8,
        time_dim=1, state_value=s["state_value"], next_state_value=s["next_state_value"], **team,
    )
    torch.testing.assert_close(target, want_target)
    torch.testing.assert_close(adv, want_adv)


def test_value_target_without_state_value_returns_the_target_only():
    s = _signals(seed=4)
    adv, target = value_target("td_lambda", gamma=0.9, lmbda=0.5, next_state_value=s["next_state_value"],
                               reward=s["reward"], done=s["done"], terminated=s["terminated"], time_dim=1)
    assert adv is None
    _, want = _torchrl(TDLambdaEstimator, _td(s), gamma=0.9, lmbda=0.5)
    torch.testing.assert_close(target, want)


def test_n_step_discount_float64_loop():
    """``steps_to_next_obs``: each bootstrap is discounted by ``gamma ** steps`` (TD(0), by hand)."""
    s = _signals(seed=6, dtype=torch.float64)
    steps = torch.randint(1, 5, (B, T, 1), generator=torch.Generator().manual_seed(1))
    _, target = value_target("td0", gamma=0.9, next_state_value=s["next_state_value"], reward=s["reward"],
                             done=s["done"], terminated=s["terminated"], steps_to_next_obs=steps)
    want = torch.empty_like(target)
    for idx in itertools.product(range(B), range(T), range(1)):
        term = float(s["terminated"][idx])
        want[idx] = s["reward"][idx] + 0.9 ** int(steps[idx]) * (1 - term) * s["next_state_value"][idx]
    torch.testing.assert_close(target, want)


def test_estimator_names():
    for name, want in [("gae", "gae"), ("GAE", "gae"), ("tdlambda", "td_lambda"), ("td_lambda", "td_lambda"),
                       ("td", "td1"), ("vtrace", "vtrace"), (ValueEstimators.TDLambda, "td_lambda"),
                       (ValueEstimators.VTrace, "vtrace"), (ValueEstimators.MAGAE, "magae")]:
        assert estimator_name(name) == want
    with pytest.raises(HyperparameterError, match="value_estimator"):
        estimator_name("retrace")


# ----------------------------------------------------------------------------- standardisation


@pytest.mark.parametrize("exclude", [(), (0,), (-2,)])
def test_standardize_matches_torchrl(exclude):
    x = torch.randn(4, 5, 1, generator=torch.Generator().manual_seed(0))
    eps = torch.finfo(torch.float).resolution
    torch.testing.assert_close(standardize(x, exclude_dims=exclude, eps=eps), _standardize(x, exclude))


def test_standardize_masked_hand_computed():
    x = torch.tensor([[1.0], [3.0], [100.0]])
    mask = torch.tensor([True, True, False])
    out = standardize(x, mask=mask)
    torch.testing.assert_close(out[:2], torch.tensor([[-1.0], [1.0]]))  # mean 2, population std 1


def test_standardize_by_group_matches_torchrl():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 4, 1, generator=g)
    groups = torch.randint(0, 3, (6, 4), generator=g)
    mask = torch.rand(6, 4, 1, generator=g) < 0.8
    torch.testing.assert_close(standardize_by_group(x, groups, mask, eps=1e-5),
                               _standardize_by_group(x, groups, mask, eps=1e-5))


# ----------------------------------------------------------------------------- time dimension


def test_time_dim_rule():
    assert time_dim_of(TensorDict({}, [2, 3])) == 1
    assert time_dim_of(TensorDict({}, [2, 3], names=["time", None])) == 0
    assert time_dim_of(TensorDict({}, [2, 3, 4]), -2) == 1
    with pytest.raises(HyperparameterError, match="time_dim"):
        time_dim_of(TensorDict({}, [2, 3]), 2)
    with pytest.raises(EntryShapeError, match="no batch dimension"):
        time_dim_of(TensorDict({}, []))


@pytest.mark.parametrize("spec", tagged("on_policy"), ids=lambda s: s.name)
def test_estimation_needs_a_batched_tensordict(spec):
    s = _signals(seed=8)
    td = _td(s).clone()
    td.batch_size = []
    td["log_prob"] = torch.randn(B, T)
    td["action_log_prob"] = torch.randn(B, T)
    td["entropy"] = torch.rand(B, T)
    with pytest.raises(EntryShapeError, match="no batch dimension"):
        spec.function(td)

"""Dreamer drop-in modules beyond the registry's parity cases: TorchRL's per-step "lambda"
target pinned, and our ``returns_over_horizon`` option against a float64 loop."""

from __future__ import annotations

import warnings

import torch
from torchrl.envs.utils import step_mdp
from torchrl.objectives import dreamer as torchrl_dreamer
from torchrl.objectives.utils import ValueEstimators

from tests.functional.test_dreamer import _lambda_return_loop
from tests.specs import _model_based as M
from torchrl_functional.modules import DreamerActorLoss


def _pair(**ours):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref, mine = M.pair(torchrl_dreamer.DreamerActorLoss, DreamerActorLoss,
                           lambda: (M.actor_model(), M.value_model(), M.model_based_env()),
                           imagination_horizon=4, our_kwargs=ours)
        for loss in (ref, mine):
            loss.make_value_estimator(ValueEstimators.TDLambda, gamma=0.9, lmbda=0.8)
    return ref, mine


def _next_values(loss, fake):
    with torch.no_grad():
        return loss.value_model(step_mdp(fake, keep_other=True))["state_value"]


def test_torchrl_lambda_target_is_the_one_step_target():
    ref, mine = _pair()
    for loss in (ref, mine):
        torch.manual_seed(0)
        _, fake = loss(M.actor_data(1))
        want = fake["next", "reward"] + 0.9 * _next_values(loss, fake)
        torch.testing.assert_close(fake["lambda_target"], want)


def test_returns_over_horizon_is_the_lambda_return():
    _, mine = _pair(returns_over_horizon=True)
    torch.manual_seed(0)
    out, fake = mine(M.actor_data(1))
    r = fake["next", "reward"].double()
    v = _next_values(mine, fake).double()
    want = _lambda_return_loop(r, v, torch.zeros_like(r, dtype=torch.bool), 0.9, 0.8)
    torch.testing.assert_close(fake["lambda_target"].double(), want, rtol=1e-5, atol=1e-5)
    discount = torch.tensor([0.9**t for t in range(4)], dtype=torch.float64).reshape(1, -1, 1)
    torch.testing.assert_close(out["loss_actor"].double(), -(want * discount).sum((1, 2)).mean(), rtol=1e-5, atol=1e-5)
    out["loss_actor"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in mine.actor_model.parameters())

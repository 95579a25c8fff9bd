"""iql_loss and discrete_iql_loss against plain-Python computations, finite differences
(expectile, temperature, gamma), purity and bad inputs."""

from __future__ import annotations

import math

import pytest
import torch

import torchrl_functional.functional.iql as iql_module
from torchrl_functional.errors import EntryShapeError, HyperparameterError, MissingEntryError
from torchrl_functional.functional import discrete_iql_loss, iql_loss

from .offpolicy_common import assert_bad, assert_fd, assert_pure, assert_stateless, randn, transition

B, E, N = 6, 2, 3


def make():
    td, g = transition((B,))
    td["state_action_value"] = randn(g, E, B, 1, grad=True)
    td["target_state_action_value"] = randn(g, E, B, 1)
    td["state_value"] = randn(g, B, 1, grad=True)
    td["next", "state_value"] = randn(g, B, 1)
    td["log_prob"] = randn(g, B, grad=True)
    return td


def reference(d, tau, beta, gamma, q, tq):
    actor, value, qloss = 0.0, 0.0, 0.0
    for i in range(B):
        u = min(tq[e][i] for e in range(E)) - d["state_value"][i, 0].item()
        w = min(math.exp(beta * u), 100.0)
        actor += -w * d["log_prob"][i].item() / B
        value += (tau if u > 0 else 1 - tau) * u * u / B
        y = d["next", "reward"][i, 0].item() + gamma * (not d["next", "terminated"][i, 0]) * d["next", "state_value"][i, 0].item()
        qloss += sum((q[e][i] - y) ** 2 for e in range(E)) / B
    return actor, value, qloss


def test_matches_python_reference():
    td = make()
    out = iql_loss(td, expectile=0.7, temperature=2.0, gamma=0.9, loss_function="l2")
    d = td.detach()
    q = d["state_action_value"].squeeze(-1).tolist()
    tq = d["target_state_action_value"].squeeze(-1).tolist()
    actor, value, qloss = reference(d, 0.7, 2.0, 0.9, q, tq)
    assert out["loss_actor"].item() == pytest.approx(actor, rel=1e-10)
    assert out["loss_value"].item() == pytest.approx(value, rel=1e-10)
    assert out["loss_qvalue"].item() == pytest.approx(qloss, rel=1e-10)


def test_discrete_matches_python_reference():
    td, g = transition((B,))
    td["state_action_value"] = randn(g, E, B, N, grad=True)
    td["target_state_action_value"] = randn(g, E, B, N)
    td["state_value"] = randn(g, B, 1, grad=True)
    td["next", "state_value"] = randn(g, B, 1)
    td["log_prob"] = randn(g, B, grad=True)
    td["action"] = torch.randint(N, (B,), generator=g)
    out = discrete_iql_loss(td, expectile=0.3, temperature=0.5, gamma=0.9, loss_function="l2")
    d = td.detach()
    a = d["action"].tolist()
    q = [[d["state_action_value"][e, i, a[i]].item() for i in range(B)] for e in range(E)]
    tq = [[d["target_state_action_value"][e, i, a[i]].item() for i in range(B)] for e in range(E)]
    actor, value, qloss = reference(d, 0.3, 0.5, 0.9, q, tq)
    assert out["loss_actor"].item() == pytest.approx(actor, rel=1e-10)
    assert out["loss_value"].item() == pytest.approx(value, rel=1e-10)
    assert out["loss_qvalue"].item() == pytest.approx(qloss, rel=1e-10)


def test_stop_gradients_and_finite_differences():
    td = make()
    out = iql_loss(td)
    td["state_value"].grad = None
    out["loss_actor"].backward()
    assert td["state_value"].grad is None  # V(s) is detached in the actor term
    assert_fd(lambda tau: iql_loss(make(), expectile=tau)["loss_value"], 0.7)
    assert_fd(lambda beta: iql_loss(make(), temperature=beta)["loss_actor"], 0.5)
    assert_fd(lambda gamma: iql_loss(make(), gamma=gamma)["loss_qvalue"], 0.9)


def test_expectile_bounds_are_allowed():
    """``expectile=1`` (TorchRL's class accepts it) weighs only ``Q > V``; ``0`` only ``Q <= V``."""
    td = make()
    q = td["target_state_action_value"].detach().min(0)[0]
    u = q - td["state_value"].detach()
    for tau, weight in ((1.0, (u > 0).double()), (0.0, (u <= 0).double())):
        out = iql_loss(td, expectile=tau)
        assert out["loss_value"].item() == pytest.approx((weight * u.pow(2)).mean().item(), rel=1e-12)


def test_pure_and_stateless():
    assert_pure(iql_loss, make())
    assert_stateless(iql_module)


def test_bad_inputs():
    td = make()
    assert_bad(iql_loss, td, HyperparameterError, "iql_loss", "expectile", expectile=1.2)
    assert_bad(iql_loss, td, HyperparameterError, "iql_loss", "expectile", expectile=-0.1)
    assert_bad(iql_loss, td, HyperparameterError, "iql_loss", "temperature", temperature=-1.0)
    bad = td.clone()
    bad["state_value"] = bad["state_value"].squeeze(-1)
    assert_bad(iql_loss, bad, EntryShapeError, "iql_loss", "state_value")
    bad = td.clone()
    del bad["target_state_action_value"]
    assert_bad(iql_loss, bad, MissingEntryError, "iql_loss", "target_state_action_value")
    assert_bad(discrete_iql_loss, td, MissingEntryError, "discrete_iql_loss", "action")

"""ddpg_loss against a plain-Python computation, finite differences, purity and bad inputs."""

from __future__ import annotations

import pytest

import torchrl_functional.functional.ddpg as ddpg_module
from torchrl_functional.errors import EntryShapeError, HyperparameterError, MissingEntryError
from torchrl_functional.functional import ddpg_loss

from .offpolicy_common import (
    assert_bad,
    assert_fd,
    assert_pure,
    assert_stateless,
    randn,
    transition,
)

B = 6


def make():
    td, g = transition((B,))
    td["state_action_value"] = randn(g, B, 1, grad=True)
    td["next", "state_action_value"] = randn(g, B, 1)
    td["state_action_value_actor"] = randn(g, B, 1, grad=True)
    return td


def test_matches_python_reference():
    td = make()
    out = ddpg_loss(td, gamma=0.9, loss_function="l2")
    d = td.detach()
    value, actor = 0.0, 0.0
    for i in range(B):
        y = d["next", "reward"][i, 0].item() + 0.9 * (not d["next", "terminated"][i, 0]) * d["next", "state_action_value"][i, 0].item()
        value += (d["state_action_value"][i, 0].item() - y) ** 2 / B
        actor += -d["state_action_value_actor"][i, 0].item() / B
    assert out["loss_value"].item() == pytest.approx(value, rel=1e-12)
    assert out["loss_actor"].item() == pytest.approx(actor, rel=1e-12)
    assert out["pred_value_max"] == d["state_action_value"].max()


def test_stop_gradient_and_gamma_finite_differences():
    td = make()
    td["next", "state_action_value"].requires_grad_(True)
    ddpg_loss(td)["loss_value"].backward()
    assert td["next", "state_action_value"].grad is None  # the target is detached
    assert td["state_action_value"].grad is not None
    assert_fd(lambda gamma: ddpg_loss(make(), gamma=gamma)["loss_value"], 0.7)


def test_pure_and_stateless():
    assert_pure(ddpg_loss, make())
    assert_stateless(ddpg_module)


def test_bad_inputs():
    td = make()
    bad = td.clone()
    del bad["state_action_value_actor"]
    assert_bad(ddpg_loss, bad, MissingEntryError, "ddpg_loss", "state_action_value_actor")
    bad = td.clone()
    bad["state_action_value"] = bad["state_action_value"].squeeze(-1)
    assert_bad(ddpg_loss, bad, EntryShapeError, "ddpg_loss", "state_action_value")
    assert_bad(ddpg_loss, td, HyperparameterError, "ddpg_loss", "reduction", reduction="avg")
    assert_bad(ddpg_loss, td, HyperparameterError, "ddpg_loss", "gamma", gamma=-0.1)

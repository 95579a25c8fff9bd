"""crossq_loss against a plain-Python computation, its stop-gradients, purity and bad inputs."""

from __future__ import annotations

import math

import pytest
import torch

import torchrl_functional.functional.crossq as crossq_module
from torchrl_functional.errors import EntryShapeError, MissingEntryError
from torchrl_functional.functional import crossq_loss

from .offpolicy_common import assert_bad, assert_fd, assert_pure, assert_stateless, base_loss, randn, transition

B, E = 5, 2


def make():
    td, g = transition((B,))
    td["state_action_value"] = randn(g, E, B, 1, grad=True)
    td["next", "state_action_value"] = randn(g, E, B, 1, grad=True)  # the online critics' second half
    td["state_action_value_actor"] = randn(g, E, B, 1, grad=True)
    td["log_prob"] = randn(g, B, grad=True)
    td["next", "log_prob"] = randn(g, B)
    td["action"] = randn(g, B, 2)
    return td


def test_matches_python_reference():
    td = make()
    out = crossq_loss(td, log_alpha=0.3, gamma=0.9, loss_function="l2", reduction="sum")
    d, alpha = td.detach(), math.exp(0.3)
    qloss = actor = alpha_loss = 0.0
    for i in range(B):
        v = min(d["next", "state_action_value"][e, i, 0].item() for e in range(E)) - alpha * d["next", "log_prob"][i].item()
        y = d["next", "reward"][i, 0].item() + 0.9 * (not d["next", "terminated"][i, 0]) * v
        qloss += sum((d["state_action_value"][e, i, 0].item() - y) ** 2 for e in range(E))
        lp = d["log_prob"][i].item()
        actor += alpha * lp - min(d["state_action_value_actor"][e, i, 0].item() for e in range(E))
        alpha_loss += -0.3 * (lp - 2.0)
    assert out["loss_qvalue"].item() == pytest.approx(qloss, rel=1e-12)
    assert out["loss_actor"].item() == pytest.approx(actor, rel=1e-12)
    assert out["loss_alpha"].item() == pytest.approx(alpha_loss, rel=1e-12)
    torch.testing.assert_close(out["log_prob"], d["log_prob"])


def test_is_sac_without_priority_weights_and_next_half_detached():
    td = make()
    td["priority_weight"] = torch.rand(B, dtype=torch.float64)
    ours, sac = crossq_loss(td), base_loss("crossq_loss")(td.exclude("priority_weight"))
    for key in ("loss_actor", "loss_qvalue", "loss_alpha", "alpha", "entropy", "td_error"):
        torch.testing.assert_close(ours[key], sac[key], rtol=0, atol=0)
    ours["loss_qvalue"].backward()
    assert td["next", "state_action_value"].grad is None and td["state_action_value"].grad is not None
    assert_fd(lambda gamma: crossq_loss(make(), gamma=gamma)["loss_qvalue"], 0.6)


def test_pure_and_stateless():
    assert_pure(crossq_loss, make())
    assert_stateless(crossq_module)


def test_bad_inputs():
    td = make()
    bad = td.clone()
    bad["next", "state_action_value"] = bad["next", "state_action_value"][:, :-1]
    assert_bad(crossq_loss, bad, EntryShapeError, "crossq_loss", ("next", "state_action_value"))
    bad = td.clone()
    del bad["next", "log_prob"]
    assert_bad(crossq_loss, bad, MissingEntryError, "crossq_loss", ("next", "log_prob"))

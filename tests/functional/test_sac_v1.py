"""sac_v1_loss (SAC with a value network) against plain-Python computations, finite differences,
stop-gradients, purity and bad inputs."""

from __future__ import annotations

import math

import pytest
import torch

from torchrl_functional.errors import EntryShapeError, MissingEntryError
from torchrl_functional.functional import sac_v1_loss

from .offpolicy_common import assert_bad, assert_fd, assert_pure, randn, transition

B, E, A, N = 6, 2, 3, 4


def make():
    td, g = transition((B,))
    td["state_action_value"] = randn(g, B, 1, grad=True)
    td["state_value"] = randn(g, B, 1, grad=True)
    td["next", "state_value"] = randn(g, B, 1)
    td["target_state_action_value"] = randn(g, E, B, 1)
    td["target_log_prob"] = randn(g, B)
    td["state_action_value_actor"] = randn(g, E, B, 1)
    td["log_prob"] = randn(g, B, grad=True)
    td["action"] = randn(g, B, A)
    return td


def test_sac_v1_matches_python_reference():
    td = make()
    log_alpha = math.log(0.4)
    out = sac_v1_loss(td, log_alpha=log_alpha, gamma=0.9, loss_function="l2")
    d, alpha, h = td.detach(), 0.4, -float(A)
    q_loss = v_loss = actor = a_loss = 0.0
    for i in range(B):
        y = d["next", "reward"][i, 0].item() + 0.9 * (not d["next", "terminated"][i, 0]) * d["next", "state_value"][i, 0].item()
        q_loss += (d["state_action_value"][i, 0].item() - y) ** 2 / B
        assert out["td_error"][i].item() == pytest.approx((d["state_action_value"][i, 0].item() - y) ** 2, rel=1e-12)
        v_target = min(d["target_state_action_value"][e, i, 0].item() for e in range(E)) - alpha * d["target_log_prob"][i].item()
        v_loss += (d["state_value"][i, 0].item() - v_target) ** 2 / B
        lp = d["log_prob"][i].item()
        actor += (alpha * lp - min(d["state_action_value_actor"][e, i, 0].item() for e in range(E))) / B
        a_loss += -log_alpha * (lp + h) / B
    assert out["loss_qvalue"].item() == pytest.approx(q_loss, rel=1e-10)
    assert out["loss_value"].item() == pytest.approx(v_loss, rel=1e-10)
    assert out["loss_actor"].item() == pytest.approx(actor, rel=1e-10)
    assert out["loss_alpha"].item() == pytest.approx(a_loss, rel=1e-10)
    assert out["alpha"].item() == pytest.approx(alpha)


def test_sac_v1_stop_gradients_and_finite_differences():
    td = make()
    for key in ("target_state_action_value", "target_log_prob", ("next", "state_value")):
        td[key].requires_grad_(True)
    out = sac_v1_loss(td)
    (out["loss_value"] + out["loss_qvalue"]).backward()
    for key in ("target_state_action_value", "target_log_prob", ("next", "state_value")):
        assert td[key].grad is None, key  # targets are detached
    assert td["state_value"].grad is not None and td["state_action_value"].grad is not None
    assert_fd(lambda gamma: sac_v1_loss(make(), gamma=gamma)["loss_qvalue"], 0.8)
    assert_fd(lambda la: sac_v1_loss(make(), log_alpha=la)["loss_alpha"], 0.3)
    log_alpha = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    out = sac_v1_loss(make(), log_alpha=log_alpha)
    grads = torch.autograd.grad(out["loss_value"] + out["loss_actor"], log_alpha, allow_unused=True)
    assert grads == (None,)  # alpha enters the value target and the actor term detached


def test_sac_v1_pure_and_bad_inputs():
    td = make()
    assert_pure(sac_v1_loss, td)
    bad = td.clone()
    del bad["target_log_prob"]
    assert_bad(sac_v1_loss, bad, MissingEntryError, "sac_v1_loss", "target_log_prob")
    bad = td.clone()
    bad["state_action_value"] = bad["state_action_value"].expand(E, B, 1)  # v2's ensemble layout
    assert_bad(sac_v1_loss, bad, EntryShapeError, "sac_v1_loss", "state_action_value")
    bad = td.clone()
    bad["state_action_value_actor"] = bad["state_action_value_actor"][:1]
    assert_bad(sac_v1_loss, bad, EntryShapeError, "sac_v1_loss", "state_action_value_actor")

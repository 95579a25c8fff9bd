"""td3bc_loss against a plain-Python computation, finite differences in alpha, purity and bad inputs."""

from __future__ import annotations

import pytest
import torch

import torchrl_functional.functional.td3bc as td3bc_module
from torchrl_functional.errors import EntryShapeError, HyperparameterError, MissingEntryError
from torchrl_functional.functional import td3bc_loss

from .offpolicy_common import assert_bad, assert_fd, assert_pure, assert_stateless, base_loss, randn, transition

B, E, A = 5, 3, 2


def make():
    td, g = transition((B,))
    td["state_action_value"] = randn(g, E, B, 1, grad=True)
    td["next", "state_action_value"] = randn(g, E, B, 1)
    td["state_action_value_actor"] = randn(g, E, B, 1, grad=True)
    td["action"] = randn(g, B, A)
    td["action_actor"] = randn(g, B, A, grad=True)
    return td


def test_matches_python_reference():
    td = make()
    out = td3bc_loss(td, alpha=1.7, gamma=0.95, loss_function="l2", reduction="sum")
    d = td.detach()
    q1 = [d["state_action_value_actor"][0, i, 0].item() for i in range(B)]
    bc = sum((d["action_actor"][i, j].item() - d["action"][i, j].item()) ** 2 for i in range(B) for j in range(A)) / (B * A)
    lmbd = 1.7 / (sum(abs(q) for q in q1) / B)
    assert out["bc_loss"].item() == pytest.approx(bc, rel=1e-12)
    assert out["lmbd"].item() == pytest.approx(lmbd, rel=1e-12)
    assert out["loss_actor"].item() == pytest.approx(sum(-lmbd * q + bc for q in q1), rel=1e-12)
    torch.testing.assert_close(out["state_action_value_actor"], torch.tensor(q1, dtype=torch.float64))


def test_critic_term_is_td3s():
    td = make()
    ours, td3 = td3bc_loss(td, reduction="none"), base_loss("td3bc_loss")(td, reduction="none")
    for key in ("loss_qvalue", "pred_value", "target_value", "next_state_value", "td_error"):
        torch.testing.assert_close(ours[key], td3[key], rtol=0, atol=0)


def test_alpha_gradient_and_stop_gradients():
    assert_fd(lambda alpha: td3bc_loss(make(), alpha=alpha)["loss_actor"], 2.5)
    alpha = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    td = make()
    out = td3bc_loss(td, alpha=alpha)
    (g,) = torch.autograd.grad(out["lmbd"], alpha, retain_graph=True)
    assert g.item() == pytest.approx(out["lmbd"].item() / 2.0)
    assert not out["bc_loss"].requires_grad
    out["loss_actor"].backward()
    assert td["action_actor"].grad is not None and td["state_action_value"].grad is None


def test_pure_and_stateless():
    assert_pure(td3bc_loss, make())
    assert_stateless(td3bc_module)


def test_bad_inputs():
    td = make()
    bad = td.clone()
    bad["action_actor"] = bad["action_actor"][..., :1]
    assert_bad(td3bc_loss, bad, EntryShapeError, "td3bc_loss", "action_actor")
    bad = td.clone()
    del bad["action"]
    assert_bad(td3bc_loss, bad, MissingEntryError, "td3bc_loss", "action")
    bad = td.clone()
    bad["state_action_value_actor"] = bad["state_action_value_actor"][0]
    assert_bad(td3bc_loss, bad, EntryShapeError, "td3bc_loss", "state_action_value_actor")
    for alpha in (float("nan"), -1.0, torch.ones(2)):
        with pytest.raises(HyperparameterError, match="td3bc_loss.*alpha"):
            td3bc_loss(td, alpha=alpha)

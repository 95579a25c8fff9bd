"""sac_loss and discrete_sac_loss against plain-Python computations, finite differences
(gamma, log_alpha), torch.func, purity and bad inputs."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict

import torchrl_functional.functional.sac as sac_module
from torchrl_functional.errors import EntryShapeError, HyperparameterError, MissingEntryError
from torchrl_functional.functional import discrete_sac_loss, sac_loss

from .offpolicy_common import assert_bad, assert_fd, assert_pure, assert_stateless, randn, replay_td, transition

B, E, A, N = 5, 2, 3, 4


def make():
    td, g = transition((B,))
    td["state_action_value"] = randn(g, E, B, 1, grad=True)
    td["next", "state_action_value"] = randn(g, E, B, 1)
    td["next", "log_prob"] = randn(g, B)
    td["state_action_value_actor"] = randn(g, E, B, 1)
    td["log_prob"] = randn(g, B, grad=True)
    td["action"] = randn(g, B, A)
    return td


def test_sac_matches_python_reference():
    td = make()
    log_alpha = math.log(0.3)
    out = sac_loss(td, log_alpha=log_alpha, gamma=0.9, loss_function="l2")
    d, alpha, h = td.detach(), 0.3, -float(A)
    q_loss, actor, alpha_loss = 0.0, 0.0, 0.0
    for i in range(B):
        v = min(d["next", "state_action_value"][e, i, 0].item() - alpha * d["next", "log_prob"][i].item() for e in range(E))
        y = d["next", "reward"][i, 0].item() + 0.9 * (not d["next", "terminated"][i, 0]) * v
        q_loss += sum((d["state_action_value"][e, i, 0].item() - y) ** 2 for e in range(E)) / B
        lp = d["log_prob"][i].item()
        actor += (alpha * lp - min(d["state_action_value_actor"][e, i, 0].item() for e in range(E))) / B
        alpha_loss += -log_alpha * (lp + h) / B
    assert out["loss_qvalue"].item() == pytest.approx(q_loss, rel=1e-10)
    assert out["loss_actor"].item() == pytest.approx(actor, rel=1e-10)
    assert out["loss_alpha"].item() == pytest.approx(alpha_loss, rel=1e-10)
    assert out["alpha"].item() == pytest.approx(alpha)
    assert out["entropy"].item() == pytest.approx(-d["log_prob"].mean().item())


def test_sac_stop_gradients_and_finite_differences():
    td = make()
    log_alpha = torch.tensor(0.1, dtype=torch.float64, requires_grad=True)
    out = sac_loss(td, log_alpha=log_alpha)
    (g_actor,) = torch.autograd.grad(out["loss_actor"], log_alpha, allow_unused=True)
    assert g_actor is None  # alpha enters the actor term detached
    assert_fd(lambda la: sac_loss(make(), log_alpha=la)["loss_alpha"], 0.1)
    assert_fd(lambda gamma: sac_loss(make(), gamma=gamma)["loss_qvalue"], 0.8)


def test_sac_under_torch_func_grad():
    td = make().detach()

    def f(gamma):
        return sac_loss(td, gamma=gamma)["loss_qvalue"]

    g = torch.func.grad(f)(torch.tensor(0.9, dtype=torch.float64))
    gamma = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    (expected,) = torch.autograd.grad(f(gamma), gamma)
    torch.testing.assert_close(g, expected)
    # a batch of discounts (e.g. one per task) under vmap
    gs = torch.func.vmap(torch.func.grad(f))(torch.tensor([0.5, 0.9], dtype=torch.float64))
    torch.testing.assert_close(gs[1], expected)


def _discrete():
    td, g = transition((B,))
    td["action_value"] = randn(g, E, B, N, grad=True)
    td["next", "action_value"] = randn(g, E, B, N)
    td["logits"] = randn(g, B, N, grad=True)
    td["next", "logits"] = randn(g, B, N)
    td["action"] = torch.randint(N, (B,), generator=g)
    return td


def test_discrete_sac_matches_python_reference():
    td = _discrete()
    out = discrete_sac_loss(td, log_alpha=0.0, gamma=0.9, loss_function="l2")
    d = td.detach()
    h = -math.log(1 / N) * 0.98
    q_loss, actor, alpha_loss = 0.0, 0.0, 0.0
    for i in range(B):
        def probs(logits):
            z = [math.exp(x) for x in logits]
            return [x / sum(z) for x in z]
        p_next = probs(d["next", "logits"][i].tolist())
        v = sum(p_next[a] * (min(d["next", "action_value"][e, i, a].item() for e in range(E)) - math.log(p_next[a]))
                for a in range(N))
        y = d["next", "reward"][i, 0].item() + 0.9 * (not d["next", "terminated"][i, 0]) * v
        act = int(d["action"][i])
        q_loss += sum((d["action_value"][e, i, act].item() - y) ** 2 for e in range(E)) / B
        p = probs(d["logits"][i].tolist())
        actor += sum(p[a] * (math.log(p[a]) - min(d["action_value"][e, i, a].item() for e in range(E))) for a in range(N)) / B
        alpha_loss += -0.0 * (sum(pa * math.log(pa) for pa in p) + h) / B
    assert out["loss_qvalue"].item() == pytest.approx(q_loss, rel=1e-10)
    assert out["loss_actor"].item() == pytest.approx(actor, rel=1e-10)
    assert out["loss_alpha"].item() == pytest.approx(alpha_loss, abs=1e-12)
    # the actor term does not train the critics
    td["action_value"].grad = None
    discrete_sac_loss(td)["loss_actor"].backward()
    assert td["action_value"].grad is None
    assert_fd(lambda la: discrete_sac_loss(_discrete(), log_alpha=la)["loss_alpha"], 0.2)


def test_pure_and_stateless():
    assert_pure(sac_loss, make())
    assert_pure(discrete_sac_loss, _discrete())
    assert_stateless(sac_module)


def test_bad_inputs():
    td = make()
    bad = td.clone()
    bad["log_prob"] = bad["log_prob"].unsqueeze(-1)  # [B, 1] against [B]
    assert_bad(sac_loss, bad, EntryShapeError, "sac_loss", "log_prob")
    bad = td.clone()
    del bad["next", "log_prob"]
    assert_bad(sac_loss, bad, MissingEntryError, "sac_loss", ("next", "log_prob"))
    assert_bad(sac_loss, td, HyperparameterError, "sac_loss", "log_alpha", log_alpha=float("nan"))
    assert_bad(sac_loss, td, HyperparameterError, "sac_loss", "target_entropy", target_entropy="big")
    d = _discrete()
    bad = d.clone()
    bad["next", "logits"] = bad["next", "logits"][..., :2]
    assert_bad(discrete_sac_loss, bad, EntryShapeError, "discrete_sac_loss", ("next", "logits"))
    assert_bad(discrete_sac_loss, d, HyperparameterError, "discrete_sac_loss", "action_space", action_space="binary")


# ----------------------------------------------------------------------------- composite actions


def test_auto_target_entropy_counts_every_head_of_a_composite_action():
    """``target_entropy="auto"`` is minus the action dimensions per sample (TorchRL's rule): with a
    composite action (a sub-TensorDict), summed over its heads; a head of the wrong batch raises."""
    td = replay_td("sac")
    b = td["next", "reward"].shape[0]
    a = sac_loss(td, log_alpha=0.3)["loss_alpha"]
    composite = td.clone()
    composite["action"] = TensorDict({"a1": torch.zeros(b, 2), "a2": torch.zeros(b, 3, 2)}, [b])
    lp = td["log_prob"]
    expected = (-torch.tensor(0.3, dtype=torch.float64) * (lp + (-8.0))).mean()
    torch.testing.assert_close(sac_loss(composite, log_alpha=0.3)["loss_alpha"], expected)
    assert not torch.allclose(a, expected)
    bad = composite.clone()
    bad["action"] = TensorDict({"a1": torch.zeros(b, 2), "a2": torch.zeros(1, b, 2)}, [])
    assert_bad(sac_loss, bad, EntryShapeError, "sac_loss", ("action", "a2"))


def test_discrete_skip_done_states_matches_python_reference():
    """With ``skip_done_states`` a done transition bootstraps from 0 (truncated ones too: TorchRL's
    option), and its next-state entries are not read (NaN there changes nothing)."""
    td = _discrete()
    done = td["next", "done"][:, 0]
    assert done.any() and (done & ~td["next", "terminated"][:, 0]).any()
    nan = td.clone()
    nan["next", "logits"][done] = float("nan")
    nan["next", "action_value"][:, done] = float("nan")
    out = discrete_sac_loss(nan, log_alpha=math.log(0.5), gamma=0.9, loss_function="l2", skip_done_states=True,
                            reduction="none")
    d = td.detach()
    for i in range(B):
        v = 0.0
        if not done[i]:
            z = [math.exp(x) for x in d["next", "logits"][i].tolist()]
            p = [x / sum(z) for x in z]
            v = sum(p[a] * (min(d["next", "action_value"][e, i, a].item() for e in range(E)) - 0.5 * math.log(p[a]))
                    for a in range(N))
        y = d["next", "reward"][i, 0].item() + 0.9 * (not d["next", "terminated"][i, 0]) * v
        act = int(d["action"][i])
        q = sum((d["action_value"][e, i, act].item() - y) ** 2 for e in range(E))
        assert out["loss_qvalue"][i].item() == pytest.approx(q, rel=1e-10)
    # without done transitions the option only changes log pi's rounding
    never_done = td.clone()
    never_done["next", "done"].zero_()
    never_done["next", "terminated"].zero_()
    a = discrete_sac_loss(never_done, skip_done_states=True)
    b = discrete_sac_loss(never_done)
    torch.testing.assert_close(a["loss_qvalue"], b["loss_qvalue"], rtol=1e-12, atol=1e-12)

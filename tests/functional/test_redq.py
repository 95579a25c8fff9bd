"""redq_loss against a plain-Python computation, its critic-subset draw, finite differences,
purity and bad inputs."""

from __future__ import annotations

import math

import pytest
import torch

import torchrl_functional.functional.redq as redq_module
from torchrl_functional.errors import EntryDtypeError, EntryShapeError, HyperparameterError, MissingEntryError
from torchrl_functional.functional import redq_critic_subset, redq_loss

from .offpolicy_common import assert_bad, assert_fd, assert_pure, assert_stateless, randn, transition

B, E = 5, 4


def make(subset=(1, 3)):
    td, g = transition((B,))
    td["state_action_value"] = randn(g, E, B, 1, grad=True)
    td["next", "state_action_value"] = randn(g, E, B, 1)
    td["state_action_value_actor"] = randn(g, E, B, 1, grad=True)
    td["log_prob"] = randn(g, B, grad=True)
    td["next", "log_prob"] = randn(g, B)
    td["action"] = randn(g, B, 3)
    if subset is not None:
        td["critic_subset"] = torch.tensor(subset)
    return td


def test_matches_python_reference():
    td = make()
    log_alpha, lo, hi = 0.4, math.log(0.5), math.log(1.2)
    out = redq_loss(td, log_alpha=log_alpha, min_log_alpha=lo, max_log_alpha=hi, gamma=0.9, loss_function="l2",
                    reduction="sum")
    d = td.detach()
    alpha = math.exp(min(max(log_alpha, lo), hi))  # clamped at max: 1.2
    qloss = actor = 0.0
    lps = []
    for i in range(B):
        lp, nlp = d["log_prob"][i].item(), d["next", "log_prob"][i].item()
        lps += [lp, nlp]
        v = min(d["next", "state_action_value"][j, i, 0].item() - alpha * nlp for j in (1, 3))
        y = d["next", "reward"][i, 0].item() + 0.9 * (not d["next", "terminated"][i, 0]) * v
        for e in range(E):
            qloss += (d["state_action_value"][e, i, 0].item() - y) ** 2
            actor += alpha * lp - d["state_action_value_actor"][e, i, 0].item()
    alpha_loss = sum(-alpha * (lp - 3.0) for lp in lps)  # target entropy "auto" = -3
    assert out["alpha"].item() == pytest.approx(alpha, rel=1e-12)
    assert out["loss_qvalue"].item() == pytest.approx(qloss, rel=1e-12)
    assert out["loss_actor"].item() == pytest.approx(actor, rel=1e-12)
    assert out["loss_alpha"].item() == pytest.approx(alpha_loss, rel=1e-12)
    assert out["entropy"].item() == pytest.approx(-sum(lps) / len(lps), rel=1e-12)


def test_unselected_target_critics_are_not_read():
    td = make()
    other = td.clone()
    other["next", "state_action_value"][[0, 2]] = float("nan")
    torch.testing.assert_close(redq_loss(other)["loss_qvalue"], redq_loss(td)["loss_qvalue"])


def test_subset_drawn_as_torchrl():
    torch.manual_seed(3)
    expected = torch.randperm(E)[:2].sort()[0]
    torch.manual_seed(3)
    torch.testing.assert_close(redq_critic_subset(E, 2), expected)
    drawn = redq_loss(make(None), generator=torch.Generator().manual_seed(5))
    given = redq_loss(make(tuple(redq_critic_subset(E, 2, torch.Generator().manual_seed(5)).tolist())))
    torch.testing.assert_close(drawn["loss_qvalue"], given["loss_qvalue"])


def test_log_alpha_gradient_is_straight_through_the_clamp():
    log_alpha = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    out = redq_loss(make(), log_alpha=log_alpha, max_log_alpha=0.1)
    (g,) = torch.autograd.grad(out["loss_alpha"], log_alpha)
    assert g.item() == pytest.approx(out["loss_alpha"].item(), rel=1e-12)  # d/dx of -e^x c is -e^x c
    assert_fd(lambda gamma: redq_loss(make(), gamma=gamma)["loss_qvalue"], 0.6)


def test_pure_and_stateless():
    assert_pure(redq_loss, make())
    assert_stateless(redq_module)


def test_bad_inputs():
    td = make()
    for subset, exc in ((torch.tensor([0.0, 1.0]), EntryDtypeError), (torch.tensor([[0, 1]]), EntryShapeError),
                        (torch.tensor([0, E]), EntryShapeError), (torch.arange(E + 1) % E, EntryShapeError)):
        bad = td.clone()
        bad["critic_subset"] = subset
        assert_bad(redq_loss, bad, exc, "redq_loss", "critic_subset")
    bad = td.clone()
    del bad["next", "log_prob"]
    assert_bad(redq_loss, bad, MissingEntryError, "redq_loss", ("next", "log_prob"))
    with pytest.raises(HyperparameterError, match="sub_sample_len"):
        redq_loss(make(None), sub_sample_len=E + 1)

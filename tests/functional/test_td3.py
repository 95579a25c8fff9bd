"""td3_loss and td3_target_action against plain-Python computations, finite differences,
purity and bad inputs."""

from __future__ import annotations

import pytest
import torch
from torchrl.objectives.utils import ValueEstimators

import torchrl_functional.functional.td3 as td3_module
from torchrl_functional.errors import EntryDtypeError, EntryShapeError, HyperparameterError, MissingEntryError
from torchrl_functional.functional import td3_loss, td3_target_action

from .offpolicy_common import (
    assert_bad,
    assert_fd,
    assert_pure,
    assert_same,
    assert_stateless,
    randn,
    replay_td,
    transition,
)

B, E = 5, 3


def make():
    td, g = transition((B,))
    td["state_action_value"] = randn(g, E, B, 1, grad=True)
    td["next", "state_action_value"] = randn(g, E, B, 1)
    td["state_action_value_actor"] = randn(g, E, B, 1, grad=True)
    return td


def test_matches_python_reference():
    td = make()
    out = td3_loss(td, gamma=0.95, loss_function="l2", reduction="sum")
    d = td.detach()
    qloss, actor, prio = 0.0, 0.0, []
    for i in range(B):
        v = min(d["next", "state_action_value"][e, i, 0].item() for e in range(E))
        y = d["next", "reward"][i, 0].item() + 0.95 * (not d["next", "terminated"][i, 0]) * v
        errs = [(d["state_action_value"][e, i, 0].item() - y) ** 2 for e in range(E)]
        qloss += sum(errs)
        prio.append(max(errs))
        actor += -d["state_action_value_actor"][0, i, 0].item()
    assert out["loss_qvalue"].item() == pytest.approx(qloss, rel=1e-12)
    assert out["loss_actor"].item() == pytest.approx(actor, rel=1e-12)
    torch.testing.assert_close(out["td_error"], torch.tensor(prio, dtype=torch.float64))


def test_target_action_smoothing():
    a = torch.tensor([[0.0, 0.9], [-0.95, 0.2]])
    noise = torch.tensor([[10.0, 1.0], [-1.0, 0.5]])
    out = td3_target_action(a, -1.0, 1.0, policy_noise=0.2, noise_clip=0.5, noise=noise)
    expected = torch.tensor([[0.5, 1.0], [-1.0, 0.3]])  # noise clipped at 0.5, action at the bounds
    torch.testing.assert_close(out, expected)
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    torch.testing.assert_close(td3_target_action(a, -1, 1, generator=g1), td3_target_action(a, -1, 1, generator=g2))
    with pytest.raises(EntryShapeError):
        td3_target_action(a, -1, 1, noise=noise[:1])


def test_gamma_finite_differences_and_stop_gradient():
    td = make()
    td["next", "state_action_value"].requires_grad_(True)
    td3_loss(td)["loss_qvalue"].backward()
    assert td["next", "state_action_value"].grad is None
    assert_fd(lambda gamma: td3_loss(make(), gamma=gamma)["loss_qvalue"], 0.6)


def test_pure_and_stateless():
    assert_pure(td3_loss, make())
    assert_stateless(td3_module)


def test_bad_inputs():
    td = make()
    bad = td.clone()
    bad["state_action_value"] = bad["state_action_value"][0]  # a single critic without its ensemble dim
    assert_bad(td3_loss, bad, EntryShapeError, "td3_loss", "state_action_value")
    bad = td.clone()
    bad["next", "state_action_value"] = bad["next", "state_action_value"].squeeze(-1)
    assert_bad(td3_loss, bad, EntryShapeError, "td3_loss", ("next", "state_action_value"))
    bad = td.clone()
    bad["next", "terminated"] = bad["next", "terminated"].long()
    assert_bad(td3_loss, bad, EntryDtypeError, "td3_loss", ("next", "terminated"))
    bad = td.clone()
    del bad["next", "reward"]
    assert_bad(td3_loss, bad, MissingEntryError, "td3_loss", ("next", "reward"))


# ----------------------------------------------------------------------------- value estimators


@pytest.mark.parametrize("member, name", [(ValueEstimators.TD0, "td0"), (ValueEstimators.TD1, "td1"),
                                          (ValueEstimators.TDLambda, "td_lambda")])
def test_value_estimator_accepts_torchrl_members(member, name):
    td = replay_td("td3")
    kw = {"gamma": 0.9, "time_dim": 0}
    assert_same(td3_loss(td, value_estimator=member, **kw), td3_loss(td, value_estimator=name, **kw))


def test_value_estimator_refuses_other_members():
    td = replay_td("td3")
    assert_bad(td3_loss, td, HyperparameterError, "td3_loss", "value_estimator", value_estimator=ValueEstimators.GAE)
    assert_bad(td3_loss, td, HyperparameterError, "td3_loss", "value_estimator", value_estimator=3)

"""ddpg_loss against a plain-Python computation, finite differences, purity and bad inputs."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torchrl.data.postprocs.postprocs import MultiStep

import torchrl_functional.functional.ddpg as ddpg_module
from tests.specs._inputs import to_batched
from torchrl_functional.errors import EntryDtypeError, EntryShapeError, HyperparameterError, MissingEntryError
from torchrl_functional.functional import ddpg_loss

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


# ----------------------------------------------------------------------------- n-step data and shifted_valid


def test_nstep_target_by_hand():
    """DDPG's target on n-step data, one sample at a time: ``r + gamma^n (1 - terminated) Q'``."""
    td = replay_td("ddpg", nstep=True)
    out = ddpg_loss(td, gamma=0.8, reduction="none", loss_function="l2")
    for i in range(td["next", "reward"].shape[0]):
        n = int(td["steps_to_next_obs"][i])
        y = td["next", "reward"][i, 0].item() + 0.8 ** n * (not td["next", "terminated"][i, 0]) * \
            td["next", "state_action_value"][i, 0].item()
        assert out["target_value"][i].item() == pytest.approx(y, rel=1e-12)
        assert out["loss_value"][i].item() == pytest.approx((td["state_action_value"][i, 0].item() - y) ** 2, rel=1e-12)


def test_nstep_from_torchrl_multistep_and_gamma_gradient():
    """On data from TorchRL's ``MultiStep`` the target discounts ``gamma ** steps_to_next_obs``
    and ``d loss / d gamma`` equals central finite differences (float64)."""
    g = torch.Generator().manual_seed(3)
    B, T = 2, 6
    done = torch.zeros(B, T, 1, dtype=torch.bool)
    done[0, 3] = True
    data = TensorDict({"observation": torch.randn(B, T, 2, generator=g, dtype=torch.float64),
                       "next": {"observation": torch.randn(B, T, 2, generator=g, dtype=torch.float64),
                                "reward": torch.randn(B, T, 1, generator=g, dtype=torch.float64),
                                "done": done, "terminated": done.clone()}},
                      [B, T], names=[None, "time"])
    ms = MultiStep(gamma=0.9, n_steps=3)(data).exclude("gamma")  # MultiStep's own discount: see below
    ms["state_action_value"] = torch.randn(B, T, 1, generator=g, dtype=torch.float64)
    ms["next", "state_action_value"] = torch.randn(B, T, 1, generator=g, dtype=torch.float64)
    ms["state_action_value_actor"] = torch.randn(B, T, 1, generator=g, dtype=torch.float64)
    steps = ms["steps_to_next_obs"]
    out = ddpg_loss(ms, gamma=0.9, reduction="none")
    expected = ms["next", "reward"] + 0.9 ** steps.unsqueeze(-1).double() * (~ms["next", "terminated"]) * \
        ms["next", "state_action_value"]
    torch.testing.assert_close(out["target_value"], expected.squeeze(-1))

    def f(gamma):
        return ddpg_loss(ms, gamma=gamma)["loss_value"]

    gamma = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(f(gamma), gamma)
    h = 1e-6
    fd = (f(torch.tensor(0.9 + h, dtype=torch.float64)) - f(torch.tensor(0.9 - h, dtype=torch.float64))) / (2 * h)
    assert grad.item() == pytest.approx(fd.item(), rel=1e-6)


@pytest.mark.parametrize("estimator", ["td1", "td_lambda"])
def test_shifted_valid_ends_multistep_returns_at_the_last_valid_step(estimator):
    """``"shifted_valid"`` (TorchRL's shifted estimators) masks the losses and, for multi-step
    returns, ends each trajectory at its last valid step, truncated (TorchRL's ``value_estimate``)."""
    td = to_batched(replay_td("ddpg"), (), (2, 3))
    valid = torch.tensor([[True, True, False], [True, True, True]])
    shifted = td.clone()
    shifted["shifted_valid"] = valid
    explicit = td.clone()
    explicit["next", "done"] = td["next", "done"].clone()
    explicit["next", "done"][0, 1] = True
    explicit["next", "terminated"] = td["next", "terminated"].clone()
    explicit["next", "terminated"][0, 1] = False
    explicit["collector", "mask"] = valid
    kw = {"gamma": 0.9, "value_estimator": estimator, "reduction": "none"}
    assert_same(ddpg_loss(shifted, **kw), ddpg_loss(explicit, **kw))
    assert not torch.allclose(ddpg_loss(shifted, **kw)["target_value"], ddpg_loss(td, **kw)["target_value"])
    bad = shifted.clone()
    bad["shifted_valid"] = valid.float()
    assert_bad(ddpg_loss, bad, EntryDtypeError, "ddpg_loss", "shifted_valid", **kw)

"""Functional REINFORCE: hand-computed values, the detached advantage, TorchRL parity when
called directly, composite policies, diagnostics."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from torch import distributions as D

from tests.builders import assert_td_close, make_data, make_nets
from tests.specs import by_name
from torchrl_functional.functional import ReinforceKeys, reinforce_loss


def test_reinforce_hand_computed_and_advantage_detached():
    logits = torch.log(torch.tensor([[0.5, 0.5], [0.2, 0.8]])).requires_grad_()
    advantage = torch.tensor([[1.0], [-2.0]], requires_grad=True)
    td = TensorDict({"actor_output": {"logits": logits}, "action": torch.tensor([1, 1]), "advantage": advantage,
                     "value_target": torch.tensor([[2.0], [0.0]]), "state_value": torch.tensor([[1.0], [1.0]])}, [2])
    out = reinforce_loss(td, D.Categorical, loss_critic_type="l1")
    assert out["loss_actor"].item() == pytest.approx(-(math.log(0.5) * 1.0 + math.log(0.8) * -2.0) / 2)
    assert out["loss_value"].item() == pytest.approx(1.0)
    (g,) = torch.autograd.grad(out["loss_actor"], advantage, allow_unused=True)
    assert g is None  # the baseline gets no policy gradient


@pytest.mark.parametrize("with_advantage", [True, False])
def test_reinforce_called_by_hand_matches_torchrl(with_advantage):
    nets = make_nets("normal", seed=1)
    data = make_data("normal", (3, 5), seed=1, with_advantage=with_advantage, nets=nets)
    ref = by_name("reinforce_loss").torchrl(nets.actor, nets.critic)
    ref.make_value_estimator(gamma=0.9, lmbda=0.7)
    want = ref(data.clone())
    td = data.clone()
    td["actor_output"] = nets.actor.get_dist_params(data.select("observation")).select("loc", "scale")
    with torch.no_grad():
        td["next", "state_value"] = nets.critic(data["next"].select("observation"))["state_value"]
    td["state_value"] = nets.critic(data.select("observation"))["state_value"]  # with gradients
    out = reinforce_loss(td, nets.actor.module[-1].distribution_class, gamma=0.9, lmbda=0.7)
    assert_td_close(out, want)


def test_composite_policy_log_prob_is_the_sum_over_heads():
    g = torch.Generator().manual_seed(2)
    from tensordict.nn import CompositeDistribution

    params = TensorDict({"a": {"logits": torch.randn(4, 3, generator=g)},
                         "b": {"loc": torch.randn(4, generator=g), "scale": torch.rand(4, generator=g) + 0.5}}, [4])
    action = {"a": torch.randint(3, (4,), generator=g), "b": torch.randn(4, generator=g)}
    td = TensorDict({"actor_output": {"params": params}, "act": action,
                     "advantage": torch.randn(4, 1, generator=g), "value_target": torch.randn(4, 1, generator=g),
                     "state_value": torch.randn(4, 1, generator=g)}, [4])

    def dist_class(params):
        return CompositeDistribution(params, distribution_map={"a": D.Categorical, "b": D.Normal},
                                     name_map={"a": ("act", "a"), "b": ("act", "b")})

    out = reinforce_loss(td, dist_class, keys=ReinforceKeys(action="act"), reduction="none")
    lp = D.Categorical(logits=params["a", "logits"]).log_prob(action["a"]) + D.Normal(
        params["b", "loc"], params["b", "scale"]).log_prob(action["b"])
    torch.testing.assert_close(out["loss_actor"], -(lp * td["advantage"].squeeze(-1)))


def test_diagnostics_false_drops_value_clip_fraction_only():
    nets = make_nets("categorical", seed=3)
    data = make_data("categorical", (8,), seed=3, nets=nets)
    data["actor_output"] = nets.actor.get_dist_params(data.select("observation")).select("logits")
    kw = dict(clip_value=0.1, keys={"old_value": "state_value"})
    full = reinforce_loss(data, D.Categorical, **kw)
    lean = reinforce_loss(data, D.Categorical, diagnostics=False, **kw)
    assert set(full.keys()) - set(lean.keys()) == {"value_clip_fraction"}
    for key in lean.keys():
        torch.testing.assert_close(lean[key], full[key])

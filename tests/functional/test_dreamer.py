"""Dreamer's functional losses against independent references: ``torch.distributions``' KL,
float64 Python loops for the returns and discounts, hand-written distances; bad input."""

from __future__ import annotations

import pytest
import torch
from torch import distributions as D

from tests.specs.dreamer import imagined_trajectory, value_inputs, world_model_outputs
from torchrl_functional.errors import EntryShapeError, HyperparameterError, MissingEntryError
from torchrl_functional.functional import dreamer_actor_loss, dreamer_model_loss, dreamer_value_loss


@pytest.mark.parametrize("delayed_clamp", [False, True])
@pytest.mark.parametrize("free_nats", [-5.0, 19.0])
def test_model_loss_matches_torch_distributions(delayed_clamp, free_nats):
    td = world_model_outputs(0, torch.float64)
    n = td["next"]
    out = dreamer_model_loss(td, lambda_kl=0.5, lambda_reco=2.0, lambda_reward=3.0, free_nats=free_nats,
                             delayed_clamp=delayed_clamp)
    kl = D.kl_divergence(D.Normal(n["posterior_mean"], n["posterior_std"]),
                         D.Normal(n["prior_mean"], n["prior_std"])).sum(-1)
    kl = kl.mean().clamp_min(free_nats) if delayed_clamp else kl.clamp_min(free_nats).mean()
    reco = ((n["pixels"] - n["reco_pixels"]) ** 2).sum((-3, -2, -1)).mean()
    reward = ((n["true_reward"] - n["reward"]) ** 2).mean()
    torch.testing.assert_close(out["loss_model_kl"], 0.5 * kl.reshape(1))
    torch.testing.assert_close(out["loss_model_reco"], 2.0 * reco.reshape(1))
    torch.testing.assert_close(out["loss_model_reward"], 3.0 * reward.reshape(1))


def test_model_loss_global_average_is_a_plain_mean():
    td = world_model_outputs(1, torch.float64)
    n = td["next"]
    out = dreamer_model_loss(td, free_nats=-1e3, global_average=True, reco_loss="l1")
    kl = D.kl_divergence(D.Normal(n["posterior_mean"], n["posterior_std"]), D.Normal(n["prior_mean"], n["prior_std"]))
    torch.testing.assert_close(out["loss_model_kl"], kl.mean().reshape(1))
    torch.testing.assert_close(out["loss_model_reco"], (n["pixels"] - n["reco_pixels"]).abs().mean().reshape(1))


def _lambda_return_loop(r, v, done, gamma, lmbda):
    """``G_t = r_t + gamma * ((1 - lmbda) v_t + lmbda * (G_{t+1} if not done_t else v_t))``, per row."""
    B, H = r.shape[:2]
    out = torch.zeros_like(r)
    for b in range(B):
        nxt = None
        for t in reversed(range(H)):
            boot = v[b, t] if (nxt is None or done[b, t]) else nxt
            g = r[b, t] + gamma * ((1 - lmbda) * v[b, t] + lmbda * boot)
            out[b, t] = g
            nxt = g
    return out


def test_actor_loss_default_is_torchrls_one_step_target():
    td = imagined_trajectory(0, torch.float64)
    r, v = td["next", "reward"], td["next", "state_value"]
    for estimator in ("td0", "td1", "td_lambda"):
        out = dreamer_actor_loss(td, gamma=0.9, lmbda=0.7, value_estimator=estimator)
        target = r + 0.9 * v
        torch.testing.assert_close(out["lambda_target"], target)
        discount = torch.tensor([0.9**t for t in range(target.shape[1])], dtype=torch.float64).reshape(1, -1, 1)
        torch.testing.assert_close(out["loss_actor"], -(target * discount).sum((1, 2)).mean())


def test_actor_loss_over_the_horizon_is_the_lambda_return():
    td = imagined_trajectory(2, torch.float64, done=True)
    r, v, done = td["next", "reward"], td["next", "state_value"], td["next", "done"]
    # done is terminated here: no bootstrap at that step
    v_boot = torch.where(done, torch.zeros_like(v), v)
    want = _lambda_return_loop(r, v_boot, done, 0.9, 0.7)
    out = dreamer_actor_loss(td, gamma=0.9, lmbda=0.7, returns_over_horizon=True, discount_loss=False)
    torch.testing.assert_close(out["lambda_target"], want)
    torch.testing.assert_close(out["loss_actor"], -want.sum((1, 2)).mean())
    assert not out["lambda_target"].requires_grad


def test_actor_loss_gradients_reach_rewards_values_and_gamma():
    td = imagined_trajectory(3, torch.float64)
    r = td["next", "reward"].clone().requires_grad_(True)
    v = td["next", "state_value"].clone().requires_grad_(True)
    gamma = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    td2 = td.clone()
    td2["next", "reward"], td2["next", "state_value"] = r, v
    dreamer_actor_loss(td2, gamma=gamma)["loss_actor"].backward()
    H = r.shape[1]
    discount = torch.tensor([0.9**t for t in range(H)], dtype=torch.float64).reshape(1, -1, 1)
    torch.testing.assert_close(r.grad, -(discount / r.shape[0]).expand_as(r))
    torch.testing.assert_close(v.grad, -(0.9 * discount / r.shape[0]).expand_as(v))
    assert gamma.grad is not None and gamma.grad != 0


def test_value_loss_matches_a_loop():
    td = value_inputs(0, torch.float64)
    v, target = td["state_value"], td["lambda_target"]
    out = dreamer_value_loss(td, gamma=0.8)
    B, H = v.shape[:2]
    want = sum(0.8**t * (v[b, t] - target[b, t]).pow(2).sum() for b in range(B) for t in range(H)) / B
    torch.testing.assert_close(out["loss_value"], want)
    plain = dreamer_value_loss(td, discount_loss=False, value_loss="l1")
    torch.testing.assert_close(plain["loss_value"], (v - target).abs().sum() / B)


def test_bad_inputs_are_named():
    td = imagined_trajectory(0)
    with pytest.raises(MissingEntryError, match="done"):
        dreamer_actor_loss(td.exclude(("next", "done")))
    with pytest.raises(HyperparameterError, match="value_estimator"):
        dreamer_actor_loss(td, value_estimator="gae")
    bad = td.clone()
    bad["next", "state_value"] = bad["next", "state_value"][..., :1].expand(3, 4, 2).clone()
    with pytest.raises(EntryShapeError, match="state_value"):
        dreamer_actor_loss(bad)
    wm = world_model_outputs(0)
    wm["next", "reco_pixels"] = wm["next", "reco_pixels"][..., :3]
    with pytest.raises(EntryShapeError, match="reco_pixels"):
        dreamer_model_loss(wm)
    with pytest.raises(HyperparameterError, match="gamma"):
        dreamer_value_loss(value_inputs(0), gamma=1.5)

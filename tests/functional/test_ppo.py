"""Functional PPO family: hand-computed values, TorchRL parity when called directly,
tensor hyperparameters (finite differences), entry overrides, explicit randomness, purity."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from tensordict import TensorDict
from torch.distributions import Categorical
from torchrl.modules import IndependentNormal, TanhNormal

from tests.builders import assert_td_close, make_data, make_nets
from tests.specs import by_name
from torchrl_functional.errors import HyperparameterError
from torchrl_functional.functional import (
    PPOKeys,
    clip_ppo_loss,
    generalized_advantage_estimate,
    klpen_ppo_loss,
    ppo_loss,
)

from .onpolicy_common import batch, check, fd, given_batch, logits_batch, trajectory_batch

# ----------------------------------------------------------------------------- hand-computed


def test_clip_ppo_hand_computed():
    """Three samples: ratio inside, above and below the trust region."""
    lw = [0.0, math.log(1.5), math.log(0.5)]
    adv = [2.0, 1.0, -1.0]
    td = TensorDict(
        {
            "log_prob": torch.tensor(lw),
            "action_log_prob": torch.zeros(3),
            "advantage": torch.tensor(adv).unsqueeze(-1),
        },
        [3],
    )
    out = clip_ppo_loss(td, entropy_bonus=False, critic_coeff=None, clip_epsilon=0.2)
    # min(r A, clip(r) A): 1*2=2 ; min(1.5, 1.2)=1.2 ; min(-0.5, -0.8)=-0.8
    expected = -(2.0 + 1.2 - 0.8) / 3
    assert out["loss_objective"].item() == pytest.approx(expected, rel=1e-6)
    assert out["clip_fraction"].item() == pytest.approx(2 / 3)
    assert out["max_ratio"].item() == pytest.approx(1.5, rel=1e-6)
    assert out["mean_ratio"].item() == pytest.approx(1.0, rel=1e-6)
    assert out["kl_approx"].item() == pytest.approx(-(sum(lw)) / 3, rel=1e-6)
    # unclipped PPO: -mean(r A)
    plain = ppo_loss(td, entropy_bonus=False, critic_coeff=None)
    assert plain["loss_objective"].item() == pytest.approx(-(2.0 + 1.5 - 0.5) / 3, rel=1e-6)


def test_ratio_one_gives_minus_mean_advantage_and_critic_hand_computed():
    td = logits_batch()
    td["action_log_prob"] = Categorical(logits=td["actor_output", "logits"].detach()).log_prob(td["action"])
    out = clip_ppo_loss(td, Categorical, loss_critic_type="l2", critic_coeff=0.5, entropy_coeff=0.1)
    torch.testing.assert_close(out["loss_objective"], -td["advantage"].mean())
    expected_critic = 0.5 * ((td["value_target"] - td["state_value"]) ** 2).mean()
    torch.testing.assert_close(out["loss_critic"], expected_critic)
    ent = Categorical(logits=td["actor_output", "logits"]).entropy()
    torch.testing.assert_close(out["loss_entropy"], -0.1 * ent.mean())
    torch.testing.assert_close(out["entropy"], ent.mean().detach())


# ----------------------------------------------------------------------------- TorchRL, called directly


@pytest.mark.parametrize(
    "name, dist",
    [("clip_ppo_loss", "normal"), ("clip_ppo_loss", "tanh_normal"), ("ppo_loss", "categorical"),
     ("klpen_ppo_loss", "one_hot")],
)
def test_functional_called_by_hand_matches_torchrl(name, dist):
    """The intended user path: run the networks yourself, call the function."""
    torchrl_cls, fn = by_name(name).torchrl, by_name(name).function
    nets = make_nets(dist, seed=1)
    data = make_data(dist, (10,), seed=2, nets=nets)
    ref = torchrl_cls(nets.actor, nets.critic)
    torch.manual_seed(0)
    expected = ref(data.clone())
    if "beta" in expected.keys():
        del expected["beta"]

    dist_module = nets.actor.module[-1]
    params = nets.actor.get_dist_params(data.clone())
    td = data.select("action", "action_log_prob", "advantage", "value_target")
    td["actor_output"] = params.select(*dist_module.in_keys)
    td["old_actor_output"] = data.select(*dist_module.in_keys)
    td["state_value"] = nets.critic(data.clone())["state_value"]
    torch.manual_seed(0)
    got = fn(td, dist_module.distribution_class)
    if fn is klpen_ppo_loss:
        del got["beta"]
    assert_td_close(got, expected)


def test_clip_value_true_uses_the_clip_epsilon_entry():
    """A constant ``clip_epsilon`` entry equals TorchRL with that ``clip_epsilon`` (clip_value=True)."""
    nets, data = given_batch()
    with_entry = data.clone()
    with_entry["clip_epsilon"] = torch.full((8,), 0.05)
    with_entry["old_state_value"] = data["state_value"]  # TorchRL's old values: the data's entry
    with_entry["state_value"] = nets.critic(data.select("observation"))["state_value"]
    got = clip_ppo_loss(with_entry, Categorical, clip_epsilon=0.3, clip_value=True, entropy_bonus=False)
    ref = by_name("clip_ppo_loss").torchrl(nets.actor, nets.critic, clip_epsilon=0.05, clip_value=True,
                                           entropy_bonus=False)
    want = ref(data.clone())
    for key in ("loss_objective", "loss_critic", "value_clip_fraction"):
        torch.testing.assert_close(got[key], want[key])


def test_clip_value_true_per_sample_radius_float64_loop():
    _, data = given_batch()
    data = data.apply(lambda x: x.double() if x.is_floating_point() else x)
    eps = torch.linspace(0.01, 0.4, 8, dtype=torch.float64)
    data["clip_epsilon"] = eps
    out = clip_ppo_loss(data, Categorical, clip_value=True, loss_critic_type="l2", reduction="none",
                        entropy_bonus=False)
    for i in range(8):
        v, old, tgt = (data[k][i, 0].item() for k in ("state_value", "old_state_value", "value_target"))
        clipped = old + max(-eps[i].item(), min(eps[i].item(), v - old))
        assert out["loss_critic"][i].item() == pytest.approx(max((tgt - v) ** 2, (tgt - clipped) ** 2))


# ----------------------------------------------------------------------------- tensor hyperparameters


@pytest.mark.parametrize(
    "name, fn, value",
    [
        ("clip_epsilon", clip_ppo_loss, 0.2),
        ("entropy_coeff", clip_ppo_loss, 0.05),
        ("critic_coeff", ppo_loss, 0.7),
        ("beta", klpen_ppo_loss, 0.5),
        ("clip_value", clip_ppo_loss, 0.3),
    ],
)
def test_hyperparameter_gradient_matches_finite_differences(name, fn, value):
    td = logits_batch(dtype=torch.float64, requires_grad=False, B=16)
    td["old_state_value"] = td["state_value"] + 0.3 * torch.randn_like(td["state_value"])
    # spread the log-ratios so that the clip boundary is crossed by some samples
    td["action_log_prob"] = td["action_log_prob"] + torch.linspace(-0.4, 0.4, 16, dtype=torch.float64)

    def total(h):
        out = fn(td, Categorical, **{name: h})
        return sum(v for k, v in out.items() if k.startswith("loss_"))

    x = torch.tensor(value, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(total(x), x)
    want = fd(lambda h: total(torch.tensor(h, dtype=torch.float64)).item(), value)
    assert grad.item() == pytest.approx(want, rel=1e-4, abs=1e-8)


@pytest.mark.parametrize("estimator", ["gae", "td_lambda", "td1", "td0"])
def test_internal_estimate_gradient_wrt_gamma_lmbda_finite_differences(estimator):
    td = trajectory_batch()

    def total(gamma, lmbda):
        out = clip_ppo_loss(td, value_estimator=estimator, gamma=gamma, lmbda=lmbda)
        return out["loss_objective"] + out["loss_critic"]

    g = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    lam = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    dg, dl = torch.autograd.grad(total(g, lam), (g, lam), allow_unused=True)
    fd_g = fd(lambda x: total(torch.tensor(x, dtype=torch.float64), 0.8).item(), 0.9)
    assert dg.item() == pytest.approx(fd_g, rel=1e-4)
    if estimator in ("gae", "td_lambda"):
        fd_l = fd(lambda x: total(0.9, torch.tensor(x, dtype=torch.float64)).item(), 0.8)
        assert dl.item() == pytest.approx(fd_l, rel=1e-4)


def test_internal_gae_equals_precomputed_and_detaches_values():
    td = trajectory_batch(dtype=torch.float32)
    gamma = torch.tensor(0.95)
    out = clip_ppo_loss(td, gamma=gamma, lmbda=0.9)
    adv, target = generalized_advantage_estimate(
        0.95, 0.9, td["state_value"].detach(), td["next", "state_value"], td["next", "reward"],
        td["next", "done"], td["next", "terminated"],
    )
    given = td.clone()
    given["advantage"], given["value_target"] = adv, target
    assert_td_close(out, clip_ppo_loss(given))
    # the critic's graph only reaches the critic term, not the policy term
    (g_obj,) = torch.autograd.grad(out["loss_objective"], td["state_value"], allow_unused=True)
    assert g_obj is None or torch.count_nonzero(g_obj) == 0
    (g_crit,) = torch.autograd.grad(out["loss_critic"], td["state_value"])
    assert torch.count_nonzero(g_crit) > 0


# ----------------------------------------------------------------------------- entries and keys


def test_entry_overrides_keyword_per_sample():
    td = logits_batch(B=8)
    per_sample = torch.full((8,), 0.1)
    td_entry = td.clone()
    td_entry["clip_epsilon"] = per_sample
    assert_td_close(clip_ppo_loss(td_entry, Categorical, clip_epsilon=0.3), clip_ppo_loss(td, Categorical, clip_epsilon=0.1))
    # a per-step gamma entry equals a per-step gamma keyword
    traj = trajectory_batch(dtype=torch.float32)
    gamma = torch.rand(2, 8, 1) * 0.1 + 0.85
    with_entry = traj.clone()
    with_entry["gamma"] = gamma.squeeze(-1)
    assert_td_close(ppo_loss(with_entry), ppo_loss(traj, gamma=gamma))


def test_precomputed_log_prob_equals_actor_output():
    td = logits_batch()
    dist = Categorical(logits=td["actor_output", "logits"])
    pre = td.exclude("actor_output")
    pre["log_prob"] = dist.log_prob(td["action"])
    pre["entropy"] = dist.entropy()
    assert_td_close(clip_ppo_loss(pre), clip_ppo_loss(td, Categorical))


def test_renamed_keys():
    td = logits_batch()
    renamed = TensorDict(
        {
            ("pol", "params"): td["actor_output"],
            "act": td["action"],
            "lp_old": td["action_log_prob"],
            "adv": td["advantage"],
            "ret": td["value_target"],
            "v": td["state_value"],
        },
        td.batch_size,
    )
    keys = PPOKeys(actor_output=("pol", "params"), action="act", sample_log_prob="lp_old",
                   advantage="adv", value_target="ret", value="v")
    assert_td_close(clip_ppo_loss(renamed, Categorical, keys=keys), clip_ppo_loss(td, Categorical))
    assert_td_close(clip_ppo_loss(renamed, Categorical, keys=dict(keys.__dict__)), clip_ppo_loss(td, Categorical))


def test_dist_class_partial_and_float64_stays_float64():
    g = torch.Generator().manual_seed(3)
    B, A = 5, 2
    loc = torch.randn(B, A, generator=g, dtype=torch.float64, requires_grad=True)
    td = TensorDict(
        {
            "actor_output": {"loc": loc, "scale": torch.ones(B, A, dtype=torch.float64)},
            "action": torch.rand(B, A, generator=g, dtype=torch.float64) * 2 - 1,
            "action_log_prob": torch.randn(B, generator=g, dtype=torch.float64),
            "advantage": torch.randn(B, 1, generator=g, dtype=torch.float64),
        },
        [B],
    )
    out = clip_ppo_loss(td, functools.partial(IndependentNormal, upscale=3.0), critic_coeff=None)
    assert all(v.dtype == torch.float64 for v in out.values())


# ----------------------------------------------------------------------------- randomness


def tanh_batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    B, A = 7, 2
    return TensorDict(
        {
            "actor_output": {"loc": torch.randn(B, A, generator=g, requires_grad=True),
                             "scale": torch.rand(B, A, generator=g) + 0.2},
            "action": torch.rand(B, A, generator=g) * 1.8 - 0.9,
            "action_log_prob": torch.randn(B, generator=g),
            "advantage": torch.randn(B, 1, generator=g),
        },
        [B],
    )


def test_generator_makes_mc_entropy_deterministic_and_independent_of_global_rng():
    td = tanh_batch()
    outs = []
    for global_seed in (0, 1):
        torch.manual_seed(global_seed)
        outs.append(clip_ppo_loss(td, TanhNormal, critic_coeff=None, generator=torch.Generator().manual_seed(5)))
    assert torch.equal(outs[0]["loss_entropy"], outs[1]["loss_entropy"])
    other = clip_ppo_loss(td, TanhNormal, critic_coeff=None, generator=torch.Generator().manual_seed(6))
    assert not torch.equal(other["loss_entropy"], outs[0]["loss_entropy"])
    # the generator estimate is an unbiased MC entropy: average of many matches many global draws
    many = torch.stack([
        clip_ppo_loss(td, TanhNormal, critic_coeff=None, samples_mc_entropy=64,
                      generator=torch.Generator().manual_seed(s))["entropy"] for s in range(8)
    ]).mean()
    torch.manual_seed(0)
    ref = clip_ppo_loss(td, TanhNormal, critic_coeff=None, samples_mc_entropy=512)["entropy"]
    assert many.item() == pytest.approx(ref.item(), abs=0.05)


def test_global_rng_path_reproduces_under_seed():
    td = tanh_batch()
    torch.manual_seed(3)
    a = clip_ppo_loss(td, TanhNormal, critic_coeff=None)
    torch.manual_seed(3)
    b = clip_ppo_loss(td, TanhNormal, critic_coeff=None)
    assert torch.equal(a["loss_entropy"], b["loss_entropy"])


# ----------------------------------------------------------------------------- KL penalty state


def test_klpen_returns_adapted_beta_and_mutates_nothing():
    td = logits_batch(B=32)
    td["old_actor_output", "logits"] = td["old_actor_output", "logits"] * 4  # large KL
    before = td.clone()
    beta = torch.tensor(0.5)
    out = klpen_ppo_loss(td, Categorical, beta=beta, dtarg=0.01, increment=3.0)
    assert out["beta"].item() == pytest.approx(1.5)
    assert beta.item() == 0.5
    small = klpen_ppo_loss(before.update({"old_actor_output": before["actor_output"].detach()}), Categorical,
                           beta=beta, dtarg=0.01, decrement=0.25)
    assert small["beta"].item() == pytest.approx(0.125)
    kl = torch.distributions.kl_divergence(
        Categorical(logits=td["old_actor_output", "logits"]), Categorical(logits=td["actor_output", "logits"])
    )
    torch.testing.assert_close(out["kl"], kl.detach().unsqueeze(-1))
    torch.testing.assert_close(
        out["loss_objective"],
        -((td["actor_output", "logits"].log_softmax(-1).gather(-1, td["action"][:, None]).squeeze(-1)
           - td["action_log_prob"]).exp().unsqueeze(-1) * td["advantage"] - 0.5 * kl.unsqueeze(-1)).mean(),
    )


# ----------------------------------------------------------------------------- purity


def test_masked_entries_change_neither_values_nor_gradients():
    """Masked positions are selected away: any finite garbage there changes neither the
    values nor the gradients; non-finite garbage leaves the values intact (its gradient
    is NaN, as in TorchRL, because 0 * inf is NaN in the backward pass)."""
    td = logits_batch(B=10)
    mask = torch.tensor([True] * 6 + [False] * 4)
    td["collector", "mask"] = mask
    sub = clip_ppo_loss(td[mask].exclude("collector"), Categorical)
    g_sub = torch.autograd.grad(sub["loss_objective"] + sub["loss_critic"], td["actor_output", "logits"])[0]
    for garbage in (1e6, float("nan")):
        poisoned = td.clone()
        poisoned["advantage"][~mask] = garbage
        poisoned["value_target"][~mask] = -garbage
        out = clip_ppo_loss(poisoned, Categorical)
        for key in ("loss_objective", "loss_critic", "loss_entropy"):
            torch.testing.assert_close(out[key], sub[key])
        if garbage == garbage:  # finite
            g = torch.autograd.grad(out["loss_objective"] + out["loss_critic"], td["actor_output", "logits"])[0]
            torch.testing.assert_close(g, g_sub)
            assert torch.count_nonzero(g[~mask]) == 0


@pytest.mark.parametrize("fn", [ppo_loss, clip_ppo_loss, klpen_ppo_loss])
def test_diagnostics_false_returns_the_same_losses_only(fn):
    td = logits_batch()
    td["old_state_value"] = td["state_value"].detach() + 0.1
    full = fn(td, Categorical, clip_value=0.2)
    lean = fn(td, Categorical, clip_value=0.2, diagnostics=False)
    expected = {k for k in full.keys() if k.startswith("loss_")} | ({"beta"} & set(full.keys()))
    assert set(lean.keys()) == expected
    for key in expected:
        assert torch.equal(lean[key], full[key]), key


# ----------------------------------------------------------------------------- bad hyperparameters


@pytest.mark.parametrize(
    "fn, kwargs, entry",
    [
        (clip_ppo_loss, {"clip_epsilon": 1.5}, "clip_epsilon"),
        (clip_ppo_loss, {"clip_epsilon": -0.1}, "clip_epsilon"),
        (clip_ppo_loss, {"clip_epsilon": torch.tensor(2.0)}, "clip_epsilon"),
        (clip_ppo_loss, {"clip_epsilon": (0.1, 0.2, 0.3)}, "clip_epsilon"),
        (clip_ppo_loss, {"clip_epsilon": (0.1, 0.2), "clip_value": True}, "clip_value"),
        (ppo_loss, {"critic_coeff": -1.0}, "critic_coeff"),
        (ppo_loss, {"samples_mc_entropy": 0}, "samples_mc_entropy"),
        (ppo_loss, {"max_importance_ratio": 0.0}, "max_importance_ratio"),
        (klpen_ppo_loss, {"beta": -1.0}, "beta"),
        (klpen_ppo_loss, {"dtarg": 0.0}, "dtarg"),
        (klpen_ppo_loss, {"increment": 0.5}, "increment"),
        (klpen_ppo_loss, {"decrement": 1.5}, "decrement"),
        (klpen_ppo_loss, {"samples_mc_kl": 0}, "samples_mc_kl"),
    ],
    ids=lambda v: v.__name__ if callable(v) else None,
)
def test_out_of_range_hyperparameters(fn, kwargs, entry):
    check(fn, batch(), HyperparameterError, entry, **kwargs)

"""Functional A2C: hand-computed values, TorchRL parity when called directly, composite and
masked policies, V-trace, diagnostics, advantage scale, bad input."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import CompositeDistribution
from torch import distributions as D
from torchrl.modules import MaskedCategorical
from torchrl.objectives import ValueEstimators
from torchrl.objectives.value import GAE

from tests.builders import assert_td_close, make_data, make_nets
from tests.specs import by_name
from torchrl_functional.errors import EntryDtypeError, HyperparameterError, MissingEntryError
from torchrl_functional.functional import A2CKeys, a2c_loss, value_target

from .onpolicy_common import batch, check, fd, logits_batch
from .test_estimators import B, T, _signals, _torchrl


def test_a2c_hand_computed():
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.2, 0.7]]))
    td = TensorDict({
        "actor_output": {"logits": logits}, "action": torch.tensor([0, 2]),
        "advantage": torch.tensor([[2.0], [-1.0]]), "value_target": torch.tensor([[1.0], [0.0]]),
        "state_value": torch.tensor([[0.5], [3.0]]),
    }, [2])
    out = a2c_loss(td, D.Categorical, entropy_coeff=0.1, loss_critic_type="l2")
    lp = [math.log(0.5), math.log(0.7)]
    assert out["loss_objective"].item() == pytest.approx(-(lp[0] * 2.0 + lp[1] * -1.0) / 2)
    ent = [-(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25)), -(0.1 * math.log(0.1) + 0.2 * math.log(0.2) + 0.7 * math.log(0.7))]
    assert out["entropy"].item() == pytest.approx(sum(ent) / 2)
    assert out["loss_entropy"].item() == pytest.approx(-0.1 * sum(ent) / 2)
    assert out["loss_critic"].item() == pytest.approx((0.25 + 9.0) / 2)


@pytest.mark.parametrize("dist", ["normal", "categorical"])
def test_a2c_called_by_hand_matches_torchrl(dist):
    nets = make_nets(dist, seed=1)
    data = make_data(dist, (16,), seed=1, nets=nets)
    ref = by_name("a2c_loss").torchrl(nets.actor, nets.critic, entropy_coeff=0.05)
    torch.manual_seed(0)
    want = ref(data.clone())
    params = nets.actor.get_dist_params(data.select("observation"))
    td = data.clone()
    td["actor_output"] = params.select(*nets.actor.module[-1].in_keys)
    td["state_value"] = nets.critic(data.select("observation"))["state_value"]
    dist_class = nets.actor.module[-1].distribution_class
    torch.manual_seed(0)
    assert_td_close(a2c_loss(td, dist_class, entropy_coeff=0.05), want)


def test_diagnostics_false_returns_losses_only():
    nets = make_nets("categorical", seed=2)
    data = make_data("categorical", (8,), seed=2, nets=nets)
    data["actor_output"] = nets.actor.get_dist_params(data.select("observation")).select("logits")
    full = a2c_loss(data, D.Categorical, clip_value=0.2, keys={"old_value": "state_value"})
    lean = a2c_loss(data, D.Categorical, clip_value=0.2, keys={"old_value": "state_value"}, diagnostics=False)
    assert set(full.keys()) - set(lean.keys()) == {"entropy", "value_clip_fraction"}
    for key in lean.keys():
        torch.testing.assert_close(lean[key], full[key])


def test_advantage_scale_divides_the_advantage():
    nets = make_nets("categorical", seed=3)
    data = make_data("categorical", (8,), seed=3, nets=nets)
    data["actor_output"] = nets.actor.get_dist_params(data.select("observation")).select("logits")
    scaled = data.clone()
    scaled["advantage"] = data["advantage"] / 4.0
    assert_td_close(a2c_loss(data, D.Categorical, advantage_scale=torch.tensor(4.0), entropy_bonus=False),
                    a2c_loss(scaled, D.Categorical, entropy_bonus=False))
    with pytest.raises(HyperparameterError, match="advantage_scale"):
        a2c_loss(data, D.Categorical, advantage_scale=0.0)


def _composite_td(g, shape=(5,)):
    params = TensorDict({"a": {"loc": torch.randn(*shape, 2, generator=g), "scale": torch.rand(*shape, 2, generator=g) + 0.5},
                         "b": {"logits": torch.randn(*shape, 3, generator=g)}}, shape)
    dist_class = lambda params: CompositeDistribution(  # noqa: E731
        params, distribution_map={"a": lambda loc, scale: D.Independent(D.Normal(loc, scale), 1),
                                  "b": D.Categorical})
    action = TensorDict({"a": torch.randn(*shape, 2, generator=g), "b": torch.randint(3, shape, generator=g)}, shape)
    td = TensorDict({"actor_output": {"params": params}, **action.to_dict(),
                     "advantage": torch.randn(*shape, 1, generator=g), "value_target": torch.randn(*shape, 1, generator=g),
                     "state_value": torch.randn(*shape, 1, generator=g)}, shape)
    return td, dist_class


def test_composite_log_prob_is_the_sum_of_the_heads_and_entropy_joint():
    g = torch.Generator().manual_seed(4)
    td, dist_class = _composite_td(g)
    keys = A2CKeys(action=["a", "b"])
    torch.manual_seed(0)
    out = a2c_loss(td, dist_class, keys=keys, reduction="none", entropy_coeff=0.1)
    params = td["actor_output", "params"]
    normal = D.Independent(D.Normal(params["a", "loc"], params["a", "scale"]), 1)
    cat = D.Categorical(logits=params["b", "logits"])
    log_prob = normal.log_prob(td["a"]) + cat.log_prob(td["b"])
    torch.testing.assert_close(out["loss_objective"], -(log_prob * td["advantage"].squeeze(-1)))
    torch.manual_seed(0)
    x = normal.rsample((1,))
    want_entropy = -normal.log_prob(x).mean(0) + cat.entropy()  # one reparameterised draw; analytic for b
    torch.testing.assert_close(out["loss_entropy"], -0.1 * want_entropy)
    missing = td.exclude("b")
    with pytest.raises(MissingEntryError, match="'b'"):
        a2c_loss(missing, dist_class, keys=keys)


def test_masked_categorical_parameters():
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(6, 4, generator=g)
    mask = torch.rand(6, 4, generator=g) < 0.6
    mask[:, 1] = True
    td = TensorDict({"actor_output": {"logits": logits, "mask": mask}, "action": torch.ones(6, dtype=torch.long),
                     "advantage": torch.randn(6, 1, generator=g), "value_target": torch.randn(6, 1, generator=g),
                     "state_value": torch.randn(6, 1, generator=g)}, [6])
    out = a2c_loss(td, MaskedCategorical, entropy_bonus=False, critic_coeff=None)
    dist = MaskedCategorical(logits=logits, mask=mask)
    torch.testing.assert_close(out["loss_objective"], -(dist.log_prob(td["action"]) * td["advantage"].squeeze(-1)).mean())
    bad = td.clone()
    bad["actor_output", "mask"] = mask.float()
    with pytest.raises(EntryDtypeError, match="mask"):
        a2c_loss(bad, MaskedCategorical, entropy_bonus=False)
    bad = td.clone()
    bad["actor_output", "logits"] = logits.long()
    with pytest.raises(EntryDtypeError, match="logits"):
        a2c_loss(bad, MaskedCategorical, entropy_bonus=False)


@pytest.mark.parametrize("estimator", ["vtrace", ValueEstimators.VTrace])
def test_vtrace_scores_the_stored_action_with_the_current_policy(estimator):
    """V-trace in the functional loss: log pi of the *stored* action under the current policy
    (detached) against the behaviour log-prob; equals the kernel fed with those log-probs."""
    nets = make_nets("categorical", seed=6)
    data = make_data("categorical", (2, 6), seed=6, with_advantage=False, nets=nets)
    data["actor_output"] = nets.actor.get_dist_params(data.select("observation")).select("logits")
    out = a2c_loss(data, D.Categorical, value_estimator=estimator, gamma=0.9, rho_thresh=0.8, entropy_bonus=False)
    log_pi = D.Categorical(logits=data["actor_output", "logits"]).log_prob(data["action"]).detach().unsqueeze(-1)
    adv, target = value_target(
        "vtrace", gamma=0.9, state_value=data["state_value"], next_state_value=data["next", "state_value"],
        reward=data["next", "reward"], done=data["next", "done"], terminated=data["next", "terminated"],
        log_pi=log_pi, log_mu=data["action_log_prob"].unsqueeze(-1), rho_thresh=0.8, time_dim=1,
    )
    given = data.clone()
    given["advantage"], given["value_target"] = adv, target
    assert_td_close(out, a2c_loss(given, D.Categorical, entropy_bonus=False))


def test_entropy_coeff_gradient_matches_finite_differences():
    td = logits_batch(dtype=torch.float64, requires_grad=False, B=16)

    def total(h):
        out = a2c_loss(td, D.Categorical, entropy_coeff=h)
        return sum(v for k, v in out.items() if k.startswith("loss_"))

    x = torch.tensor(0.1, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(total(x), x)
    want = fd(lambda h: total(torch.tensor(h, dtype=torch.float64)).item(), 0.1)
    assert grad.item() == pytest.approx(want, rel=1e-4, abs=1e-8)


def test_multi_agent_entries_keep_time_at_the_tensordict_time_dim():
    """``[B, T]`` TensorDict, ``[B, T, N, 1]`` entries: the estimate runs along T for each agent
    (a float64 per-agent loop with TorchRL's GAE), not along the agent axis (the entries' dim -2)."""
    n_agents = 4
    s = _signals(seed=7, shape=(B, T, n_agents), dtype=torch.float64)
    g = torch.Generator().manual_seed(2)
    td = TensorDict({
        "log_prob": torch.randn(B, T, n_agents, generator=g, dtype=torch.float64),
        "action_log_prob": torch.randn(B, T, n_agents, generator=g, dtype=torch.float64),
        "entropy": torch.rand(B, T, n_agents, generator=g, dtype=torch.float64),
        "state_value": s["state_value"],
        "next": {"state_value": s["next_state_value"], "reward": s["reward"], "done": s["done"],
                 "terminated": s["terminated"]},
    }, [B, T])
    # gamma and lmbda exact in float32 (TorchRL's estimator stores them as float32 buffers)
    out = a2c_loss(td, gamma=0.5, lmbda=0.75, reduction="none", loss_critic_type="l2", entropy_bonus=False)
    want_adv = torch.empty_like(s["state_value"])
    want_target = torch.empty_like(s["state_value"])
    for agent in range(n_agents):
        per_agent = TensorDict({k: v[:, :, agent] for k, v in td.items(True, True) if k != "log_prob"
                                and k != "action_log_prob" and k != "entropy"}, [B, T])
        adv, target = _torchrl(GAE, per_agent, gamma=0.5, lmbda=0.75)
        want_adv[:, :, agent], want_target[:, :, agent] = adv, target
    torch.testing.assert_close(out["loss_objective"], -(td["log_prob"].unsqueeze(-1) * want_adv).squeeze(-1))
    torch.testing.assert_close(out["loss_critic"], ((want_target - s["state_value"]) ** 2).squeeze(-1))


def test_fractional_samples_mc_entropy_is_refused():
    check(a2c_loss, batch(), HyperparameterError, "samples_mc_entropy", samples_mc_entropy=1.5)

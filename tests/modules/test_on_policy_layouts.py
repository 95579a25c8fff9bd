"""Drop-in parity for the policy layouts beyond one plain action head, and for the options
TorchRL's on-policy classes had that ours used to refuse: composite (multi-head) policies with
and without per-head entropy coefficients, action masking, multi-agent ``[B, T, N]`` data,
actors that only offer ``get_dist``, ``delay_actor`` and ``advantage_norm``. Values and every
parameter gradient vs TorchRL's class (float32, 1e-6), same networks, data and seed."""

from __future__ import annotations

import pytest
import torch
from tensordict.nn import set_composite_lp_aggregate
from torch import distributions as D
from torchrl.modules import PopArtValueNorm
from torchrl.objectives import ValueEstimators

from tests.builders import assert_td_close, clone_nets, make_data, make_nets
from tests.modules.by_spec import accepts, on_policy_specs, pairs, with_option
from tests.modules.onpolicy_nets import (
    MARL_KEYS,
    composite_data,
    composite_nets,
    marl_data,
    marl_nets,
    masked_data,
    masked_nets,
    parity,
)

SPECS = {s.module.__name__: s for s in on_policy_specs()}
PAIRS = pairs(on_policy_specs())
#: the trust-region (PPO) losses: a proximal policy, per-head entropies, the functional layer's root layout
PPO_FAMILY = tuple(s.module.__name__ for s in with_option(on_policy_specs(), "delay_actor"))


@pytest.fixture(autouse=True)
def _no_log_prob_aggregation():
    """Composite log-probs per head, as TorchRL's own tests run them."""
    setter = set_composite_lp_aggregate(False)
    setter.set()
    yield
    setter.unset()


def _parity(loss_name, nets, data, **kwargs):
    return parity(*PAIRS[loss_name], nets, data, **kwargs)


HEADS = [("cont",), ("cont", "cont2"), ("cont", "disc")]




def _samples_every_head(torchrl_cls: type) -> bool:
    """TorchRL's A2C entropy bonus (its own ``get_entropy_bonus``) draws every head with ``rsample``:
    it cannot estimate a discrete head's entropy (``tests/modules/test_a2c.py`` checks ours there)."""
    return "get_entropy_bonus" in vars(torchrl_cls)


COMPOSITE = [pytest.param(name, heads, id=f"{name}-{'+'.join(heads)}") for name in PAIRS for heads in HEADS
             if not (_samples_every_head(PAIRS[name][0]) and "disc" in heads)]


@pytest.mark.parametrize("with_advantage", [True, False])
@pytest.mark.parametrize("loss_name, heads", COMPOSITE)
def test_composite_parity(loss_name, heads, with_advantage):
    nets = composite_nets(seed=1, heads=heads, tanh=heads == ("cont",))
    data = composite_data(nets, (3, 5), seed=1, with_advantage=with_advantage)
    _, _, out = _parity(loss_name, nets, data, unwrap=True)
    if loss_name in PPO_FAMILY:  # per-head entropies, under TorchRL's names
        assert set(out["composite_entropy"].keys(True, True)) == {("action", h + "_entropy") for h in heads}


@pytest.mark.parametrize("loss_name", PPO_FAMILY)
def test_per_head_entropy_coefficients(loss_name):
    nets = composite_nets(seed=3, heads=("cont", "cont2"))
    data = composite_data(nets, (6,), seed=3)
    coeffs = {("action", "cont_entropy"): 0.05, ("action", "cont2_entropy"): 0.2}

    def build(cls, n):
        return cls(n.actor, n.critic, entropy_coeff=coeffs)

    _, mine, out = _parity(loss_name, nets, data, build=build)
    heads = out["composite_entropy"]
    want = -(0.05 * heads["action", "cont_entropy"] + 0.2 * heads["action", "cont2_entropy"]).mean()
    torch.testing.assert_close(out["loss_entropy"], want)
    with pytest.raises(KeyError, match="Missing entropy coeff"):
        PAIRS[loss_name][1](clone_nets(nets).actor, clone_nets(nets).critic,
                            entropy_coeff={("action", "cont_entropy"): 0.1})(data.clone())


@pytest.mark.parametrize("with_advantage", [True, False])
@pytest.mark.parametrize("loss_name", list(PAIRS))
def test_masked_categorical_parity(loss_name, with_advantage):
    nets = masked_nets(seed=4)
    data = masked_data(nets, (4, 5), seed=4, with_advantage=with_advantage)
    _parity(loss_name, nets, data)


@pytest.mark.parametrize("with_advantage", [True, False])
@pytest.mark.parametrize("dist", ["normal", "categorical"])
@pytest.mark.parametrize("loss_name", list(PAIRS))
def test_multi_agent_layout_parity(loss_name, dist, with_advantage):
    nets = marl_nets(seed=5, dist=dist)
    data = marl_data(nets, (3, 5), seed=5, with_advantage=with_advantage, dist=dist)

    def build(cls, n):
        loss = cls(n.actor, n.critic)
        loss.set_keys(**MARL_KEYS)
        return loss

    _parity(loss_name, nets, data, build=build)


@pytest.mark.parametrize("kwargs", [{}, {"max_importance_ratio": 1.2}], ids=["plain", "capped"])
@pytest.mark.parametrize("loss_name", PPO_FAMILY)
def test_delay_actor_parity(loss_name, kwargs):
    """Decoupled PPO: the trust region around the proximal policy (the target parameters)."""
    nets = make_nets("tanh_normal" if accepts(PAIRS[loss_name][0], "samples_mc_kl") else "normal", seed=7)
    data = make_data("normal", (3, 6), seed=7, with_advantage=False, nets=nets)

    def build(cls, n):
        loss = cls(n.actor, n.critic, delay_actor=True, **kwargs)
        with torch.no_grad():  # a proximal policy that differs from the current one
            for p in loss.target_actor_network_params.values(True, True):
                p.add_(0.05 * torch.ones_like(p))
        return loss

    _parity(loss_name, nets, data, build=build)


@pytest.mark.parametrize("estimated", [True, False])
@pytest.mark.parametrize("loss_name", [s.module.__name__ for s in with_option(on_policy_specs(), "advantage_norm")])
def test_advantage_norm_parity(loss_name, estimated):
    """``advantage_norm``: the advantage divided by a ``ValueNorm``'s scale, the norm updated with
    the valid value-target rows when the advantage is estimated in training mode."""
    nets = make_nets("normal", seed=8)
    data = make_data("normal", (3, 6), seed=8, with_advantage=not estimated, with_mask=True, nets=nets)

    def build(cls, n):
        loss = cls(n.actor, n.critic, advantage_norm=PopArtValueNorm(shape=1, beta=0.9))
        loss.make_value_estimator(ValueEstimators.GAE, gamma=0.9, lmbda=0.8)
        return loss

    ref, mine, _ = _parity(loss_name, nets, data, build=build)
    for name, buf in ref.advantage_norm.named_buffers():
        torch.testing.assert_close(dict(mine.advantage_norm.named_buffers())[name], buf)
    ref.eval(), mine.eval()  # no update in eval mode
    torch.manual_seed(0)
    want = ref(data.clone())
    torch.manual_seed(0)
    assert_td_close(mine(data.clone()), want)


@pytest.mark.parametrize("loss_name", PPO_FAMILY)
def test_root_layout_gives_the_module_numbers(loss_name):
    """The functional layer reads a ProbabilisticActor's layout too (parameters at the root,
    listed in ``actor_output``): same numbers as the module."""
    nets = make_nets("categorical", seed=9)
    data = make_data("categorical", (10,), seed=9, nets=nets)
    mine = PAIRS[loss_name][1](clone_nets(nets).actor, clone_nets(nets).critic)
    torch.manual_seed(0)
    want = mine(data.clone())
    given = data.clone()
    given["old_actor_output", "logits"] = data["logits"]  # the behaviour policy's, for the KL penalty
    given["logits"] = nets.actor.get_dist_params(data.select("observation"))["logits"]
    given["state_value"] = nets.critic(data.select("observation"))["state_value"]
    out = SPECS[loss_name].function(given, D.Categorical, keys={"actor_output": ["logits"]})
    for key in want.keys():
        torch.testing.assert_close(out[key], want[key], msg=lambda m, key=key: f"{key}: {m}")

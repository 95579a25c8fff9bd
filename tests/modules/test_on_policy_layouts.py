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
from torchrl.objectives import A2CLoss as TorchRLA2C
from torchrl.objectives import ClipPPOLoss as TorchRLClip
from torchrl.objectives import KLPENPPOLoss as TorchRLKLPEN
from torchrl.objectives import PPOLoss as TorchRLPPO
from torchrl.objectives import ReinforceLoss as TorchRLReinforce
from torchrl.objectives import ValueEstimators

from tests.builders import (
    assert_grads_close,
    assert_td_close,
    clone_nets,
    loss_sum,
    make_data,
    make_nets,
)
from tests.modules.onpolicy_nets import (
    MARL_KEYS,
    GetDistActor,
    composite_data,
    composite_nets,
    marl_data,
    marl_nets,
    masked_data,
    masked_nets,
)
from torchrl_functional import modules as ours

PAIRS = {
    "PPOLoss": (TorchRLPPO, ours.PPOLoss),
    "ClipPPOLoss": (TorchRLClip, ours.ClipPPOLoss),
    "KLPENPPOLoss": (TorchRLKLPEN, ours.KLPENPPOLoss),
    "A2CLoss": (TorchRLA2C, ours.A2CLoss),
    "ReinforceLoss": (TorchRLReinforce, ours.ReinforceLoss),
}
PPO_FAMILY = ("PPOLoss", "ClipPPOLoss", "KLPENPPOLoss")


@pytest.fixture(autouse=True)
def _no_log_prob_aggregation():
    """Composite log-probs per head, as TorchRL's own tests run them."""
    setter = set_composite_lp_aggregate(False)
    setter.set()
    yield
    setter.unset()


def _torchrl_forward(loss):
    """TorchRL's ``forward`` without the ``dispatch`` wrapper: TorchRL's ``A2CLoss.in_keys`` fails
    on a list of action keys (several heads) before ``forward`` runs."""
    fn = type(loss).forward
    while hasattr(fn, "__wrapped__"):
        fn = fn.__wrapped__
    return lambda td: fn(loss, td)


def _parity(loss_name, nets, data, *, build=None, seed=11, unwrap=False):
    torchrl_cls, our_cls = PAIRS[loss_name]
    build = build or (lambda cls, n: cls(n.actor, n.critic))
    ref, mine = build(torchrl_cls, clone_nets(nets)), build(our_cls, clone_nets(nets))
    torch.manual_seed(seed)
    out_ref = (_torchrl_forward(ref) if unwrap else ref)(data.clone())
    torch.manual_seed(seed)
    out_ours = mine(data.clone())
    assert_td_close(out_ours, out_ref)
    loss_sum(out_ref).backward()
    loss_sum(out_ours).backward()
    assert_grads_close(mine, ref)
    return ref, mine, out_ours


HEADS = [("cont",), ("cont", "cont2"), ("cont", "disc")]


# TorchRL's A2CLoss cannot estimate a discrete head's entropy: see test_a2c_discrete_head_entropy
COMPOSITE = [pytest.param(name, heads, id=f"{name}-{'+'.join(heads)}") for name in PAIRS for heads in HEADS
             if not (name == "A2CLoss" and "disc" in heads)]


@pytest.mark.parametrize("with_advantage", [True, False])
@pytest.mark.parametrize("loss_name, heads", COMPOSITE)
def test_composite_parity(loss_name, heads, with_advantage):
    nets = composite_nets(seed=1, heads=heads, tanh=heads == ("cont",))
    data = composite_data(nets, (3, 5), seed=1, with_advantage=with_advantage)
    _, _, out = _parity(loss_name, nets, data, unwrap=True)
    if loss_name in PPO_FAMILY:  # per-head entropies, under TorchRL's names
        assert set(out["composite_entropy"].keys(True, True)) == {("action", h + "_entropy") for h in heads}


def test_a2c_discrete_head_entropy():
    """TorchRL's ``A2CLoss`` raises on a composite policy with a discrete head (its entropy
    samples every head with ``rsample``); ours uses that head's analytic entropy. Checked against
    a hand computation: the continuous head's one-sample estimate (same draw) plus the categorical's."""
    nets = composite_nets(seed=2, heads=("cont", "disc"))
    data = composite_data(nets, (4, 3), seed=2)
    ref = TorchRLA2C(clone_nets(nets).actor, clone_nets(nets).critic)
    with pytest.raises(NotImplementedError):
        _torchrl_forward(ref)(data.clone())
    mine = ours.A2CLoss(clone_nets(nets).actor, clone_nets(nets).critic, entropy_coeff=0.3)
    torch.manual_seed(0)
    out = mine(data.clone())
    dist = nets.actor.get_dist(data.select("observation"))
    torch.manual_seed(0)
    cont = dist.dists["action", "cont"]
    x = cont.rsample((1,))
    want_entropy = -cont.log_prob(x).mean(0) + dist.dists["action", "disc"].entropy()
    torch.testing.assert_close(out["entropy"], want_entropy.mean())
    torch.testing.assert_close(out["loss_entropy"], -0.3 * want_entropy.mean())
    log_prob = sum(dist.dists[("action", h)].log_prob(data["action", h]) for h in ("cont", "disc"))
    torch.testing.assert_close(out["loss_objective"], -(log_prob.unsqueeze(-1) * data["advantage"]).mean())


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


@pytest.mark.parametrize("critic", [True, False])
@pytest.mark.parametrize("loss_name", ["PPOLoss", "ClipPPOLoss"])
def test_get_dist_actor_parity(loss_name, critic):
    """An actor that is not built from tensordict's probabilistic modules, only ``get_dist``."""
    nets = make_nets("categorical", seed=6)
    nets.actor = GetDistActor(seed=6)
    data = make_data("categorical", (12,), seed=6)

    def build(cls, n):
        return cls(n.actor, n.critic if critic else None, entropy_bonus=critic)

    _parity(loss_name, nets, data, build=build)


@pytest.mark.parametrize("kwargs", [{}, {"max_importance_ratio": 1.2}], ids=["plain", "capped"])
@pytest.mark.parametrize("loss_name", PPO_FAMILY)
def test_delay_actor_parity(loss_name, kwargs):
    """Decoupled PPO: the trust region around the proximal policy (the target parameters)."""
    nets = make_nets("tanh_normal" if loss_name == "KLPENPPOLoss" else "normal", seed=7)
    data = make_data("normal", (3, 6), seed=7, with_advantage=False, nets=nets)

    def build(cls, n):
        loss = cls(n.actor, n.critic, delay_actor=True, **kwargs)
        with torch.no_grad():  # a proximal policy that differs from the current one
            for p in loss.target_actor_network_params.values(True, True):
                p.add_(0.05 * torch.ones_like(p))
        return loss

    _parity(loss_name, nets, data, build=build)


@pytest.mark.parametrize("estimated", [True, False])
@pytest.mark.parametrize("loss_name", PPO_FAMILY + ("A2CLoss",))
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
    from torchrl_functional import functional as F

    nets = make_nets("categorical", seed=9)
    data = make_data("categorical", (10,), seed=9, nets=nets)
    mine = PAIRS[loss_name][1](clone_nets(nets).actor, clone_nets(nets).critic)
    torch.manual_seed(0)
    want = mine(data.clone())
    given = data.clone()
    given["old_actor_output", "logits"] = data["logits"]  # the behaviour policy's, for the KL penalty
    given["logits"] = nets.actor.get_dist_params(data.select("observation"))["logits"]
    given["state_value"] = nets.critic(data.select("observation"))["state_value"]
    fn = {"PPOLoss": F.ppo_loss, "ClipPPOLoss": F.clip_ppo_loss, "KLPENPPOLoss": F.klpen_ppo_loss}[loss_name]
    out = fn(given, D.Categorical, keys={"actor_output": ["logits"]})
    for key in want.keys():
        torch.testing.assert_close(out[key], want[key], msg=lambda m, key=key: f"{key}: {m}")

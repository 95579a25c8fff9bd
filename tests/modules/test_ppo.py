"""The PPO drop-ins (``PPOLoss``, ``ClipPPOLoss``, ``KLPENPPOLoss``): behaviour of their own
beyond the cross-cutting module tests (those find them through the registry)."""

from __future__ import annotations

import copy

import pytest
import torch
from torchrl.modules import PopArtValueNorm
from torchrl.modules import value_norm as trl_vn
from torchrl.objectives import ClipPPOLoss as TorchRLClip
from torchrl.objectives import KLPENPPOLoss as TorchRLKLPEN
from torchrl.objectives import PPOLoss as TorchRLPPO
from torchrl.objectives import ValueEstimators

from tests.builders import assert_td_close, clone_nets, make_data, make_nets
from tests.modules.multiagent_nets import KEYS, raiser
from tests.modules.multiagent_nets import data as _data
from tests.modules.multiagent_nets import nets as _nets
from tests.modules.onpolicy_nets import GetDistActor, parity
from torchrl_functional import modules as ours

PAIRS = {"PPOLoss": (TorchRLPPO, ours.PPOLoss), "ClipPPOLoss": (TorchRLClip, ours.ClipPPOLoss),
         "KLPENPPOLoss": (TorchRLKLPEN, ours.KLPENPPOLoss)}


def test_klpen_beta_updates_like_torchrl_over_several_steps():
    nets = make_nets("normal", seed=5)
    ref = TorchRLKLPEN(clone_nets(nets).actor, clone_nets(nets).critic, dtarg=0.001)
    mine = ours.KLPENPPOLoss(clone_nets(nets).actor, clone_nets(nets).critic, dtarg=0.001)
    betas = []
    for step in range(4):
        data = make_data("normal", (16,), seed=step, nets=nets)
        ref(data.clone())
        mine(data.clone())
        torch.testing.assert_close(mine.beta, ref.beta)
        betas.append(mine.beta.item())
    assert betas[0] != 1.0  # it really moved
    mine.reset()
    assert mine.beta == 1.0


@pytest.mark.parametrize("critic", [True, False])
@pytest.mark.parametrize("loss_name", ["PPOLoss", "ClipPPOLoss"])
def test_get_dist_actor_parity(loss_name, critic):
    """An actor that is not built from tensordict's probabilistic modules, only ``get_dist``."""
    nets = make_nets("categorical", seed=6)
    nets.actor = GetDistActor(seed=6)
    data = make_data("categorical", (12,), seed=6)

    def build(cls, n):
        return cls(n.actor, n.critic if critic else None, entropy_bonus=critic)

    parity(*PAIRS[loss_name], nets, data, build=build)


def test_advantage_norm_statistics_functional_multi_agent(monkeypatch):
    """``advantage_norm`` (the PPO family's ValueNorm) updates through the functional normaliser
    (multi-agent data and networks of ``multiagent_nets.py``)."""
    actor, critic = _nets(0, False)
    theirs = TorchRLClip(actor, critic, advantage_norm=PopArtValueNorm(shape=1, beta=0.5))
    mine = ours.ClipPPOLoss(copy.deepcopy(actor), copy.deepcopy(critic), advantage_norm=PopArtValueNorm(shape=1, beta=0.5))
    for loss in (theirs, mine):
        loss.set_keys(**KEYS)
        loss.make_value_estimator(ValueEstimators.GAE, gamma=0.9, lmbda=0.8)
    td = _data(actor, per_agent_reward=True, scale=4.0)
    torch.manual_seed(1)
    ref = theirs(td.clone())
    for name in ("update", "scale", "_running_stats"):
        monkeypatch.setattr(trl_vn.PopArtValueNorm, name, raiser(name))
    torch.manual_seed(1)
    out = mine(td.clone())
    assert_td_close(out, ref)
    for name, buf in theirs.advantage_norm.state_dict().items():
        torch.testing.assert_close(mine.advantage_norm.state_dict()[name], buf, atol=1e-6, rtol=1e-6)

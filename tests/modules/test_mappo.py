"""MAPPOLoss / IPPOLoss drop-ins vs TorchRL 0.14.1: outputs, every parameter gradient and the
value normaliser's statistics after the call, under the same seed; and no TorchRL math reached
(loss forward, critic hook, estimator, value normaliser)."""

from __future__ import annotations

import copy

import pytest
import torch
import torchrl.objectives.multiagent.mappo as trl_mappo
import torchrl.objectives.value.advantages as trl_adv
from torchrl.modules import PercentileValueNorm, PopArtValueNorm, RunningValueNorm
from torchrl.modules import value_norm as trl_vn
from torchrl.objectives import ValueEstimators
from torchrl.objectives.common import LossModule

from tests.builders import assert_grads_close, assert_td_close, loss_sum
from tests.modules.multiagent_nets import KEYS, raiser
from tests.modules.multiagent_nets import data as _data
from tests.modules.multiagent_nets import nets as _nets
from torchrl_functional import modules as ours

NORMS = {
    "none": lambda: None,
    "popart": lambda: PopArtValueNorm(shape=1, beta=0.9),
    "running": lambda: RunningValueNorm(shape=1),
    "percentile": lambda: PercentileValueNorm(shape=1, rate=0.3, center=True, min_scale=0.5),
}
CASES = [
    ("mappo", "MAPPOLoss", "none", {}, {}),
    ("mappo_popart", "MAPPOLoss", "popart", {}, {"scale": 30.0}),
    ("mappo_running", "MAPPOLoss", "running", {}, {"scale": 30.0}),
    ("mappo_percentile", "MAPPOLoss", "percentile", {}, {}),
    ("popart_clip_value", "MAPPOLoss", "popart", {"clip_value": 0.2}, {}),
    ("popart_l2_sum", "MAPPOLoss", "popart", {"loss_critic_type": "l2", "reduction": "sum", "normalize_advantage": False}, {}),
    ("popart_separate", "MAPPOLoss", "popart", {"separate_losses": True}, {}),
    ("per_agent_reward", "MAPPOLoss", "popart", {}, {"per_agent_reward": True}),
    ("none_reduction", "MAPPOLoss", "none", {"reduction": "none"}, {}),
    ("no_normalize", "MAPPOLoss", "none", {"normalize_advantage": False}, {}),
    ("ippo", "IPPOLoss", "none", {}, {}),
    ("ippo_running", "IPPOLoss", "running", {}, {}),
]


def _build(cls_name: str, norm: str, kwargs: dict, centralized: bool):
    actor, critic = _nets(0, centralized)
    theirs_cls, ours_cls = getattr(trl_mappo, cls_name), getattr(ours, cls_name)
    theirs = theirs_cls(actor, critic, value_norm=NORMS[norm](), **kwargs)
    mine = ours_cls(copy.deepcopy(actor), copy.deepcopy(critic), value_norm=NORMS[norm](), **kwargs)
    for loss in (theirs, mine):
        loss.set_keys(**KEYS)
    mine.load_state_dict(theirs.state_dict())
    return actor, theirs, mine


@pytest.mark.parametrize("case_id,cls_name,norm,kwargs,data_kw", CASES, ids=[c[0] for c in CASES])
def test_parity(case_id, cls_name, norm, kwargs, data_kw):
    actor, theirs, mine = _build(cls_name, norm, kwargs, centralized=cls_name == "MAPPOLoss")
    for step in range(2):  # the second call reads statistics the first one updated
        td = _data(actor, seed=step, **data_kw)
        torch.manual_seed(10 + step)
        ref = theirs(td.clone())
        torch.manual_seed(10 + step)
        out = mine(td.clone())
        assert_td_close(out, ref, atol=1e-6, rtol=1e-5)
        theirs.zero_grad()
        mine.zero_grad()
        loss_sum(ref).backward()
        loss_sum(out).backward()
        assert_grads_close(mine, theirs)
        assert set(mine.state_dict()) == set(theirs.state_dict())
        for name, buf in theirs.state_dict().items():
            if name.startswith("value_norm."):
                torch.testing.assert_close(mine.state_dict()[name], buf, atol=1e-6, rtol=1e-6)


def test_precomputed_advantage_parity():
    actor, theirs, mine = _build("MAPPOLoss", "popart", {}, centralized=True)
    for loss in (theirs, mine):
        loss.set_keys(advantage=("agents", "advantage"), value_target=("agents", "value_target"))
    td = _data(actor, advantage=True, scale=10.0)
    torch.manual_seed(3)
    ref = theirs(td.clone())
    torch.manual_seed(3)
    out = mine(td.clone())
    assert_td_close(out, ref)
    torch.testing.assert_close(mine.value_norm.running_mean, theirs.value_norm.running_mean, atol=0, rtol=0)


def test_defaults_are_mappos():
    actor, critic = _nets(0, True)
    loss = ours.MAPPOLoss(actor, critic)
    loss.set_keys(**KEYS)
    assert loss.normalize_advantage and tuple(loss.normalize_advantage_exclude_dims) == (-2,)
    loss.make_value_estimator()
    assert loss.value_type == ValueEstimators.MAGAE and isinstance(loss._value_estimator, trl_adv.MultiAgentGAE)


@pytest.mark.parametrize("norm", ["popart", "running", "percentile"])
def test_no_torchrl_math(monkeypatch, norm):
    actor, critic = _nets(0, True)
    loss = ours.MAPPOLoss(actor, critic, value_norm=NORMS[norm](), clip_value=0.2)
    loss.set_keys(**KEYS)
    td = _data(actor, scale=5.0)
    # TorchRL's loss methods wherever MAPPO's classes define them (its PPO bases included)
    losses = [(k, ("forward", "loss_critic", "_critic_loss_inputs", "_log_weight")) for k in trl_mappo.MAPPOLoss.__mro__
              if issubclass(k, LossModule) and k is not LossModule]
    for cls, names in (*losses, (trl_adv.GAE, ("forward", "value_estimate")),
                       (trl_adv.MultiAgentGAE, ("_prepare_signals",))):
        for name in names:
            if name in cls.__dict__:
                monkeypatch.setattr(cls, name, raiser(f"{cls.__name__}.{name}"))
    for cls in (trl_vn.PopArtValueNorm, trl_vn.RunningValueNorm, trl_vn.PercentileValueNorm):
        for name in ("update", "normalize", "denormalize", "scale", "_running_stats", "_var"):
            if name in cls.__dict__:
                monkeypatch.setattr(cls, name, raiser(f"{cls.__name__}.{name}"))
    before = {k: v.clone() for k, v in loss.value_norm.state_dict().items()}
    out = loss(td)
    loss_sum(out).backward()
    assert "value_clip_fraction" in out.keys()
    assert any(not torch.equal(before[k], v) for k, v in loss.value_norm.state_dict().items())


class _Halving(trl_vn.ValueNorm):
    """A user's own normaliser: its math is its own (called as TorchRL calls it)."""

    def __init__(self) -> None:
        super().__init__(shape=1)
        self.register_buffer("calls", torch.zeros(()))

    def update(self, value_target):
        self.calls += 1

    def normalize(self, value_target):
        return value_target / 2

    def denormalize(self, normalised_value):
        return normalised_value * 2

    def scale(self):
        return torch.full((1,), 2.0)


def test_a_users_own_value_norm_keeps_its_math():
    actor, critic = _nets(0, True)
    theirs = trl_mappo.MAPPOLoss(actor, critic, value_norm=_Halving())
    mine = ours.MAPPOLoss(copy.deepcopy(actor), copy.deepcopy(critic), value_norm=_Halving())
    for loss in (theirs, mine):
        loss.set_keys(**KEYS)
    td = _data(actor)
    torch.manual_seed(0)
    ref = theirs(td.clone())
    torch.manual_seed(0)
    out = mine(td.clone())
    assert_td_close(out, ref)
    assert mine.value_norm.calls.item() == theirs.value_norm.calls.item() == 1

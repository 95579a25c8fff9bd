"""Losses that stack copies of a network (SAC, TD3 ...): refused in the group with a clear
error; dendrites on the actor only with TorchRL's loss; dendrites everywhere (actor, twin
Q, target Qs) with the functional loss and the group's target networks."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch import nn
from torchrl.data import Bounded
from torchrl.modules import ProbabilisticActor, TanhNormal, ValueOperator

from tests.pai.helpers import SAC, TD3, fixed, mlp
from torchrl_functional.pai import NetworkSpec, PAIConfigError, PAIGroup

OBS, ACT, B = 4, 2, 16


def actor(seed: int = 0) -> ProbabilisticActor:
    net = nn.Sequential(mlp([OBS, 8, 2 * ACT], seed), NormalParamExtractor())
    module = TensorDictModule(net, in_keys=["observation"], out_keys=["loc", "scale"])
    return ProbabilisticActor(module, in_keys=["loc", "scale"], spec=Bounded(-1.0, 1.0, (ACT,)),
                              distribution_class=TanhNormal, return_log_prob=True)


class QNet(nn.Module):
    def __init__(self, seed: int) -> None:
        super().__init__()
        self.net = mlp([OBS + ACT, 8, 1], seed)

    def forward(self, observation: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([observation, action], -1))


def qvalue(seed: int = 1) -> ValueOperator:
    return ValueOperator(QNet(seed), in_keys=["observation", "action"], out_keys=["state_action_value"])


def transitions(seed: int) -> TensorDict:
    g = torch.Generator().manual_seed(seed)
    return TensorDict({
        "observation": torch.randn(B, OBS, generator=g),
        "action": torch.rand(B, ACT, generator=g) * 2 - 1,
        "next": {
            "observation": torch.randn(B, OBS, generator=g),
            "reward": torch.randn(B, 1, generator=g),
            "done": torch.zeros(B, 1, dtype=torch.bool),
            "terminated": torch.zeros(B, 1, dtype=torch.bool),
        },
    }, [B])


@pytest.mark.parametrize("build", [
    lambda a, q, q2: SAC.module(a, q),
    lambda a, q, q2: SAC.torchrl(a, q),
    lambda a, q, q2: SAC.torchrl(a, [q, q2], num_qvalue_nets=2),
    lambda a, q, q2: TD3.torchrl(a, q, action_spec=Bounded(-1.0, 1.0, (ACT,))),
], ids=["ours", "torchrl", "torchrl_list", "td3"])
def test_a_loss_stacking_a_group_network_is_refused(out_dir, build):
    group = PAIGroup(
        "sac",
        {"actor": NetworkSpec(actor(), lr=1e-3), "q": NetworkSpec(qvalue(), lr=1e-3),
         "q2": NetworkSpec(qvalue(2), lr=1e-3)},
        directory=out_dir,
    )
    loss = build(group["actor"], group["q"], group["q2"])
    with pytest.raises(PAIConfigError, match=r"(?s)stacked copies of the parameters of 'qvalue_network'.*"
                                             r"keep that network out of the group.*group.target"):
        group.track_loss(loss)


@pytest.mark.parametrize("cls", [SAC.module, SAC.torchrl], ids=["ours", "torchrl"])
def test_sac_with_dendrites_on_the_actor_only(out_dir, cls):
    """The Q networks stay the loss's (trained by their own optimizer); the loss, tracked
    after the actor's restructure, refreshes the actor only and keeps training both."""
    group = PAIGroup("sac", {"actor": NetworkSpec(actor(), lr=1e-2)}, directory=out_dir, settings=fixed(2))
    loss = cls(group["actor"], qvalue(), num_qvalue_nets=2)
    q_params = list(loss.qvalue_network_params.values(True, True))
    q_opt = torch.optim.Adam(q_params, lr=1e-2)

    def step(seed: int) -> TensorDict:
        out = loss(transitions(seed))
        group.zero_grad()
        q_opt.zero_grad()
        (out["loss_actor"] + out["loss_qvalue"]).backward()
        group.step()
        q_opt.step()
        return out

    for score in (0.0, 1.0):
        step(int(score))
        result = group.add_score(score)
    assert result.restructured
    group.track_loss(loss)  # after the restructure: the actor's new dendrites join the loss
    for score in (2.0, 3.0):  # and a second restructure, with the loss tracked
        step(int(score))
        result = group.add_score(score)
    assert result.restructured and group.num_dendrites == 2
    assert [id(p) for p in loss.qvalue_network_params.values(True, True)] == [id(p) for p in q_params]  # untouched
    assert loss.qvalue_network_params.batch_size == torch.Size([2])
    before = [p.detach().clone() for p in q_params]
    for seed in (4, 5):  # PAI starts the dendrite output weights at zero: two steps
        step(seed)
    assert all(not torch.equal(b, p) for b, p in zip(before, q_params))  # the Q copies train
    dendrites = {n: p for n, p in group["actor"].named_parameters()
                 if "dendrite_module.layers" in n and p.requires_grad}
    held = {id(p) for p in loss.parameters()}
    assert len(dendrites) == 8 and all(id(p) in held for p in dendrites.values())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in dendrites.values())


def sac_inputs(group: PAIGroup, data: TensorDict) -> TensorDict:
    """The entries of the functional SAC loss from the group's actor, twin Q and target Qs."""
    pi = group["actor"]
    with torch.no_grad():
        nxt = pi(data["next"].select("observation").clone())
        q_next = torch.stack([group.target(n)(nxt["observation"], nxt["action"]) for n in ("q1", "q2")])
    q = torch.stack([group[n](data["observation"], data["action"]) for n in ("q1", "q2")])
    cur = pi(data.select("observation").clone())
    q_actor = torch.stack([group[n](cur["observation"], cur["action"]) for n in ("q1", "q2")])
    return TensorDict({  # batch size []: the Q entries have a leading ensemble dimension
        "action": data["action"], "state_action_value": q, "state_action_value_actor": q_actor,
        "log_prob": cur["action_log_prob"],
        "next": {**{k: data["next", k] for k in ("reward", "done", "terminated")},
                 "state_action_value": q_next, "log_prob": nxt["action_log_prob"]},
    }, [])


def test_functional_sac_with_dendrites_on_actor_twin_q_and_targets(out_dir):
    nets = {"actor": actor(), "q1": QNet(1), "q2": QNet(2)}
    group = PAIGroup("sac", {n: NetworkSpec(m, lr=1e-2) for n, m in nets.items()}, directory=out_dir,
                     settings=fixed(2))
    targets = [group.target("q1"), group.target("q2")]
    log_alpha = nn.Parameter(torch.zeros(()))
    alpha_opt = torch.optim.Adam([log_alpha], lr=1e-2)

    def step(seed: int) -> None:
        out = SAC.function(sac_inputs(group, transitions(seed)), log_alpha=log_alpha, gamma=0.9)
        group.zero_grad()
        alpha_opt.zero_grad()
        out["loss_qvalue"].backward(inputs=group.parameters("q1", "q2"))
        out["loss_actor"].backward(inputs=group.parameters("actor"))  # the critics are not trained by it
        out["loss_alpha"].backward(inputs=[log_alpha])
        group.step()
        alpha_opt.step()
        for target in targets:
            target.update(0.5)

    for score in (0.0, 1.0):
        step(int(score))
        before = {k: v.clone() for k, v in targets[0].params.items()}
        result = group.add_score(score)
    assert result.restructured and result.dendrites_added == 1
    # the target follows the structure: old entries keep their values, new ones are copies
    q1 = dict(group["q1"].named_parameters())
    assert targets[0].params.keys() == q1.keys() and len(q1) > len(before)
    for name, value in targets[0].params.items():
        if name in before and before[name].shape == value.shape:
            assert torch.equal(value, before[name]), name
        else:
            assert torch.equal(value, q1[name].detach()) and value.data_ptr() != q1[name].data_ptr()
    # ... and runs like the network with its values loaded
    x, a = torch.randn(5, OBS), torch.rand(5, ACT)
    with torch.no_grad():
        shifted = {k: v + 0.1 for k, v in targets[0].params.items()}
        targets[0].load(shifted)
        expected = torch.func.functional_call(group["q1"], shifted, (x, a))
        assert torch.equal(targets[0](x, a), expected)
        assert not torch.equal(expected, group["q1"](x, a))
    for seed in (2, 3, 4):
        step(seed)
    for name in nets:  # every network trains its new dendrites
        dendrites = [p for n, p in group[name].named_parameters() if "dendrite_module.layers" in n and p.requires_grad]
        assert dendrites and all(p.grad is not None and p.grad.abs().sum() > 0 for p in dendrites), name
    assert all(t.params.keys() == dict(group[t.name].named_parameters()).keys() for t in targets)

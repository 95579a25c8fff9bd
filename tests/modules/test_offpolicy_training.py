"""Training smoke tests: each drop-in off-policy module inside a real TorchRL pipeline
(environment, collector, replay buffer, target-network updater, optimizer) for a few
hundred frames. Asserts shapes, finiteness, that parameters move, that target parameters
follow through the updater and that priorities reach a prioritized buffer."""

from __future__ import annotations

import warnings

import pytest
import torch
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch import nn
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, TensorDictPrioritizedReplayBuffer
from torchrl.envs import GymEnv, StepCounter, TransformedEnv
from torchrl.modules import MLP, ProbabilisticActor, QValueActor, TanhNormal, ValueOperator
from torchrl.objectives import HardUpdate, SoftUpdate

from torchrl_functional import modules as ours

FRAMES, PER_BATCH, UPDATES, BATCH = 256, 64, 2, 32


def _env(name):
    return TransformedEnv(GymEnv(name), StepCounter(max_steps=50))


class _Q(nn.Module):
    def __init__(self, obs, act):
        super().__init__()
        self.net = MLP(in_features=obs + act, out_features=1, num_cells=[32])

    def forward(self, o, a):
        return self.net(torch.cat([o, a], -1))


def _continuous(kind, env):
    obs = env.observation_spec["observation"].shape[-1]
    act = env.action_spec.shape[-1]
    spec = env.action_spec
    qnet = ValueOperator(_Q(obs, act), in_keys=["observation", "action"])
    vnet = ValueOperator(MLP(in_features=obs, out_features=1, num_cells=[32]), in_keys=["observation"])
    if kind in ("DDPGLoss", "TD3Loss"):
        actor = TensorDictModule(nn.Sequential(MLP(in_features=obs, out_features=act, num_cells=[32]), nn.Tanh()),
                                 in_keys=["observation"], out_keys=["action"])
        policy = actor
        if kind == "DDPGLoss":
            loss = ours.DDPGLoss(actor, qnet)
        else:
            loss = ours.TD3Loss(actor, qnet, action_spec=spec)
    else:
        module = TensorDictModule(nn.Sequential(MLP(in_features=obs, out_features=2 * act, num_cells=[32]),
                                                NormalParamExtractor()), in_keys=["observation"], out_keys=["loc", "scale"])
        actor = ProbabilisticActor(module, in_keys=["loc", "scale"], spec=spec, distribution_class=TanhNormal,
                                   distribution_kwargs={"low": spec.space.low, "high": spec.space.high},
                                   return_log_prob=True)
        policy = actor
        loss = {"SACLoss": lambda: ours.SACLoss(actor, qnet),
                "IQLLoss": lambda: ours.IQLLoss(actor, qnet, vnet),
                "CQLLoss": lambda: ours.CQLLoss(actor, qnet, num_random=3)}[kind]()
    return loss, policy


def _discrete(kind, env):
    obs = env.observation_spec["observation"].shape[-1]
    n = env.action_spec.space.n
    spec = env.action_spec
    if kind in ("DQNLoss", "DiscreteCQLLoss"):
        qactor = QValueActor(MLP(in_features=obs, out_features=n, num_cells=[32]), in_keys=["observation"], spec=spec)
        cls = ours.DQNLoss if kind == "DQNLoss" else ours.DiscreteCQLLoss
        return cls(qactor, action_space=spec), qactor
    logits = TensorDictModule(MLP(in_features=obs, out_features=n, num_cells=[32]), in_keys=["observation"],
                              out_keys=["logits"])
    from torchrl.modules import OneHotCategorical

    actor = ProbabilisticActor(logits, in_keys=["logits"], spec=spec, distribution_class=OneHotCategorical,
                               return_log_prob=True)
    if kind == "DiscreteSACLoss":
        qnet = TensorDictModule(MLP(in_features=obs, out_features=n, num_cells=[32]), in_keys=["observation"],
                                out_keys=["action_value"])
        return ours.DiscreteSACLoss(actor, qnet, action_space=spec, num_actions=n), actor
    qnet = TensorDictModule(MLP(in_features=obs, out_features=n, num_cells=[32]), in_keys=["observation"],
                            out_keys=["state_action_value"])
    vnet = ValueOperator(MLP(in_features=obs, out_features=1, num_cells=[32]), in_keys=["observation"])
    return ours.DiscreteIQLLoss(actor, qnet, vnet, action_space=spec), actor


CASES = [
    ("DDPGLoss", "Pendulum-v1"), ("TD3Loss", "Pendulum-v1"), ("SACLoss", "Pendulum-v1"),
    ("IQLLoss", "Pendulum-v1"), ("CQLLoss", "Pendulum-v1"),
    ("DQNLoss", "CartPole-v1"), ("DiscreteSACLoss", "CartPole-v1"),
    ("DiscreteIQLLoss", "CartPole-v1"), ("DiscreteCQLLoss", "CartPole-v1"),
]


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("kind, env_name", CASES, ids=[c[0] for c in CASES])
def test_trains_in_a_torchrl_pipeline(kind, env_name):
    torch.manual_seed(0)
    env = _env(env_name)
    env.set_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loss, policy = (_continuous if env_name == "Pendulum-v1" else _discrete)(kind, env)
    has_target = any(name.startswith("target_") and p.numel() for name, p in loss.named_buffers())
    updater = (HardUpdate(loss, value_network_update_interval=2) if kind in ("DQNLoss", "DiscreteCQLLoss")
               else SoftUpdate(loss, tau=0.5))
    optim = torch.optim.Adam(loss.parameters(), lr=1e-2)
    rb = TensorDictPrioritizedReplayBuffer(alpha=0.7, beta=0.5, storage=LazyTensorStorage(FRAMES),
                                           batch_size=BATCH, priority_key="td_error")
    before = {k: v.detach().clone() for k, v in loss.named_parameters()}
    targets_before = {k: v.detach().clone() for k, v in loss.named_buffers() if k.startswith("target_")}
    collector = Collector(env, policy, frames_per_batch=PER_BATCH, total_frames=FRAMES)
    steps = 0
    for data in collector:
        rb.extend(data.reshape(-1))
        for _ in range(UPDATES):
            sample = rb.sample()
            out = loss(sample)
            total = sum(v for k, v in out.items() if k.startswith("loss"))
            assert total.ndim == 0 and torch.isfinite(total), (kind, out)
            assert "td_error" in sample.keys() and sample["td_error"].shape[0] == BATCH
            assert torch.isfinite(sample["td_error"]).all()
            optim.zero_grad()
            total.backward()
            optim.step()
            rb.update_tensordict_priority(sample)
            updater.step()
            steps += 1
    collector.shutdown()
    assert steps == FRAMES // PER_BATCH * UPDATES
    moved = [k for k, v in loss.named_parameters() if not torch.equal(v.detach(), before[k])]
    assert moved, "no parameter changed"
    if has_target:
        assert any(not torch.equal(v, targets_before[k]) for k, v in loss.named_buffers() if k in targets_before)

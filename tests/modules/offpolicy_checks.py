"""Checks every off-policy drop-in module's family test file runs: ``torch.func.functional_call``
with swapped parameters equals loading them (:func:`check_functional_call`), and the module
inside a real TorchRL pipeline (environment, collector, replay buffer, target-network updater,
optimizer) for a few hundred frames (:func:`train_in_pipeline`: shapes, finiteness, parameters
move, target parameters follow through the updater, priorities reach a prioritized buffer)."""

from __future__ import annotations

import copy
import warnings

import torch
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch import nn
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, TensorDictPrioritizedReplayBuffer
from torchrl.envs import GymEnv, StepCounter, TransformedEnv
from torchrl.modules import MLP, OneHotCategorical, ProbabilisticActor, QValueActor, TanhNormal, ValueOperator
from torchrl.objectives import HardUpdate, SoftUpdate

from tests.modules import offpolicy_parity_common as P

FRAMES, PER_BATCH, UPDATES, BATCH = 256, 64, 2, 32


def check_functional_call(make, discrete=None):
    """``torch.func.functional_call`` on ``make()`` with swapped parameters equals loading them
    (values and gradients, target networks included) and leaves the module as it was."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loss = make()
    data = P.make_data((8,), discrete=discrete, seed=1)
    g = torch.Generator().manual_seed(0)
    new = {n: (p.detach() + 0.2 * torch.randn(p.shape, generator=g)).requires_grad_()
           for n, p in loss.named_parameters()}
    loaded = copy.deepcopy(loss)
    with torch.no_grad():
        for n, p in loaded.named_parameters():
            p.copy_(new[n])
    before = {n: p.detach().clone() for n, p in loss.named_parameters()}
    original = loss(data.clone())

    torch.manual_seed(0)
    got = torch.func.functional_call(loss, new, (data.clone(),))
    torch.manual_seed(0)
    want = loaded(data.clone())
    for key in want.keys():
        torch.testing.assert_close(got[key], want[key], msg=lambda m, key=key: f"{key}: {m}")
    assert any(not torch.allclose(got[k], original[k]) for k in original.keys() if k.startswith("loss"))

    P.loss_sum(got).backward()
    P.loss_sum(want).backward()
    for n, p in loaded.named_parameters():
        if p.grad is None:
            assert new[n].grad is None or torch.count_nonzero(new[n].grad) == 0, n
        else:
            torch.testing.assert_close(new[n].grad, p.grad, msg=lambda m, n=n: f"grad {n}: {m}")
    # the module computes with its own parameters again
    assert all(torch.equal(p, before[n]) for n, p in loss.named_parameters())
    assert all(p.grad is None for p in loss.parameters())


# ----------------------------------------------------------------------------- pipeline


def _env(name):
    return TransformedEnv(GymEnv(name), StepCounter(max_steps=50))


class _Q(nn.Module):
    def __init__(self, obs, act):
        super().__init__()
        self.net = MLP(in_features=obs + act, out_features=1, num_cells=[32])

    def forward(self, o, a):
        return self.net(torch.cat([o, a], -1))


def _obs(env):
    return env.observation_spec["observation"].shape[-1]


def qnet(env):
    """Q(s, a) for a continuous action."""
    return ValueOperator(_Q(_obs(env), env.action_spec.shape[-1]), in_keys=["observation", "action"])


def vnet(env):
    return ValueOperator(MLP(in_features=_obs(env), out_features=1, num_cells=[32]), in_keys=["observation"])


def det_actor(env):
    act = env.action_spec.shape[-1]
    return TensorDictModule(nn.Sequential(MLP(in_features=_obs(env), out_features=act, num_cells=[32]), nn.Tanh()),
                            in_keys=["observation"], out_keys=["action"])


def stoch_actor(env):
    spec, act = env.action_spec, env.action_spec.shape[-1]
    module = TensorDictModule(nn.Sequential(MLP(in_features=_obs(env), out_features=2 * act, num_cells=[32]),
                                            NormalParamExtractor()), in_keys=["observation"], out_keys=["loc", "scale"])
    return ProbabilisticActor(module, in_keys=["loc", "scale"], spec=spec, distribution_class=TanhNormal,
                              distribution_kwargs={"low": spec.space.low, "high": spec.space.high},
                              return_log_prob=True)


def qvalue_actor(env):
    """A Q-value actor over a discrete action."""
    return QValueActor(MLP(in_features=_obs(env), out_features=env.action_spec.space.n, num_cells=[32]),
                       in_keys=["observation"], spec=env.action_spec)


def discrete_actor(env):
    logits = TensorDictModule(MLP(in_features=_obs(env), out_features=env.action_spec.space.n, num_cells=[32]),
                              in_keys=["observation"], out_keys=["logits"])
    return ProbabilisticActor(logits, in_keys=["logits"], spec=env.action_spec, distribution_class=OneHotCategorical,
                              return_log_prob=True)


def discrete_qnet(env, out_key):
    """Q(s, .) over a discrete action, written to ``out_key``."""
    return TensorDictModule(MLP(in_features=_obs(env), out_features=env.action_spec.space.n, num_cells=[32]),
                            in_keys=["observation"], out_keys=[out_key])


def train_in_pipeline(env_name, make, *, hard_update=False):
    """``make(env) -> (loss, policy)`` trained for :data:`FRAMES` frames on ``env_name``."""
    torch.manual_seed(0)
    env = _env(env_name)
    env.set_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loss, policy = make(env)
    has_target = any(name.startswith("target_") and p.numel() for name, p in loss.named_buffers())
    updater = HardUpdate(loss, value_network_update_interval=2) if hard_update else SoftUpdate(loss, tau=0.5)
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
            assert total.ndim == 0 and torch.isfinite(total), out
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

"""DreamerV3 drop-ins beyond the registry's parity cases: ``replay_value_loss`` (values and every
parameter gradient vs TorchRL), the return statistics the actor loss stores, and the
``returns_over_horizon`` option against a float64 loop."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torchrl import objectives as trl

from tests.specs import _dreamer_v3 as D
from tests.specs._modules import assert_grads_close
from torchrl_functional import modules

torch.set_num_threads(1)


def _replay(seed: int) -> TensorDict:
    g = torch.Generator().manual_seed(seed)
    done = torch.zeros(2, 5, 1, dtype=torch.bool)
    done[1, 1] = True
    return TensorDict({
        "state": torch.randn(2, 5, D.STATE, generator=g),
        "bootstrap": torch.randn(2, 5, generator=g) * 3,
        "next": {"reward": torch.randn(2, 5, 1, generator=g), "done": done, "terminated": done.clone()},
    }, [2, 5])


@pytest.mark.parametrize("two_hot, kwargs", [
    (False, {}),
    (False, {"reduction": "none", "slow_critic_regularization": 0.5}),
    (True, {"reduction": "sum", "slow_critic_regularization": 1.0}),
])
def test_replay_value_loss_matches_torchrl(two_hot, kwargs):
    case = D.value_case("replay", trl.DreamerV3ValueLoss, modules.DreamerV3ValueLoss, two_hot=two_hot, batch=(2, 5),
                        **kwargs)
    ref, mine = case.build()
    data = _replay(0)
    out_ref = ref.replay_value_loss(data.clone(), horizon=4.0, lmbda=0.8)
    out_mine = mine.replay_value_loss(data.clone(), horizon=4.0, lmbda=0.8)
    torch.testing.assert_close(out_mine["loss_replay_value"], out_ref["loss_replay_value"], rtol=1e-5, atol=1e-6)
    out_ref["loss_replay_value"].sum().backward()
    out_mine["loss_replay_value"].sum().backward()
    assert_grads_close(case, mine, ref)


def _actor_pair(**kwargs):
    case = D.actor_case("state", trl.DreamerV3ActorLoss, modules.DreamerV3ActorLoss, **kwargs)
    return case, *case.build()


@pytest.mark.parametrize("training", [True, False])
def test_return_statistics_are_stored_as_torchrl_does(training):
    case, ref, mine = _actor_pair(use_reinforce=True)
    for loss in (ref, mine):
        loss.train(training)
        loss.retnorm.low.fill_(-1.0)
        loss.retnorm.high.fill_(0.5)
    for seed in (1, 2):  # two steps: the second starts from the stored statistics
        data = case.data(seed)
        torch.manual_seed(seed)
        out_ref, fake_ref = ref(data.clone())
        torch.manual_seed(seed)
        out_mine, fake_mine = mine(data.clone())
        torch.testing.assert_close(mine.retnorm.low, ref.retnorm.low)
        torch.testing.assert_close(mine.retnorm.high, ref.retnorm.high)
        for key in ("lambda_target", "discount_weight"):
            torch.testing.assert_close(fake_mine[key], fake_ref[key])
        torch.testing.assert_close(out_mine["return_scale"], out_ref["return_scale"])
    assert (mine.retnorm.low.item() != -1.0) is training


def test_returns_over_horizon_follows_the_imagined_time_axis():
    case, ref, mine = _actor_pair(entropy_bonus=0.0, return_normalization=False)
    fixed = modules.DreamerV3ActorLoss(mine.actor_model, mine.__dict__["value_model"], mine.model_based_env,
                                       imagination_horizon=4, entropy_bonus=0.0, return_normalization=False,
                                       returns_over_horizon=True)
    data = case.data(3)
    torch.manual_seed(0)
    _, quirk = mine(data.clone())
    torch.manual_seed(0)
    _, fake = fixed(data.clone())
    reward = fake["next", "reward"].double()
    value = mine.__dict__["value_model"](fake.get("next").clone())["state_value"].double()
    gamma, lmbda = 0.99, 0.95  # TorchRL's TD(lambda) defaults
    for b in range(reward.shape[0]):
        nxt, want = value[b, -1, 0].item(), []
        for t in reversed(range(reward.shape[1])):
            nxt = reward[b, t, 0].item() + gamma * ((1 - lmbda) * value[b, t, 0].item() + lmbda * nxt)
            want.append(nxt)
        torch.testing.assert_close(fake["lambda_target"][b, :, 0].double(), torch.tensor(want[::-1], dtype=torch.float64),
                                   rtol=1e-5, atol=1e-5)
    # TorchRL's default: one-step targets r + gamma V(s')
    torch.testing.assert_close(quirk["lambda_target"].double(), (reward + gamma * value), rtol=1e-5, atol=1e-5)

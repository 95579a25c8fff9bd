"""distributional_dqn_loss and categorical_projection: a float64 loop, hand-computed numbers,
TorchRL's class on n-step data, bad input."""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch
from tensordict import TensorDict

from tests.specs import by_name
from tests.specs.distributional_dqn import ATOMS, SUPPORT, distributional_actor, inputs
from torchrl_functional.errors import EntryShapeError, HyperparameterError, MissingEntryError
from torchrl_functional.functional import categorical_projection, distributional_dqn_loss


def projection_loop(probs, atoms, support):
    """Bellemare et al.'s Algorithm 1 in plain Python floats (TorchRL's bracket rule at integers)."""
    n = len(support)
    v_min, v_max = min(support), max(support)
    delta = (v_max - v_min) / (n - 1)
    out = [0.0] * n
    for p, z in zip(probs, atoms):
        b = (min(max(z, v_min), v_max) - v_min) / delta
        low, up = math.floor(b), math.ceil(b)
        if low == up:
            if up > 0:
                low -= 1
            else:
                up += 1
        out[low] += p * (up - b)
        out[up] += p * (b - low)
    return out


def test_projection_matches_loop_float64():
    g = torch.Generator().manual_seed(0)
    support = torch.linspace(-3.0, 2.0, 6, dtype=torch.float64)
    probs = torch.rand(7, 6, generator=g, dtype=torch.float64).softmax(-1)
    atoms = 4 * torch.randn(7, 6, generator=g, dtype=torch.float64)
    atoms[0, :3] = support[:3]  # atoms exactly on the support (both ends included)
    atoms[1, 0] = support[-1]
    got = categorical_projection(probs, atoms, support)
    for i in range(7):
        want = projection_loop(probs[i].tolist(), atoms[i].tolist(), support.tolist())
        torch.testing.assert_close(got[i], torch.tensor(want, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(got.sum(-1), probs.sum(-1))  # mass is conserved


def test_projection_by_hand():
    support = torch.tensor([0.0, 1.0, 2.0])
    got = categorical_projection(torch.tensor([0.5, 0.25, 0.25]), torch.tensor([0.5, 1.0, 7.0]), support)
    # 0.5 split evenly between 0 and 1; 0.25 on 1 exactly; 0.25 clamped to 2
    torch.testing.assert_close(got, torch.tensor([0.25, 0.5, 0.25]))


def test_loss_by_hand_terminated():
    """Terminated samples project ``r`` alone: cross-entropy against the two neighbouring atoms."""
    td = inputs(0)
    td["next", "terminated"][:] = True
    td["next", "reward"][:] = 0.5  # support -2..2 step 1: splits 0.5/0.5 between atoms 2 and 3
    out = distributional_dqn_loss(td, support=SUPPORT, reduction="none")
    a = td["action"]
    log_p_a = td["action_value"][torch.arange(6), :, a]
    want = -(0.5 * log_p_a[:, 2] + 0.5 * log_p_a[:, 3])
    torch.testing.assert_close(out["loss"], want)
    torch.testing.assert_close(out["td_error"], want.unsqueeze(-1))


def test_gamma_and_reward_keep_their_graph():
    td = inputs(1, torch.float64)
    gamma = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    reward = td["next", "reward"].clone().requires_grad_(True)
    td["next", "reward"] = reward
    out = distributional_dqn_loss(td, support=SUPPORT.double(), gamma=gamma)
    g_gamma, g_reward = torch.autograd.grad(out["loss"], (gamma, reward))
    eps = 1e-6
    fd = (distributional_dqn_loss(td, support=SUPPORT.double(), gamma=0.7 + eps)["loss"]
          - distributional_dqn_loss(td, support=SUPPORT.double(), gamma=0.7 - eps)["loss"]) / (2 * eps)
    torch.testing.assert_close(g_gamma, fd.detach(), rtol=1e-5, atol=1e-7)
    assert g_reward.abs().sum() > 0


def test_module_matches_torchrl_on_nstep_data():
    """n-step data (``steps_to_next_obs`` ``[B, 1]``): TorchRL discounts by ``gamma ** steps``."""
    warnings.simplefilter("ignore")
    actor = distributional_actor()
    spec = by_name("distributional_dqn_loss")
    ref = spec.torchrl(actor, gamma=0.9)
    mine = spec.module(copy.deepcopy(actor), gamma=0.9)
    mine.load_state_dict(ref.state_dict())
    g = torch.Generator().manual_seed(3)
    B = 8
    td = TensorDict({
        "observation": torch.randn(B, 4, generator=g), "action": torch.randint(3, (B,), generator=g),
        "steps_to_next_obs": torch.randint(1, 4, (B, 1), generator=g),
        "next": {"observation": torch.randn(B, 4, generator=g), "reward": torch.randn(B, 1, generator=g),
                 "done": torch.zeros(B, 1, dtype=torch.bool), "terminated": torch.zeros(B, 1, dtype=torch.bool)},
    }, [B])
    d_ref, d_mine = td.clone(), td.clone()
    out_ref, out_mine = ref(d_ref), mine(d_mine)
    torch.testing.assert_close(out_mine["loss"], out_ref["loss"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(d_mine["td_error"], d_ref["td_error"], rtol=1e-5, atol=1e-6)
    out_ref["loss"].backward()
    out_mine["loss"].backward()
    for (name, p), q in zip(ref.named_parameters(), mine.parameters()):
        if p.grad is not None:
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-5, atol=1e-6, msg=name)


def test_bad_input():
    td = inputs(0, one_hot=True)
    td["action"][0] = 1  # two or more actions at once
    with pytest.raises(EntryShapeError, match="exactly one 1"):
        distributional_dqn_loss(td, support=SUPPORT, action_space="one_hot")
    td = inputs(0)
    with pytest.raises(EntryShapeError, match="support"):
        distributional_dqn_loss(td, support=SUPPORT[:1])
    with pytest.raises(EntryShapeError, match="action_value"):
        distributional_dqn_loss(td, support=torch.linspace(0, 1, ATOMS + 1))
    with pytest.raises(MissingEntryError, match="bootstrap action"):
        distributional_dqn_loss(td.exclude(("next", "action")), support=SUPPORT)
    td["steps_to_next_obs"] = torch.ones(6, dtype=torch.int64)
    td["gamma"] = torch.full((6,), 0.9)
    with pytest.raises(HyperparameterError, match="gamma"):
        distributional_dqn_loss(td, support=SUPPORT)

"""tqc_loss and its kernels: float64 loops, TorchRL's published numbers, bad input."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from tests.specs.tqc import inputs
from torchrl_functional.errors import HyperparameterError
from torchrl_functional.functional import quantile_huber_loss, tqc_loss, tqc_target, truncated_quantiles


def huber_loop(quantiles, target):
    k = len(quantiles)
    total = 0.0
    for i, q in enumerate(quantiles):
        tau = (i + 0.5) / k
        for y in target:
            u = y - q
            h = 0.5 * u * u if abs(u) <= 1 else abs(u) - 0.5
            total += abs(tau - (1.0 if u < 0 else 0.0)) * h
    return total / (k * len(target))


def test_quantile_huber_matches_loop_float64():
    g = torch.Generator().manual_seed(0)
    q = 2 * torch.randn(3, 5, 4, generator=g, dtype=torch.float64)
    y = 2 * torch.randn(5, 7, generator=g, dtype=torch.float64)
    got = quantile_huber_loss(q, y)
    assert got.shape == (3, 5)
    for e in range(3):
        for b in range(5):
            assert got[e, b].item() == pytest.approx(huber_loop(q[e, b].tolist(), y[b].tolist()), abs=1e-12)


def test_truncated_quantiles_by_hand():
    q = torch.tensor([[[0.0, 100.0, 101.0]], [[1.0, 2.0, 3.0]]])  # [E=2, B=1, K=3]
    torch.testing.assert_close(truncated_quantiles(q, 1), torch.tensor([[0.0, 1.0, 2.0, 3.0]]))
    torch.testing.assert_close(truncated_quantiles(q, 0), torch.tensor([[0.0, 1.0, 2.0, 3.0, 100.0, 101.0]]))


def test_numbers_of_torchrl_contract():
    """TorchRL's own hand-computed case: critics [0, 100, 101] and [1, 2, 3], one atom dropped per
    critic, zero reward and log-probs, gamma 1."""
    q = torch.tensor([[[0.0, 100.0, 101.0]], [[1.0, 2.0, 3.0]]], requires_grad=True)
    td = TensorDict({
        "state_action_value": q, "state_action_value_actor": q.detach(), "log_prob": torch.zeros(1),
        "next": {"state_action_value": q.detach(), "log_prob": torch.zeros(1), "reward": torch.zeros(1, 1),
                 "done": torch.zeros(1, 1, dtype=torch.bool), "terminated": torch.zeros(1, 1, dtype=torch.bool)},
    }, [])
    torch.testing.assert_close(tqc_target(td, top_quantiles_to_drop=1, gamma=1.0), torch.tensor([[0.0, 1.0, 2.0, 3.0]]))
    out = tqc_loss(td, top_quantiles_to_drop=1, gamma=1.0, reduction="none", target_entropy=None)
    torch.testing.assert_close(out["loss_actor"], torch.tensor([-34.5]))
    torch.testing.assert_close(out["loss_qvalue"], torch.tensor([22.125]))
    torch.testing.assert_close(out["td_error"], torch.tensor([66.5]))
    (grad,) = torch.autograd.grad(out["loss_qvalue"].sum(), q)
    torch.testing.assert_close(grad[:, 0], torch.tensor([[-1 / 24, 1 / 6, 1 / 18], [1 / 24, 1 / 24, 1 / 24]]))


def test_target_keeps_gamma_graph_only():
    td = inputs(3, torch.float64)
    gamma = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    out = tqc_loss(td, top_quantiles_to_drop=1, gamma=gamma)
    (g,) = torch.autograd.grad(out["loss_qvalue"], gamma)
    eps = 1e-6
    fd = (tqc_loss(td, top_quantiles_to_drop=1, gamma=0.8 + eps)["loss_qvalue"]
          - tqc_loss(td, top_quantiles_to_drop=1, gamma=0.8 - eps)["loss_qvalue"]) / (2 * eps)
    torch.testing.assert_close(g, fd, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("bad", [torch.tensor(1), 1.0, True, -1, 4])
def test_top_quantiles_to_drop_is_an_int(bad):
    with pytest.raises(HyperparameterError, match="top_quantiles_to_drop") as info:
        tqc_loss(inputs(0), top_quantiles_to_drop=bad)
    assert info.value.loss == "tqc_loss"
    if isinstance(bad, torch.Tensor):
        assert "Python int" in str(info.value)


def test_nstep_target_discounts_each_sample_by_gamma_to_its_steps():
    """n-step data (TorchRL's contract test stores steps_to_next_obs): the truncated atoms of
    sample b are discounted by gamma ** steps[b], every atom of a sample alike."""
    q = torch.tensor([[[0.0, 1.0, 9.0], [2.0, 4.0, 9.0]], [[1.0, 3.0, 9.0], [5.0, 6.0, 9.0]]])  # [E=2, B=2, K=3]
    td = TensorDict({
        "state_action_value": q, "state_action_value_actor": q, "log_prob": torch.zeros(2),
        "steps_to_next_obs": torch.tensor([1, 3]),
        "next": {"state_action_value": q, "log_prob": torch.zeros(2), "reward": torch.ones(2, 1),
                 "done": torch.zeros(2, 1, dtype=torch.bool), "terminated": torch.zeros(2, 1, dtype=torch.bool)},
    }, [])
    atoms = truncated_quantiles(q, 1)  # [B, 4]: per sample the sorted atoms without the top of each critic
    want = 1.0 + torch.tensor([[0.5], [0.5 ** 3]]) * atoms
    torch.testing.assert_close(tqc_target(td, top_quantiles_to_drop=1, gamma=0.5), want)


def test_average_rewards_standardises_the_reward_over_every_atom():
    """TorchRL's TQCLoss hands its TD(0) estimator the reward expanded to every kept atom, so
    ``average_rewards`` divides by the unbiased std over B x M entries (float64 by hand)."""
    td = inputs(0, torch.float64)
    d, gamma = 1, 0.9
    raw = tqc_target(td, top_quantiles_to_drop=d, gamma=gamma)
    reward = td["next", "reward"].expand_as(raw)  # [B, M]
    standardised = (reward - reward.mean()) / reward.std()
    want = raw - reward + standardised  # the same bootstrap, the reward swapped
    torch.testing.assert_close(tqc_target(td, top_quantiles_to_drop=d, gamma=gamma, average_rewards=True), want)
    per_sample = (td["next", "reward"] - td["next", "reward"].mean()) / td["next", "reward"].std()
    assert not torch.allclose(want, raw - reward + per_sample)  # the std over B rewards is another number
    out = tqc_loss(td, top_quantiles_to_drop=d, gamma=gamma, average_rewards=True)
    assert not torch.allclose(out["loss_qvalue"], tqc_loss(td, top_quantiles_to_drop=d, gamma=gamma)["loss_qvalue"])
    with pytest.raises(HyperparameterError, match="tqc_loss.*average_rewards"):
        tqc_loss(td, average_rewards=torch.tensor(True))

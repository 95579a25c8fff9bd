"""The LLM kernels against float64 loops, hand-computed numbers and TorchRL: token log-probs
and entropies (``LLMMaskedCategorical``), KL estimators, token aggregation, and the
group-relative advantage (TorchRL's ``MCAdvantage`` transform itself is the reference)."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from torchrl.modules.distributions import LLMMaskedCategorical
from torchrl.objectives.llm import MCAdvantage, k3_kl_token_estimate

from torchrl_functional.errors import EntryShapeError, HyperparameterError
from torchrl_functional.functional.llm import (
    aggregate_token_loss,
    dynamic_sampling_mask,
    group_relative_advantage,
    kl_token_estimate,
    sequence_sum,
    token_entropy,
    token_log_probs,
    trajectory_return,
)

DT = torch.float64


def test_token_log_probs_and_entropy_match_llm_masked_categorical():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 11, generator=g, requires_grad=True)
    tokens = torch.randint(11, (3, 5), generator=g)
    mask = torch.rand(3, 5, generator=g) > 0.3
    dist = LLMMaskedCategorical(logits, mask)
    ours_lp, ours_h = token_log_probs(logits, tokens, mask), token_entropy(logits, mask)
    ref_lp, ref_h = dist.log_prob(tokens), dist.entropy()
    torch.testing.assert_close(ours_lp, ref_lp, rtol=0, atol=1e-6)
    torch.testing.assert_close(ours_h, ref_h, rtol=0, atol=1e-6)
    for ours, ref in ((ours_lp, ref_lp), (ours_h, ref_h)):
        (g1,) = torch.autograd.grad(ours.sum(), logits, retain_graph=True)
        (g2,) = torch.autograd.grad(ref.sum(), logits, retain_graph=True)
        torch.testing.assert_close(g1, g2, rtol=1e-5, atol=1e-6)


def test_token_log_probs_and_entropy_loop():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 4, 6, generator=g, dtype=DT)
    tokens = torch.randint(6, (2, 4), generator=g)
    tokens[0, 0] = -100  # a position without a token
    lp, h = token_log_probs(logits, tokens), token_entropy(logits)
    for b in range(2):
        for t in range(4):
            z = [math.exp(v) for v in logits[b, t].tolist()]
            p = [v / sum(z) for v in z]
            want = 0.0 if tokens[b, t] < 0 else math.log(p[tokens[b, t]])
            assert lp[b, t].item() == pytest.approx(want, abs=1e-12)
            assert h[b, t].item() == pytest.approx(-sum(q * math.log(q) for q in p), abs=1e-12)


def test_kl_estimators_hand_computed():
    target = torch.tensor([-1.0, -2.0, -0.5], dtype=DT)
    sample = torch.tensor([-1.5, -1.0, -0.5], dtype=DT)
    d = [0.5, -1.0, 0.0]
    assert kl_token_estimate(target, sample, "k1").tolist() == pytest.approx([-x for x in d])
    assert kl_token_estimate(target, sample, "k2").tolist() == pytest.approx([x * x / 2 for x in d])
    assert kl_token_estimate(target, sample, "k3").tolist() == pytest.approx([math.exp(x) - 1 - x for x in d])
    torch.testing.assert_close(kl_token_estimate(target, sample), k3_kl_token_estimate(target, sample))
    with pytest.raises(HyperparameterError, match="estimator"):
        kl_token_estimate(target, sample, "k4")
    with pytest.raises(EntryShapeError, match="log_prob"):
        kl_token_estimate(target, sample[:2])


@pytest.mark.parametrize("aggregation", ["token_mean", "prompt_mean", "none"])
def test_aggregate_token_loss_loop(aggregation):
    g = torch.Generator().manual_seed(2)
    value = torch.randn(3, 5, 1, generator=g, dtype=DT)
    mask = torch.rand(3, 5, generator=g) > 0.4
    mask[2] = False  # a sequence without tokens counts 0 in the prompt mean
    value[~mask] = float("nan")  # never leaks
    out = aggregate_token_loss(value, mask, aggregation)
    cells = [[value[b, t, 0].item() for t in range(5) if mask[b, t]] for b in range(3)]
    if aggregation == "token_mean":
        flat = [x for row in cells for x in row]
        assert out.shape == () and out.item() == pytest.approx(sum(flat) / len(flat))
    elif aggregation == "prompt_mean":
        want = sum(sum(row) / max(1, len(row)) for row in cells) / 3
        assert out.shape == (1,) and out.item() == pytest.approx(want)
    else:
        assert out.shape == value.shape and torch.equal(out[~mask], torch.zeros_like(out[~mask]))
        assert torch.equal(out[mask], value[mask])


def test_sequence_sum():
    value = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=DT)
    mask = torch.tensor([[True, False, True], [False, False, False]])
    assert sequence_sum(value, mask).tolist() == [4.0, 0.0]
    assert sequence_sum(value, mask, normalize=True).tolist() == [2.0, 0.0]


def _loop_standardise(values):
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return [(v - mean) / max(std, 1e-6) for v in values]


@pytest.mark.parametrize("group", [2, 3, 5])
def test_group_relative_advantage_loop(group):
    g = torch.Generator().manual_seed(group)
    rewards = torch.randn(4, group, generator=g, dtype=DT)
    rewards[1] = 0.7  # a degenerate group: zero advantages, not NaN
    adv = group_relative_advantage(rewards)
    for i in range(4):
        assert adv[i].tolist() == pytest.approx(_loop_standardise(rewards[i].tolist()), abs=1e-12)
    assert adv[1].abs().max() < 1e-9  # (rounding of the mean only)


def test_group_relative_advantage_ragged_steps_loop():
    g = torch.Generator().manual_seed(3)
    rewards = torch.randn(3, 4, generator=g, dtype=DT)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True], [True, False, False, False]])
    adv = group_relative_advantage(rewards, mask, dim=(-2, -1))
    want = _loop_standardise(rewards[mask].tolist())
    assert adv[mask].tolist() == pytest.approx(want, abs=1e-12)
    assert adv[~mask].abs().max() == 0
    with pytest.raises(EntryShapeError, match="rewards"):
        group_relative_advantage(rewards[:, :1])
    with pytest.raises(EntryShapeError, match="mask"):
        group_relative_advantage(rewards, mask[:, :1])


def _trajectory(group_id: int, rewards: list[float]) -> TensorDict:
    n = len(rewards)
    return TensorDict(
        group_id=torch.full((n,), group_id),
        next=TensorDict(
            reward=torch.tensor(rewards).reshape(n, 1),
            done=torch.tensor([False] * (n - 1) + [True]).reshape(n, 1),
            batch_size=[n],
        ),
        batch_size=[n],
    )


@pytest.mark.parametrize("trajectory_return_mode", [None, "sum", "max", "mean"])
@pytest.mark.parametrize("group", [2, 3, 4])
def test_group_relative_advantage_matches_mc_advantage(trajectory_return_mode, group):
    g = torch.Generator().manual_seed(group)
    lengths = [1 + (i * 2) % 5 for i in range(group)]
    rewards = [torch.randn(n, generator=g).tolist() for n in lengths]
    transform = MCAdvantage(grpo_size=group, prompt_key="group_id", trajectory_return=trajectory_return_mode)
    out = None
    for r in rewards:
        out = transform.inv(_trajectory(7, r))
    expected = out["advantage"].reshape(-1)

    padded = torch.zeros(group, max(lengths))
    mask = torch.zeros(group, max(lengths), dtype=torch.bool)
    for i, r in enumerate(rewards):
        padded[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = True
    if trajectory_return_mode is None:
        adv = group_relative_advantage(padded, mask, dim=(-2, -1))[mask]
    else:
        returns = trajectory_return(padded, mask, reduction=trajectory_return_mode)
        adv = group_relative_advantage(returns).unsqueeze(-1).expand_as(padded)[mask]
    torch.testing.assert_close(adv, expected, rtol=1e-5, atol=1e-6)


def test_dynamic_sampling_mask_matches_mc_advantage_bounds():
    groups = [[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.5]]
    transform = MCAdvantage(grpo_size=2, prompt_key="group_id", trajectory_return="sum", keep_return_bounds=(0.1, 0.9))
    kept = []
    for gid, returns in enumerate(groups):
        out = None
        for r in returns:
            out = transform.inv(_trajectory(gid, [r]))
        kept.append(out is not None)
    ours = dynamic_sampling_mask(torch.tensor(groups), 0.1, 0.9)
    assert ours.tolist() == kept == [False, False, True, True]


def test_trajectory_return_loop():
    rewards = torch.tensor([[1.0, -2.0, 3.0], [0.5, 4.0, -1.0]], dtype=DT)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    assert trajectory_return(rewards, mask, reduction="sum").tolist() == [-1.0, 3.5]
    assert trajectory_return(rewards, mask, reduction="max").tolist() == [1.0, 4.0]
    assert trajectory_return(rewards, mask, reduction="mean").tolist() == pytest.approx([-0.5, 3.5 / 3])
    assert trajectory_return(rewards, reduction="max").tolist() == [3.0, 4.0]
    with pytest.raises(HyperparameterError, match="reduction"):
        trajectory_return(rewards, reduction="median")


def test_group_relative_advantage_is_differentiable_and_vmaps():
    g = torch.Generator().manual_seed(4)
    rewards = torch.randn(5, 4, generator=g, dtype=DT)
    batched = torch.vmap(group_relative_advantage)(rewards)
    torch.testing.assert_close(batched, group_relative_advantage(rewards))
    x = rewards[0].clone().requires_grad_(True)
    eps = 1e-6
    (grad,) = torch.autograd.grad((group_relative_advantage(x) * torch.arange(4.0, dtype=DT)).sum(), x)
    for i in range(4):
        step = torch.zeros(4, dtype=DT)
        step[i] = eps

        def f(v):
            return (group_relative_advantage(v) * torch.arange(4.0, dtype=DT)).sum().item()

        assert grad[i].item() == pytest.approx((f(x.detach() + step) - f(x.detach() - step)) / (2 * eps), rel=1e-6)

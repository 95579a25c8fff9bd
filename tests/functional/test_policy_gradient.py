"""Policy-gradient kernels: the clipped surrogate by region (ties in float32 and bfloat16 vs
TorchRL and float64), hand-computed values of the other surrogates."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from torch import distributions as D
from torch import nn

from torchrl_functional.functional import (
    adapt_kl_beta,
    clipped_surrogate_loss,
    importance_weighted_loss,
    kl_penalty_loss,
    policy_gradient_loss,
)

from .onpolicy_common import clipped_ratio_spec

EPS = 0.2
TORCHRL_CLIPPED = clipped_ratio_spec().torchrl  # TorchRL's class of the clipped PPO loss


class _Direct(D.Distribution):
    """A "policy" whose log-prob of any action is a parameter: sets ``log r`` exactly."""

    arg_constraints: dict = {}

    def __init__(self, log_prob: torch.Tensor) -> None:
        self._lp = log_prob
        super().__init__(log_prob.shape, validate_args=False)

    def log_prob(self, value):
        return self._lp


class _Actor(nn.Module):
    def __init__(self, log_weight: torch.Tensor) -> None:
        super().__init__()
        self.lw = nn.Parameter(log_weight.clone())
        self.in_keys = []

    def get_dist(self, td):
        return _Direct(self.lw)


def _torchrl_grad(log_weight: torch.Tensor, advantage: torch.Tensor) -> torch.Tensor:
    """d loss_objective / d log r from TorchRL's clipped PPO loss (behaviour log-prob 0)."""
    actor = _Actor(log_weight)
    loss = TORCHRL_CLIPPED(actor, critic_network=None, entropy_bonus=False, clip_epsilon=EPS)
    loss.set_keys(sample_log_prob="sample_log_prob")
    n = log_weight.shape[0]
    td = TensorDict({"action": torch.zeros(n), "sample_log_prob": torch.zeros(n, dtype=log_weight.dtype),
                     "advantage": advantage.unsqueeze(-1)}, [n])
    loss(td)["loss_objective"].backward()
    return actor.lw.grad


def _ours_grad(log_weight: torch.Tensor, advantage: torch.Tensor, kernel=clipped_surrogate_loss) -> torch.Tensor:
    lw = log_weight.clone().requires_grad_()
    kernel(lw.unsqueeze(-1), advantage.unsqueeze(-1), EPS)[0].mean().backward()
    return lw.grad


def _minimum_grad(log_weight: torch.Tensor, advantage: torch.Tensor) -> torch.Tensor:
    """The ``torch.minimum`` form (the defect): autograd splits the gradient at ties."""
    lw = log_weight.clone().requires_grad_()
    low, high = math.log1p(-EPS), math.log1p(EPS)
    gain = torch.minimum(lw.exp() * advantage, lw.clamp(low, high).exp() * advantage)
    (-gain).mean().backward()
    return lw.grad


def _float64_grad(log_weight: torch.Tensor, advantage: torch.Tensor) -> torch.Tensor:
    """The exact objective's derivative, sample by sample, in float64: ``-A r / n`` unless the
    ratio left the trust region on the side the advantage favours (bounds rounded as the loss's)."""
    dtype = log_weight.dtype
    low = torch.tensor(math.log1p(-EPS), dtype=dtype).double().item()
    high = torch.tensor(math.log1p(EPS), dtype=dtype).double().item()
    n = log_weight.shape[0]
    grads = []
    for lw, a in zip(log_weight.double().tolist(), advantage.double().tolist()):
        clipped = (a > 0 and lw > high) or (a < 0 and lw < low)
        grads.append(0.0 if clipped else -a * math.exp(lw) / n)
    return torch.tensor(grads, dtype=torch.float64)


def _bounds(dtype):
    return torch.tensor(math.log1p(-EPS), dtype=dtype), torch.tensor(math.log1p(EPS), dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_exact_ties_send_the_whole_gradient_to_the_unclipped_term(dtype):
    """``log r`` exactly at a clip bound (the two products are equal): the sample keeps its whole
    policy gradient, as in TorchRL and in float64; ``torch.minimum`` would give it half."""
    low, high = _bounds(dtype)
    log_weight = torch.stack([high, low, high, low, torch.tensor(0.05, dtype=dtype)])
    advantage = torch.tensor([1.5, -0.7, 0.0, 2.0, -1.0], dtype=dtype)
    ours = _ours_grad(log_weight, advantage)
    torch.testing.assert_close(ours, _torchrl_grad(log_weight, advantage))
    torch.testing.assert_close(ours.double(), _float64_grad(log_weight, advantage), rtol=1e-2 if dtype == torch.bfloat16 else 1e-6, atol=1e-6)
    assert ours[0] != 0 and ours[1] != 0


def _rounding_ties(dtype):
    """``log r`` strictly beyond the upper bound by a few units in the last place, where
    ``exp(log r)`` and ``exp(bound)`` round to the same number in ``dtype``."""
    _, high = _bounds(dtype)
    above = []
    x = high
    while len(above) < 3:
        x = torch.nextafter(x, torch.tensor(1.0, dtype=dtype))
        if (x.exp() == high.exp()).item() or dtype == torch.bfloat16:
            above.append(x)
        if x > high + 0.01:
            break
    return torch.stack(above)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rounding_ties_follow_the_region_as_float64(dtype):
    """Beyond the bound the clipped term is active: zero policy gradient (float64), whatever the
    rounding of the two products. TorchRL's ``min`` picks the unclipped term when they round
    equal (a documented difference), ``torch.minimum`` splits the gradient in half."""
    log_weight = _rounding_ties(dtype)
    advantage = torch.ones_like(log_weight)
    _, high = _bounds(dtype)
    assert (log_weight > high).all()
    lw_clip = log_weight.clamp(max=high)
    ties = (log_weight.exp() * advantage) == (lw_clip.exp() * advantage)
    assert ties.any(), "no rounding tie was produced"
    ours = _ours_grad(log_weight, advantage)
    torch.testing.assert_close(ours.double(), _float64_grad(log_weight, advantage))
    assert (ours == 0).all()
    theirs = _torchrl_grad(log_weight, advantage)
    assert (theirs[ties] != 0).all()  # TorchRL: the unclipped term's whole gradient
    half = _minimum_grad(log_weight, advantage)
    torch.testing.assert_close(half[ties].float(), 0.5 * theirs[ties].float(), rtol=1e-2, atol=1e-6)


def test_bfloat16_batch_matches_float64_region_everywhere():
    """An ordinary bf16 batch: every sample's gradient is the float64 region's."""
    g = torch.Generator().manual_seed(0)
    log_weight = (torch.randn(4096, generator=g) * 0.3).to(torch.bfloat16)
    advantage = torch.randn(4096, generator=g).to(torch.bfloat16)
    ours = _ours_grad(log_weight, advantage)
    want = _float64_grad(log_weight, advantage)
    torch.testing.assert_close(ours.double(), want, rtol=1e-2, atol=1e-7)
    split = _minimum_grad(log_weight, advantage)
    assert (split.double() - want).abs().max() > 1e-5  # the torch.minimum form differs on such a batch


def test_clipped_surrogate_hand_computed():
    lw = torch.tensor([[0.0], [math.log(1.5)], [math.log(0.5)], [math.log(1.1)]])
    adv = torch.tensor([[2.0], [1.0], [-1.0], [-3.0]])
    loss, clipped = clipped_surrogate_loss(lw, adv, 0.2)
    # r = 1, 1.5 (clipped to 1.2, A > 0), 0.5 (clipped to 0.8, A < 0), 1.1 (inside)
    torch.testing.assert_close(loss, torch.tensor([[-2.0], [-1.2], [0.8], [3.3]]))
    assert clipped.squeeze(-1).tolist() == [False, True, True, False]
    # a ratio outside the region on the side the advantage does not favour stays unclipped
    loss, _ = clipped_surrogate_loss(torch.tensor([[math.log(1.5)]]), torch.tensor([[-1.0]]), 0.2)
    torch.testing.assert_close(loss, torch.tensor([[1.5]]))
    # asymmetric bounds and a gradient-free importance weight on both branches
    loss, _ = clipped_surrogate_loss(torch.tensor([[math.log(1.4)]]), torch.tensor([[1.0]]), (0.1, 0.3),
                                     torch.tensor([[math.log(0.5)]]))
    torch.testing.assert_close(loss, torch.tensor([[-0.65]]))


def test_other_surrogates_hand_computed():
    lw, adv = torch.tensor([[math.log(2.0)]]), torch.tensor([[3.0]])
    torch.testing.assert_close(importance_weighted_loss(lw, adv), torch.tensor([[-6.0]]))
    torch.testing.assert_close(kl_penalty_loss(lw, adv, torch.tensor([[0.5]]), 2.0), torch.tensor([[-5.0]]))
    torch.testing.assert_close(policy_gradient_loss(torch.tensor([[-1.5]]), adv), torch.tensor([[4.5]]))
    assert adapt_kl_beta(1.0, torch.tensor(0.1), 0.01, 2.0, 0.5).item() == 2.0
    assert adapt_kl_beta(1.0, torch.tensor(0.001), 0.01, 2.0, 0.5).item() == 0.5
    assert adapt_kl_beta(1.0, torch.tensor(0.01), 0.01, 2.0, 0.5).item() == 1.0

"""Value-learning kernels on hand-computed numbers (each also runs inside the losses, whose
parity with TorchRL is tested elsewhere)."""

from __future__ import annotations

import pytest
import torch

from torchrl_functional.errors import EntryShapeError, HyperparameterError
from torchrl_functional.functional import (
    clipped_value_loss,
    distance_loss,
    ensemble_distance,
    ensemble_min,
    expectile_loss,
    explained_variance,
)

T = torch.tensor


def test_distance_loss_hand_computed():
    target, pred = T([[1.0], [0.0], [-2.0]]), T([[1.5], [3.0], [-2.0]])
    torch.testing.assert_close(distance_loss(target, pred, "l2"), T([[0.25], [9.0], [0.0]]))
    torch.testing.assert_close(distance_loss(target, pred, "l1"), T([[0.5], [3.0], [0.0]]))
    # Huber with delta 1: 0.5 d^2 inside, |d| - 0.5 outside
    torch.testing.assert_close(distance_loss(target, pred, "smooth_l1"), T([[0.125], [2.5], [0.0]]))
    with pytest.raises(EntryShapeError, match="prediction"):
        distance_loss(T([1.0, 2.0]), T([[1.0], [2.0]]))
    with pytest.raises(HyperparameterError, match="loss_function"):
        distance_loss(target, pred, "huber")


def test_clipped_value_loss_hand_computed():
    target = T([[1.0], [1.0], [1.0]])
    old = T([[0.0], [0.0], [0.0]])
    pred = T([[0.1], [0.5], [2.0]], requires_grad=True)
    loss, frac = clipped_value_loss(target, pred, old, 0.2, "l2")
    # 1: inside the radius: (1 - 0.1)^2 = 0.81 both ways
    # 2: moved 0.5 > 0.2: max((1 - 0.5)^2, (1 - 0.2)^2) = 0.64 (the clipped branch, no gradient)
    # 3: moved 2.0: max((1 - 2)^2, (1 - 0.2)^2) = 1.0 (the unclipped branch)
    torch.testing.assert_close(loss, T([[0.81], [0.64], [1.0]]))
    assert frac.item() == pytest.approx(2 / 3)
    (grad,) = torch.autograd.grad(loss.sum(), pred)
    torch.testing.assert_close(grad, T([[-1.8], [0.0], [2.0]]))


def test_explained_variance_hand_computed():
    target = T([[1.0], [2.0], [3.0], [4.0]])
    # perfect critic: 1; constant critic at the mean: 0; residual variance 1.25 of 1.25: 0
    assert explained_variance(target, target.clone()).item() == pytest.approx(1.0)
    assert explained_variance(target, torch.full_like(target, 2.5)).item() == pytest.approx(0.0, abs=1e-6)
    # residual [1, -1, 1, -1]: population variance 1 against 1.25 -> 1 - 0.8 = 0.2
    pred = target - T([[1.0], [-1.0], [1.0], [-1.0]])
    assert explained_variance(target, pred).item() == pytest.approx(0.2, abs=1e-6)
    assert not explained_variance(target, pred.requires_grad_()).requires_grad


def test_expectile_loss_hand_computed_and_differentiable_in_tau():
    diff = T([[2.0], [-1.0], [0.0]])
    torch.testing.assert_close(expectile_loss(diff, 0.7), T([[0.7 * 4.0], [0.3 * 1.0], [0.0]]))
    tau = T(0.7, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(expectile_loss(diff.double(), tau).sum(), tau)
    assert g.item() == pytest.approx(4.0 - 1.0)  # d/dtau [tau * 4 + (1 - tau) * 1]


def test_ensemble_kernels_hand_computed():
    q = T([[[1.0], [5.0]], [[3.0], [2.0]]], requires_grad=True)  # [E=2, B=2, 1]
    low = ensemble_min(q)
    torch.testing.assert_close(low, T([[1.0], [2.0]]))
    (grad,) = torch.autograd.grad(low.sum(), q)
    torch.testing.assert_close(grad, T([[[1.0], [0.0]], [[0.0], [1.0]]]))  # to the minimising critic
    y = T([[2.0], [2.0]])
    torch.testing.assert_close(ensemble_distance(q, y, "l2"), T([[1.0 + 1.0], [9.0 + 0.0]]))

"""gail_loss against hand-computed numbers and a float64 loop; the gradient penalty of a
discriminator whose input gradient is known in closed form; bad inputs; the drop-in against
TorchRL with renamed keys and without reaching TorchRL's forward."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from tensordict import TensorDict

from tests.specs import by_name
from tests.specs.gail import _discriminator
from torchrl_functional.errors import EntryShapeError, HyperparameterError, MissingEntryError
from torchrl_functional.functional import gail_loss, gradient_penalty


def test_hand_computed_bce():
    td = TensorDict({"expert_pred": torch.tensor([[0.8], [0.5]]), "collector_pred": torch.tensor([[0.1], [0.6]])}, [2])
    out = gail_loss(td, reduction="none")
    want = torch.tensor([[-math.log(0.8) - math.log(0.9)], [-math.log(0.5) - math.log(0.4)]])
    torch.testing.assert_close(out["loss"], want)
    torch.testing.assert_close(gail_loss(td)["loss"], want.mean())
    torch.testing.assert_close(gail_loss(td, reduction="sum")["loss"], want.sum())


def test_gradient_penalty_of_a_logistic_discriminator():
    """D(x) = sigmoid(w.x): grad_x D = D (1 - D) w, so the penalty is known in closed form."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(5, generator=g, dtype=torch.float64)
    x = torch.randn(7, 5, generator=g, dtype=torch.float64)
    d = torch.sigmoid(x @ w)
    grad = (d * (1 - d)).unsqueeze(-1) * w
    want = 3.0 * sum((grad[i].norm() - 1) ** 2 for i in range(7)) / 7
    torch.testing.assert_close(gradient_penalty(grad, 3.0), want)
    xr = x.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(torch.sigmoid(xr @ w).sum(), xr)
    torch.testing.assert_close(auto, grad)


def test_penalty_adds_to_every_sample_and_is_logged_detached():
    td = TensorDict({"expert_pred": torch.full((3, 1), 0.7), "collector_pred": torch.full((3, 1), 0.2),
                     "gp_gradient": torch.randn(3, 4, requires_grad=True)}, [3])
    out = gail_loss(td, use_grad_penalty=True, gp_lambda=0.5, reduction="none")
    gp = gradient_penalty(td["gp_gradient"], 0.5)
    torch.testing.assert_close(out["gp_loss"], gp.detach())
    assert not out["gp_loss"].requires_grad
    torch.testing.assert_close(out["loss"], -math.log(0.7) - math.log(0.8) + gp.detach().expand(3, 1))
    assert out["loss"].requires_grad


def test_mask_selects_samples():
    td = TensorDict({"expert_pred": torch.tensor([[0.8], [0.5], [0.3]]), "collector_pred": torch.full((3, 1), 0.5),
                     ("collector", "mask"): torch.tensor([True, False, True])}, [3])
    per = gail_loss(td.exclude("collector"), reduction="none")["loss"]
    torch.testing.assert_close(gail_loss(td)["loss"], (per[0] + per[2]).squeeze() / 2)


def test_bad_inputs():
    td = TensorDict({"expert_pred": torch.full((3, 1), 0.7), "collector_pred": torch.full((3, 1), 0.2)}, [3])
    with pytest.raises(MissingEntryError, match="gp_gradient"):
        gail_loss(td, use_grad_penalty=True)
    with pytest.raises(MissingEntryError, match="collector_pred"):
        gail_loss(td.exclude("collector_pred"))
    with pytest.raises(EntryShapeError, match="collector_pred"):
        gail_loss(td.clone().set("collector_pred", torch.full((3,), 0.2)))
    with pytest.raises(HyperparameterError, match="gp_lambda"):
        gail_loss(td.clone().set("gp_gradient", torch.ones(3, 2)), use_grad_penalty=True, gp_lambda=-1.0)
    with pytest.raises(EntryShapeError, match="gp_gradient"):
        gail_loss(TensorDict({**td.to_dict(), "gp_gradient": torch.ones(4, 2)}, []), use_grad_penalty=True)


def test_module_renamed_keys_and_no_torchrl_forward(monkeypatch):
    disc = _discriminator()
    spec = by_name("gail_loss")
    theirs = spec.torchrl(disc, use_grad_penalty=True, gp_lambda=0.3)
    ours = spec.module(copy.deepcopy(disc), use_grad_penalty=True, gp_lambda=0.3)
    renamed = {"collector_observation": "c_obs", "collector_action": "c_act"}
    for loss in (theirs, ours):
        loss.set_keys(**renamed)
    g = torch.Generator().manual_seed(1)
    td = TensorDict({"observation": torch.randn(5, 3, generator=g), "action": torch.randn(5, 2, generator=g),
                     "c_obs": torch.randn(5, 3, generator=g), "c_act": torch.randn(5, 2, generator=g)}, [5])
    torch.manual_seed(0)
    ref = theirs(td.clone())
    monkeypatch.setattr(spec.torchrl, "forward", lambda *a, **k: (_ for _ in ()).throw(AssertionError("reached")))
    torch.manual_seed(0)
    out = ours(td.clone())
    for k in ("loss", "gp_loss"):
        torch.testing.assert_close(out[k], ref[k], atol=1e-6, rtol=1e-5)
    ref["loss"].backward()
    out["loss"].backward()
    for (n, p), q in zip(theirs.named_parameters(), ours.parameters()):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-6, rtol=1e-5, msg=lambda m, n=n: f"{n}: {m}")

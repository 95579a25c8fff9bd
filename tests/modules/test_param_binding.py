"""The modules run the networks with the loss module's *current* parameters: swapping them
(TorchRL's ``TensorDict.from_module(loss).to_module(loss)`` idiom) gives the values and
gradients of networks loaded with those parameters, with no stale state afterwards."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from tests.builders import clone_nets, loss_sum, make_data, make_nets
from tests.modules.by_spec import adapts_in_forward, on_policy_specs, with_option

#: the on-policy classes whose forward updates no state of their own
CLASSES = [s.module for s in on_policy_specs() if not adapts_in_forward(s.torchrl)]
CLIPPED = [s.module for s in with_option(on_policy_specs(), "clip_epsilon")]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("with_advantage", [True, False])
def test_swapped_parameters_equal_loaded_parameters(cls, with_advantage):
    nets = make_nets("normal", seed=0)
    other = make_nets("normal", seed=1)  # same architecture, other weights
    data = make_data("normal", (3, 5), seed=2, with_advantage=with_advantage, nets=nets)
    loss = cls(nets.actor, nets.critic)
    loaded = cls(clone_nets(other).actor, clone_nets(other).critic)
    _ = (loss.value_estimator, loaded.value_estimator)  # built lazily by TorchRL: build both now

    params = TensorDict.from_module(loss)
    swapped = TensorDict.from_module(loaded).detach().clone()
    for name in ("actor_network_params", "critic_network_params"):
        swapped[name] = swapped[name].requires_grad_()
    torch.manual_seed(0)
    ref = loaded(data.clone())
    before = loss(data.clone())
    with swapped.to_module(loss):
        torch.manual_seed(0)
        out = loss(data.clone())
    for key in ref.keys():
        torch.testing.assert_close(out[key], ref[key])
    # gradients reach the swapped-in leaves, not the module's own parameters
    loss_sum(out).backward()
    loss_sum(ref).backward()
    for key, leaf in swapped.items(True, True):
        ref_grad = TensorDict.from_module(loaded).get(key).grad
        if ref_grad is None:
            assert leaf.grad is None or torch.count_nonzero(leaf.grad) == 0, key
        else:
            torch.testing.assert_close(leaf.grad, ref_grad)
    assert all(p.grad is None for p in loss.parameters())
    # after the context, the module computes with its own parameters again (nothing stale)
    after = loss(data.clone())
    for key in before.keys():
        torch.testing.assert_close(after[key], before[key])
    assert (TensorDict.from_module(loss) == params).all()


@pytest.mark.parametrize("cls", CLIPPED, ids=lambda c: c.__name__)
def test_parameters_updated_in_place_are_seen(cls):
    nets = make_nets("categorical", seed=0)
    data = make_data("categorical", (8,), seed=1, nets=nets)
    loss = cls(nets.actor, nets.critic)
    first = loss(data.clone())["loss_objective"]
    with torch.no_grad():
        for p in loss.actor_network_params.values(True, True):
            p.mul_(0.5)
    second = loss(data.clone())["loss_objective"]
    ref = cls(clone_nets(nets).actor, clone_nets(nets).critic)(data.clone())["loss_objective"]
    torch.testing.assert_close(second, ref)
    assert not torch.allclose(first, second)

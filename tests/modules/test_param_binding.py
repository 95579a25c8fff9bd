"""The modules run the networks with the loss module's *current* parameters: swapping them
(TorchRL's ``TensorDict.from_module(loss).to_module(loss)`` idiom) gives the values and
gradients of networks loaded with those parameters, with no stale state afterwards."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from tests.builders import clone_nets, loss_sum, make_data, make_nets
from tests.modules.by_spec import adapts_in_forward, on_policy_specs, with_option
from tests.specs import SPECS

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



def test_detached_parameters_follow_every_change():
    """``params.detach()``/``params.data`` of a drop-in module are cached (as TorchRL caches its
    detached parameters) but follow in-place updates, ``param.data = ...`` and swapped leaves."""
    from torchrl_functional.modules._binding import params_context

    torch.manual_seed(0)
    # the first drop-in of the registry with a single value network (and TensorDictParams)
    loss, obs = next(
        (mine, case.data(0)) for spec in SPECS if spec.module is not None
        for case in spec.module_cases()[:1] for _, mine in [case.build()]
        if hasattr(mine, "value_network") and hasattr(mine, "value_network_params")
    )
    params = loss.value_network_params
    out_key = loss.value_network.out_keys[0]

    def value(p):
        with params_context(loss, p, loss.value_network):
            return loss.value_network(obs.copy()).get(out_key)

    def loaded():  # the value with the module's current parameters, bound the plain way
        with params.detach().clone().to_module(loss.value_network):
            return loss.value_network(obs.copy()).get(out_key)

    for how in ("detach", "data"):
        def view(how=how):
            return params.data if how == "data" else params.detach()

        first = view()
        assert view() is first  # cached
        assert not any(x.requires_grad for x in first.values(True, True))
        torch.testing.assert_close(value(first), loaded())
        assert not value(first).requires_grad
        with torch.no_grad():  # in place (an optimizer step): the same view, the new numbers
            for p in params.values(True, True):
                p.add_(0.1)
        assert view() is first
        torch.testing.assert_close(value(first), loaded())
        leaf = next(iter(params.values(True, True)))
        leaf.data = leaf.data.clone() * 2  # new storage: rebuilt
        assert view() is not first
        torch.testing.assert_close(value(view()), loaded())
    # a leaf swapped by functional_call is used inside, the module's own one afterwards
    before = value(params.detach())
    name, p0 = next((n, p) for n, p in loss.named_parameters() if n.startswith("value_network_params"))
    key = tuple(name.split(".")[1:])

    class Probe(torch.nn.Module):
        def forward(self):
            return params.detach().get(key), value(params.detach())

    probe = Probe()
    probe.loss = loss
    inside, swapped_value = torch.func.functional_call(probe, {"loss." + name: p0.detach() + 1.0}, ())
    torch.testing.assert_close(inside, p0.detach() + 1.0)
    assert not torch.allclose(swapped_value, before)
    torch.testing.assert_close(value(params.detach()), before)
    assert params.detach().get(key) is not inside

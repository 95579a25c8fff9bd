"""Restructures with the real perforatedai: parameter counts, rebuilt optimizers, per-network
learning rates, gradients into new dendrites, PAI's frozen weights, one-network updates."""

from __future__ import annotations

import math

import pytest
import torch

from tests.pai.helpers import fixed, mlp, regression_step, trainable_params
from torchrl_functional.pai import NetworkSpec, PAIConfigError, PAIGroup, PAISettings, PAIStateError

IN = 4


def three_nets(out_dir, **kwargs) -> PAIGroup:
    return PAIGroup(
        "three",
        {
            "actor": NetworkSpec(mlp([IN, 8, 2], 0), lr=1e-3),
            "critic": NetworkSpec(mlp([IN, 8, 1], 1), lr=3e-3),
            "meta": NetworkSpec(mlp([IN, 5, 1], 2), lr=2e-2),
        },
        directory=out_dir,
        settings=fixed(3),
        scheduler_kwargs={"patience": 0, "factor": 0.5},
        **kwargs,
    )


def manual_count(module: torch.nn.Module) -> int:
    """PAI's count_params by hand: unique parameters minus its layer templates."""
    seen = {}
    for name, p in module.named_parameters():
        if ".parent_module." not in f".{name}.":
            seen[id(p)] = p
    return sum(p.numel() for p in seen.values())


def test_restructure_rebuilds_optimizer_and_trains_new_dendrites(out_dir):
    group = three_nets(out_dir)
    x = torch.randn(16, IN, generator=torch.Generator().manual_seed(0))
    base = {"actor": 1e-3, "critic": 3e-3, "meta": 2e-2}
    counts0 = {n: manual_count(group[n]) for n in group.names}
    assert counts0 == {"actor": 4 * 8 + 8 + 8 * 2 + 2, "critic": 4 * 8 + 8 + 8 + 1, "meta": 4 * 5 + 5 + 5 + 1}
    history = []
    for score in [0.0, 1.0, 2.0]:
        regression_step(group, x)
        old_opt = group.optimizer
        result = group.add_score(score)
        history.append(result.restructured)
    assert history == [False, False, True]  # fixed switch: the 3rd score restructures
    assert result.num_dendrites == 1 and group.num_dendrites == 1
    # every count grew, and the reported counts are PAI's own count
    assert result.param_counts == {n: manual_count(group[n]) for n in group.names}
    assert all(result.param_counts[n] > counts0[n] for n in group.names)
    assert group._tracker.member_vars["param_counts"][-1] == result.total_params
    # a new optimizer, one param group per network, exactly its trainable parameters
    opt = group.optimizer
    assert opt is not old_opt
    assert [g["network"] for g in opt.param_groups] == ["actor", "critic", "meta"]
    for g in opt.param_groups:
        assert {id(p) for p in g["params"]} == trainable_params(group[g["network"]])
        assert g["lr"] == pytest.approx(base[g["network"]], rel=0, abs=0)
    assert result.lrs == pytest.approx(base)

    # gradients reach the new dendrites: the output weights at once, the dendrite layers
    # once those weights are non-zero (PAI starts them at zero)
    regression_step(group, x)
    grads = {}
    group.zero_grad()
    sum(group[n](x).pow(2).mean() for n in group.names).backward()
    for name, p in group["actor"].named_parameters():
        grads[name] = None if p.grad is None else float(p.grad.abs().sum())
    new = [n for n in grads if "dendrites_to_top.0" in n or "dendrite_module.layers.0." in n]
    assert len(new) == 2 * 3  # two layers: dendrites_to_top.0, layers.0.weight, layers.0.bias
    assert all(grads[n] is not None and grads[n] > 0 for n in new), grads
    assert all(grads[n] is None for n in grads if ".parent_module." in f".{n}.")


def test_frozen_dendrite_weights_stay_frozen_and_out_of_optimizers(out_dir):
    group = three_nets(out_dir)
    x = torch.randn(16, IN, generator=torch.Generator().manual_seed(1))
    for score in [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]:  # two restructures
        regression_step(group, x)
        group.add_score(score)
    assert group.num_dendrites == 2
    frozen = [(n, p) for n, p in group["actor"].named_parameters() if not p.requires_grad]
    # PAI froze the first set of dendrite-to-neuron weights of both layers
    assert sorted(n for n, _ in frozen) == ["0.dendrites_to_top.0", "2.dendrites_to_top.0"]
    in_optimizer = {id(p) for g in group.optimizer.param_groups for p in g["params"]}
    assert not any(id(p) in in_optimizer for _, p in frozen)
    before = [p.detach().clone() for _, p in frozen]
    for _ in range(3):
        regression_step(group, x)
    assert all(torch.equal(b, p) for b, (_, p) in zip(before, frozen))
    assert all(not p.requires_grad for _, p in frozen)


def test_three_lrs_keep_their_ratios_across_two_restructures(out_dir):
    group = three_nets(out_dir)
    base = {"actor": 1e-3, "critic": 3e-3, "meta": 2e-2}
    x = torch.randn(16, IN, generator=torch.Generator().manual_seed(2))
    # 3rd and 6th scores restructure; the 5th (a drop with patience 0) halves the lrs
    scores = [0.0, 1.0, 2.0, 3.0, 2.0, 1.0, 5.0]
    seen = []
    for score in scores:
        regression_step(group, x)
        result = group.add_score(score)
        seen.append((result.restructured, dict(result.lrs)))
        factor = result.lrs["actor"] / base["actor"]
        for name in base:  # the ratio to the base lr is the same for every network
            assert result.lrs[name] == pytest.approx(base[name] * factor, rel=1e-12)
        shared = {g["network"]: g["lr"] for g in group.optimizer.param_groups}
        assert shared == pytest.approx(result.lrs, rel=1e-12)
    assert [r for r, _ in seen] == [False, False, True, False, False, True, False]
    assert seen[4][1] == pytest.approx({n: 0.5 * v for n, v in base.items()})  # plateau: halved
    assert seen[5][1] == pytest.approx(base)  # PAI restarts at the base lrs after a restructure
    assert group.num_dendrites == 2


def test_dendrites_on_the_actor_only(out_dir):
    critic = mlp([IN, 8, 1], 1)
    critic_params = [p for p in critic.parameters()]
    group = PAIGroup(
        "actor_only",
        {"actor": NetworkSpec(mlp([IN, 8, 2], 0), lr=1e-3), "critic": NetworkSpec(critic, lr=1e-3, dendrites=False)},
        directory=out_dir,
        settings=fixed(2),
    )
    assert group["critic"] is critic  # PAI only wraps it for tracking; we hand back the network
    x = torch.randn(8, IN)
    for score in [0.0, 1.0]:
        regression_step(group, x)
        result = group.add_score(score)
    assert result.restructured
    assert result.param_counts["critic"] == 4 * 8 + 8 + 8 + 1
    assert result.param_counts["actor"] > 4 * 8 + 8 + 8 * 2 + 2
    assert [p for p in group["critic"].parameters()] == critic_params
    assert not any("dendrite" in n for n, _ in group["critic"].named_parameters())


def test_backward_inputs_trains_one_network_and_equals_flag_toggling(out_dir):
    """The seed's alternating update (freeze the others, backward, restore the flags) and
    ``backward(inputs=group.parameters(name))`` give identical gradients, and the latter
    touches no ``requires_grad`` flag (PAI's frozen weights included)."""
    group = three_nets(out_dir)
    x = torch.randn(8, IN)
    for score in [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]:  # PAI has frozen some weights by now
        regression_step(group, x)
        group.add_score(score)
    flags = {id(p): p.requires_grad for p in group.model.parameters()}
    assert not all(flags.values()) and any(flags.values())

    def loss():  # the critic's loss depends on the actor's output too
        return (group["critic"](x) + group["actor"](x).sum(-1, keepdim=True)).pow(2).mean()

    group.zero_grad()
    loss().backward(inputs=group.parameters("critic"))
    with_inputs = {id(p): p.grad for p in group.model.parameters()}
    assert {id(p): p.requires_grad for p in group.model.parameters()} == flags

    group.zero_grad()
    others = [p for n in ("actor", "meta") for p in group[n].parameters()]
    saved = [p.requires_grad for p in others]
    for p in others:
        p.requires_grad_(False)
    loss().backward()
    for p, flag in zip(others, saved):
        p.requires_grad_(flag)
    toggled = {id(p): p.grad for p in group.model.parameters()}
    critic = {id(p) for p in group.parameters("critic")}
    assert sum(with_inputs[i] is not None for i in critic) >= 6  # weights, biases, dendrites
    for key, grad in toggled.items():
        if key in critic and grad is not None:
            assert torch.equal(with_inputs[key], grad)
        else:  # not trained, or not in the graph (PAI's dendrite layers of the other mode)
            assert grad is None and with_inputs[key] is None


def test_parameters_of_a_shared_trunk(out_dir):
    trunk = torch.nn.Linear(IN, 6)
    actor = torch.nn.Sequential(trunk, torch.nn.Tanh(), torch.nn.Linear(6, 2))
    critic = torch.nn.Sequential(trunk, torch.nn.Tanh(), torch.nn.Linear(6, 1))
    group = PAIGroup(
        "trunk", {"actor": NetworkSpec(actor, lr=1e-3), "critic": NetworkSpec(critic, lr=1e-2)},
        directory=out_dir, settings=fixed(10),
    )
    # a shared parameter belongs to the first network that lists it (one param group only)
    groups = {g["network"]: {id(p) for p in g["params"]} for g in group.optimizer.param_groups}
    assert not groups["actor"] & groups["critic"]
    assert id(group["critic"][0].main_module.weight) in groups["actor"]
    # ... but it is a parameter of both networks for backward(inputs=...)
    assert id(group["critic"][0].main_module.weight) in {id(p) for p in group.parameters("critic")}
    assert len(group.parameters()) == len(group.parameters("actor", "critic")) == sum(map(len, groups.values()))
    with pytest.raises(KeyError, match="nope"):
        group.parameters("nope")


@pytest.mark.parametrize("bad", [math.nan, math.inf, "1.0x", torch.ones(2), True])
def test_bad_scores_are_refused_before_pai(out_dir, bad):
    group = three_nets(out_dir)
    with pytest.raises(PAIConfigError, match="score"):
        group.add_score(bad)
    assert group.add_score(torch.tensor(0.5)).num_scores == 1  # and PAI state is intact


def test_untrained_layer_is_reported_before_pai_switches(out_dir):
    group = three_nets(out_dir)
    x = torch.randn(8, IN)
    regression_step(group, x, names=["actor", "critic"])  # "meta" never gets a gradient
    group.add_score(0.0)
    group.add_score(1.0)
    with pytest.raises(PAIStateError, match=r"never received a gradient: \['.meta.0', '.meta.2'\]"):
        group.add_score(2.0)  # the switch is due: PAI would stop in pdb


def test_training_complete_after_max_dendrites(out_dir):
    group = PAIGroup(
        "complete",
        {"actor": NetworkSpec(mlp([IN, 8, 2], 0), lr=1e-3), "critic": NetworkSpec(mlp([IN, 8, 1], 1), lr=3e-3)},
        directory=out_dir,
        settings=fixed(2, max_dendrites=1),
    )
    x = torch.randn(8, IN)
    results = []
    for score in [0.0, 1.0, 2.0, 3.0]:
        regression_step(group, x)
        results.append(group.add_score(score))
    assert [(r.restructured, r.training_complete) for r in results] == [
        (False, False), (True, False), (False, False), (True, True),
    ]
    assert group.training_complete and group.num_dendrites == 1
    # PAI loaded its best model: the rebuilt optimizer holds the current parameters
    opt = group.optimizer
    for g in opt.param_groups:
        assert {id(p) for p in g["params"]} == trainable_params(group[g["network"]])
    before = [p.detach().clone() for p in opt.param_groups[0]["params"]]
    regression_step(group, x)
    assert any(not torch.equal(b, p) for b, p in zip(before, opt.param_groups[0]["params"]))


def test_failed_dendrites_are_retried_then_removed(out_dir):
    """Falling scores: PAI retries new dendrites (a restructure without growth), then
    declares training complete and goes back to the best model (fewer parameters)."""
    group = PAIGroup(
        "retry",
        {"actor": NetworkSpec(mlp([IN, 8, 2], 0), lr=1e-2), "critic": NetworkSpec(mlp([IN, 8, 1], 1), lr=3e-2)},
        directory=out_dir,
        settings=PAISettings(switch_mode="fixed", fixed_switch_num=3),  # PAI's lr search on (default)
        scheduler_kwargs={"patience": 0, "factor": 0.5},
    )
    x = torch.randn(16, IN, generator=torch.Generator().manual_seed(3))
    scores = [0.0, 1.0, 2.0, 3.0, 2.5, 2.4, 2.3, 2.2, 2.1, 2.0, 1.9, 1.8]
    results = []
    for score in scores:
        regression_step(group, x)
        results.append(group.add_score(score))
    restructures = [(i, r.total_params) for i, r in enumerate(results) if r.restructured]
    sizes = [r.total_params for r in results]
    assert [i for i, _ in restructures] == [2, 5, 8, 11]
    assert sizes[2] > sizes[0] and sizes[5] > sizes[2]  # two dendrite sets added
    assert sizes[8] == sizes[5]  # the second set did not help: new random dendrites instead
    # reported as such: a restructure adding dendrites, one adding none, one removing them
    assert [r.dendrites_added for r in results if r.restructured] == [1, 1, 0, -1]
    assert all(r.dendrites_added == 0 for r in results if not r.restructured)
    assert results[-1].training_complete and sizes[-1] == sizes[2]  # back to the best model
    for g in group.optimizer.param_groups:
        assert {id(p) for p in g["params"]} == trainable_params(group[g["network"]])
    assert results[-1].lrs == pytest.approx({"actor": 1e-2, "critic": 3e-2})


def test_a_cached_optimizer_raises_after_a_restructure(out_dir):
    """``opt = group.optimizer`` kept across a restructure would train stale parameter
    lists (not the new dendrites): it raises instead. An optimizer of its own (Case 2)
    stays the same object, refilled with the new parameters."""
    group = PAIGroup(
        "stale",
        {"actor": NetworkSpec(mlp([IN, 8, 2], 0), lr=1e-3),
         "meta": NetworkSpec(mlp([IN, 5, 1], 2), lr=1e-2, optimizer=torch.optim.SGD)},
        directory=out_dir,
        settings=fixed(2),
    )
    x = torch.randn(16, IN, generator=torch.Generator().manual_seed(4))
    opt, sgd = group.optimizer, group.optimizers["meta"]
    for score in [0.0, 1.0]:
        regression_step(group, x)
        result = group.add_score(score)
    assert result.restructured and group.optimizer is not opt
    with pytest.raises(PAIStateError, match="replaced when PAI restructured"):
        opt.step()
    with pytest.raises(PAIStateError, match="replaced when PAI restructured"):
        opt.zero_grad()
    assert group.optimizers["meta"] is sgd
    assert {id(p) for p in sgd.param_groups[0]["params"]} == trainable_params(group["meta"])
    regression_step(group, x)
    regression_step(group, x)  # PAI starts the dendrite output weights at zero
    new = [p for n, p in group["meta"].named_parameters() if "dendrite_module.layers.0.weight" in n]
    before = [p.detach().clone() for p in new]
    regression_step(group, x)
    assert new and all(not torch.equal(b, p) for b, p in zip(before, new))

"""TorchRL loss modules (ours and TorchRL's) built before a restructure keep training the
restructured networks: refreshed parameters, detached critic in the value estimator."""

from __future__ import annotations

import pytest
import torch
from tensordict.nn import TensorDictParams
from torch import nn

from tests.builders import make_data, make_nets
from tests.pai.helpers import CLIP_PPO, fixed
from torchrl_functional.pai import NetworkSpec, PAIGroup
from torchrl_functional.pai.losses import refresh_loss_module

LOSSES = {"ours": CLIP_PPO.module, "torchrl": CLIP_PPO.torchrl}
TIME_DIMS = [-1, -1, 0]  # [B, T, F] batches


def ppo_group(out_dir, *, time_batches: bool, shared: bool = False) -> PAIGroup:
    nets = make_nets("normal", seed=0, shared=shared)
    dims = TIME_DIMS if time_batches else None
    return PAIGroup(
        "ppo",
        {
            "actor": NetworkSpec(nets.actor, lr=1e-2, output_dimensions=dims),
            "critic": NetworkSpec(nets.critic, lr=3e-2, output_dimensions=dims),
        },
        directory=out_dir,
        settings=fixed(2),
    )


def total(out) -> torch.Tensor:
    return sum(v for k, v in out.items() if k.startswith("loss_"))


def train_until_restructure(group: PAIGroup, loss: nn.Module, data, extra_step: bool = True) -> None:
    for score in (0.0, 1.0):
        group.zero_grad()
        total(loss(data.clone())).backward()
        group.step()
        result = group.add_score(score)
    assert result.restructured and group.num_dendrites == 1
    if not extra_step:
        return
    group.zero_grad()  # one more step: PAI starts the dendrite output weights at zero
    total(loss(data.clone())).backward()
    group.step()


def dendrite_params(module: nn.Module) -> dict[str, nn.Parameter]:
    return {
        n: p for n, p in module.named_parameters()
        if ("dendrites_to_top" in n or "dendrite_module.layers" in n) and p.requires_grad
    }


def grads(module: nn.Module) -> dict[str, torch.Tensor | None]:
    return {n: None if p.grad is None else p.grad.clone() for n, p in module.named_parameters()}


@pytest.mark.parametrize("kind", list(LOSSES))
def test_loss_built_before_a_restructure_trains_the_new_dendrites(out_dir, kind):
    group = ppo_group(out_dir, time_batches=False)
    loss = group.track_loss(LOSSES[kind](group["actor"], group["critic"]))
    data = make_data("normal", (16,), seed=0)
    train_until_restructure(group, loss, data)
    new = {**{f"actor.{k}": v for k, v in dendrite_params(group["actor"]).items()},
           **{f"critic.{k}": v for k, v in dendrite_params(group["critic"]).items()}}
    assert len(new) == 12  # 2 networks x 2 layers x (output weights, dendrite weight, bias)
    held = {id(p) for p in loss.parameters()}
    assert all(id(p) in held for p in new.values())  # an optimizer built from loss.parameters() sees them
    group.zero_grad()
    total(loss(data.clone())).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in new.values()), {
        k: None if p.grad is None else float(p.grad.abs().sum()) for k, p in new.items()
    }


def test_ours_matches_torchrl_on_restructured_networks_with_value_estimation(out_dir):
    group = ppo_group(out_dir, time_batches=True)
    ours = group.track_loss(CLIP_PPO.module(group["actor"], group["critic"]))
    ref = group.track_loss(CLIP_PPO.torchrl(group["actor"], group["critic"]))
    for loss in (ours, ref):  # the default estimator vmaps the critic; track_loss turns that off
        loss.make_value_estimator(gamma=0.9, lmbda=0.95)
    data = make_data("normal", (4, 6), seed=1, with_advantage=False)
    train_until_restructure(group, ours, data)
    assert ours.value_estimator.deactivate_vmap and ref.value_estimator.deactivate_vmap
    group.zero_grad()
    out_ours = ours(data.clone())
    total(out_ours).backward()
    g_ours = grads(group.model)
    group.zero_grad()
    out_ref = ref(data.clone())
    total(out_ref).backward()
    g_ref = grads(group.model)
    for key in ("loss_objective", "loss_critic", "loss_entropy"):
        torch.testing.assert_close(out_ours[key], out_ref[key], rtol=1e-5, atol=1e-6)
    checked = 0
    for name, g in g_ref.items():
        if g is None:
            assert g_ours[name] is None or not g_ours[name].any(), name
            continue
        torch.testing.assert_close(g_ours[name], g, rtol=1e-5, atol=1e-6, msg=lambda m, n=name: f"{n}: {m}")
        checked += "dendrite" in name
    assert checked >= 12


@pytest.mark.parametrize("kind", list(LOSSES))
def test_stale_loss_leaks_policy_gradients_into_the_critic_dendrites(out_dir, kind):
    """Why refreshing matters: the advantage must be computed with a detached critic."""
    group = ppo_group(out_dir, time_batches=True)
    tracked = group.track_loss(LOSSES[kind](group["actor"], group["critic"]))
    stale = LOSSES[kind](group["actor"], group["critic"])
    for loss in (tracked, stale):
        loss.make_value_estimator(gamma=0.9, lmbda=0.95, deactivate_vmap=True)
    data = make_data("normal", (4, 6), seed=2, with_advantage=False)
    train_until_restructure(group, tracked, data)
    critic_dendrites = dendrite_params(group["critic"])
    assert not any(id(p) in {id(q) for q in stale.parameters()} for p in critic_dendrites.values())

    def objective_grads(loss):
        group.zero_grad()
        loss(data.clone())["loss_objective"].backward()  # the policy term alone
        return [p.grad for p in critic_dendrites.values()]

    assert all(g is None for g in objective_grads(tracked))
    leaked = objective_grads(stale)
    if kind == "torchrl":
        assert any(g is not None and g.abs().sum() > 0 for g in leaked)
    else:  # ours runs the critic for the advantage without a graph: nothing can leak
        assert all(g is None for g in leaked)
    refresh_loss_module(stale)  # the fix, by hand
    assert all(g is None for g in objective_grads(stale))


@pytest.mark.parametrize("separate_losses", [False, True])
@pytest.mark.parametrize("kind", list(LOSSES))
def test_refresh_equals_a_loss_built_after_the_restructure(out_dir, kind, separate_losses):
    """Shared trunk: with separate_losses the critic's copy of the shared weights stays
    detached; the refreshed loss holds exactly what a loss built now would hold."""
    group = ppo_group(out_dir, time_batches=False, shared=True)
    loss = group.track_loss(LOSSES[kind](group["actor"], group["critic"], separate_losses=separate_losses))
    # PAI wraps the shared layer once per network; with separate_losses the critic's wrapper
    # would never get a gradient, so train with a loss that trains it
    trainer = group.track_loss(LOSSES[kind](group["actor"], group["critic"]))
    train_until_restructure(group, trainer, make_data("normal", (16,), seed=3))
    fresh = LOSSES[kind](group["actor"], group["critic"], separate_losses=separate_losses)
    critic_params = {n for n, _ in group["critic"].named_parameters(remove_duplicate=False)}
    detached_in_critic = 0
    for name in ("actor_network_params", "critic_network_params"):
        ours, ref = getattr(loss, name), getattr(fresh, name)
        assert set(ours.keys(True, True)) == set(ref.keys(True, True))
        assert any("dendrites_to_top" in ".".join(k) for k in ref.keys(True, True))
        for key, value in ref.items(True, True):
            mine = ours.get(key)
            assert isinstance(mine, nn.Parameter) == isinstance(value, nn.Parameter), (name, key)
            assert mine.data_ptr() == value.data_ptr(), (name, key)
            if name == "critic_network_params" and ".".join(key) in critic_params:
                detached_in_critic += not isinstance(value, nn.Parameter)  # a parameter held as data
    assert (detached_in_critic > 0) == separate_losses


def test_refresh_keeps_target_values_and_adds_new_entries(out_dir):
    group = ppo_group(out_dir, time_batches=False)
    loss = group.track_loss(CLIP_PPO.torchrl(group["actor"], group["critic"], delay_actor=True))
    data = make_data("normal", (16,), seed=4)
    target_before = {k: v.clone() for k, v in loss.target_actor_network_params.items(True, True)}
    for key, value in target_before.items():
        loss.target_actor_network_params.get(key).data.add_(1.0) if value.is_floating_point() else None
    shifted = {k: v.clone() for k, v in loss.target_actor_network_params.items(True, True)}
    train_until_restructure(group, loss, data, extra_step=False)
    target = loss.target_actor_network_params
    assert isinstance(target, TensorDictParams)
    current = loss.actor_network_params
    assert set(target.keys(True, True)) == set(current.keys(True, True))
    kept = new = 0
    for key, value in target.items(True, True):
        if key in shifted and shifted[key].shape == value.shape:
            if "dendrite_values" in "".join(key) or "num_cycles" in "".join(key) or "parent_module" in "".join(key):
                continue  # PAI replaced these modules: values are whatever was kept
            torch.testing.assert_close(value, shifted[key])  # the target net's own values
            kept += 1
        else:
            torch.testing.assert_close(value, current.get(key).data)  # starts as the current value
            assert value.data_ptr() != current.get(key).data_ptr()  # a copy
            new += 1
    assert kept > 0 and new > 0


def test_refresh_is_a_no_op_for_non_functional_losses(out_dir):
    nets = make_nets("normal", seed=0)
    loss = CLIP_PPO.module(nets.actor, nets.critic, functional=False)
    assert refresh_loss_module(loss) == []
    loss = CLIP_PPO.module(nets.actor, nets.critic)
    assert refresh_loss_module(loss) == ["actor_network", "critic_network"]

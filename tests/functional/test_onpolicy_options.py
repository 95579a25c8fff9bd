"""On-policy functional losses: options a TorchRL user reaches for. ``clip_value=True`` with a
per-sample ``clip_epsilon`` entry, ``ValueEstimators`` members, the kernels at the package top
level, explicit randomness under ``vmap``, ``torch.compile`` with the finite-check switch."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from torch import distributions as D
from torchrl.modules import TanhNormal
from torchrl.objectives import ClipPPOLoss as TorchRLClip
from torchrl.objectives import ValueEstimators

import torchrl_functional
from tests.builders import assert_td_close, make_data, make_nets
from torchrl_functional.errors import EntryShapeError
from torchrl_functional.functional import _validation, a2c_loss, clip_ppo_loss, ppo_loss


def _given(seed=0, B=8):
    nets = make_nets("categorical", seed=seed)
    data = make_data("categorical", (B,), seed=seed, nets=nets)
    data["actor_output"] = nets.actor.get_dist_params(data.select("observation")).select("logits")
    data["old_state_value"] = data["state_value"] + 0.3 * torch.randn(B, 1, generator=torch.Generator().manual_seed(1))
    return nets, data


def test_clip_value_true_uses_the_clip_epsilon_entry():
    """A constant ``clip_epsilon`` entry equals TorchRL with that ``clip_epsilon`` (clip_value=True)."""
    nets, data = _given()
    with_entry = data.clone()
    with_entry["clip_epsilon"] = torch.full((8,), 0.05)
    with_entry["old_state_value"] = data["state_value"]  # TorchRL's old values: the data's entry
    with_entry["state_value"] = nets.critic(data.select("observation"))["state_value"]
    got = clip_ppo_loss(with_entry, D.Categorical, clip_epsilon=0.3, clip_value=True, entropy_bonus=False)
    ref = TorchRLClip(nets.actor, nets.critic, clip_epsilon=0.05, clip_value=True, entropy_bonus=False)
    want = ref(data.clone())
    for key in ("loss_objective", "loss_critic", "value_clip_fraction"):
        torch.testing.assert_close(got[key], want[key])


def test_clip_value_true_per_sample_radius_float64_loop():
    _, data = _given()
    data = data.apply(lambda x: x.double() if x.is_floating_point() else x)
    eps = torch.linspace(0.01, 0.4, 8, dtype=torch.float64)
    data["clip_epsilon"] = eps
    out = clip_ppo_loss(data, D.Categorical, clip_value=True, loss_critic_type="l2", reduction="none",
                        entropy_bonus=False)
    for i in range(8):
        v, old, tgt = (data[k][i, 0].item() for k in ("state_value", "old_state_value", "value_target"))
        clipped = old + max(-eps[i].item(), min(eps[i].item(), v - old))
        assert out["loss_critic"][i].item() == pytest.approx(max((tgt - v) ** 2, (tgt - clipped) ** 2))


@pytest.mark.parametrize("member, name", [(ValueEstimators.TDLambda, "td_lambda"), (ValueEstimators.TD0, "td0"),
                                          (ValueEstimators.TD1, "td1"), (ValueEstimators.GAE, "gae"),
                                          (ValueEstimators.VTrace, "vtrace")])
def test_value_estimator_accepts_torchrl_members(member, name):
    nets = make_nets("categorical", seed=2)
    data = make_data("categorical", (2, 6), seed=2, with_advantage=False, nets=nets)
    data["actor_output"] = nets.actor.get_dist_params(data.select("observation")).select("logits")
    assert_td_close(ppo_loss(data, D.Categorical, value_estimator=member, gamma=0.9, lmbda=0.7),
                    ppo_loss(data, D.Categorical, value_estimator=name, gamma=0.9, lmbda=0.7))


def test_flat_advantage_names_the_outer_product():
    _, data = _given()
    data["advantage"] = data["advantage"].squeeze(-1)
    with pytest.raises(EntryShapeError, match="outer product"):
        clip_ppo_loss(data, D.Categorical)


def test_kernels_are_importable_from_the_top_level():
    for name in ("generalized_advantage_estimate", "td3_target_action", "td_lambda_return_estimate",
                 "vtrace_advantage_estimate", "clipped_surrogate_loss", "distance_loss", "value_target",
                 "estimate_advantage", "time_dim_of", "expectile_loss"):
        assert getattr(torchrl_functional, name) is getattr(torchrl_functional.functional, name)
        assert name in torchrl_functional.__all__


# ----------------------------------------------------------------------------- vmap randomness


def _tasks(n=3, B=5):
    g = torch.Generator().manual_seed(3)
    return TensorDict({
        "actor_output": {"loc": torch.randn(n, B, 2, generator=g), "scale": torch.rand(n, B, 2, generator=g) + 0.5},
        "action": torch.rand(n, B, 2, generator=g) * 1.6 - 0.8,
        "action_log_prob": torch.randn(n, B, generator=g),
        "advantage": torch.randn(n, B, 1, generator=g), "value_target": torch.randn(n, B, 1, generator=g),
        "state_value": torch.randn(n, B, 1, generator=g),
    }, [n, B])


def _entropy_loss(td, generator):
    return clip_ppo_loss(td, TanhNormal, generator=generator)["loss_entropy"]


def test_vmap_tanh_normal_entropy_with_a_generator_different_randomness():
    """``randomness="different"`` with ``generator=``: one independent draw per task, from the
    generator (reproducible: same generator state, same numbers)."""
    tasks = _tasks()
    out = torch.vmap(_entropy_loss, in_dims=(0, None), randomness="different")(tasks, torch.Generator().manual_seed(0))
    again = torch.vmap(_entropy_loss, in_dims=(0, None), randomness="different")(tasks, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, again)
    # a task whose inputs are copied gets another draw: the tasks' noises are independent
    same_inputs = torch.stack([tasks[0], tasks[0]])
    twin = torch.vmap(_entropy_loss, in_dims=(0, None), randomness="different")(same_inputs, torch.Generator().manual_seed(0))
    assert not torch.allclose(twin[0], twin[1])


def test_vmap_tanh_normal_entropy_same_randomness_equals_a_loop_with_one_draw():
    """``randomness="same"``: every task uses the same noise, as a loop that replays the generator."""
    tasks = _tasks()
    out = torch.vmap(_entropy_loss, in_dims=(0, None), randomness="same")(tasks, torch.Generator().manual_seed(0))
    loop = torch.stack([_entropy_loss(tasks[i], torch.Generator().manual_seed(0)) for i in range(3)])
    torch.testing.assert_close(out, loop)


def test_vmap_global_rng_needs_same_randomness():
    """With ``generator=None`` TorchRL's sampler draws in place: ``vmap`` refuses "different"
    randomness; "same" works (documented modes)."""
    tasks = _tasks()
    with pytest.raises(RuntimeError, match="randomness"):
        torch.vmap(lambda td: _entropy_loss(td, None), randomness="different")(tasks)
    torch.vmap(lambda td: _entropy_loss(td, None), randomness="same")(tasks)


# ----------------------------------------------------------------------------- compile


class _UntraceableSwitch:
    """A stand-in for the ``ContextVar`` that torch < 2.14's Dynamo cannot trace."""

    def get(self):
        if torch.compiler.is_compiling():
            raise RuntimeError("ContextVar.get traced")
        return False

    def set(self, value):  # pragma: no cover - not used here
        return None


def test_compile_fullgraph_never_reads_the_finite_check_switch(monkeypatch):
    """The finite-check switch is skipped while compiling, so ``fullgraph=True`` traces on torch
    versions whose Dynamo cannot read a ``ContextVar`` (checked on 2.13.0 when this was written)."""
    monkeypatch.setattr(_validation, "_CHECK_FINITE", _UntraceableSwitch())
    torch._dynamo.reset()
    _, data = _given()
    eager = a2c_loss(data, D.Categorical)["loss_objective"]
    compiled = torch.compile(lambda td: a2c_loss(td, D.Categorical)["loss_objective"], fullgraph=True)
    torch.testing.assert_close(compiled(data), eager)
    assert not math.isnan(eager.item())

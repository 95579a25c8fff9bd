"""On-policy functional losses (the registry's ``"on_policy"`` specs): options a TorchRL user
reaches for. ``ValueEstimators`` members, the kernels at the package top level, explicit
randomness under ``vmap``, ``torch.compile`` with the finite-check switch."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from torch import distributions as D
from torchrl.modules import TanhNormal
from torchrl.objectives import ValueEstimators

import torchrl_functional
from tests.builders import assert_td_close, make_data, make_nets
from tests.specs import tagged
from torchrl_functional.errors import EntryShapeError
from torchrl_functional.functional import _validation

from .onpolicy_common import given_batch

ON_POLICY = tagged("on_policy")
#: the losses that need no behaviour distribution (a KL penalty does)
NO_OLD_POLICY = [s for s in ON_POLICY if "kl_penalty" not in s.tags]
#: ... and draw Monte-Carlo entropy samples from an explicit generator
WITH_GENERATOR = [s for s in NO_OLD_POLICY if "generator" in s.random]


@pytest.mark.parametrize("spec", NO_OLD_POLICY, ids=lambda s: s.name)
@pytest.mark.parametrize("member, name", [(ValueEstimators.TDLambda, "td_lambda"), (ValueEstimators.TD0, "td0"),
                                          (ValueEstimators.TD1, "td1"), (ValueEstimators.GAE, "gae"),
                                          (ValueEstimators.VTrace, "vtrace")])
def test_value_estimator_accepts_torchrl_members(spec, member, name):
    nets = make_nets("categorical", seed=2)
    data = make_data("categorical", (2, 6), seed=2, with_advantage=False, nets=nets)
    data["actor_output"] = nets.actor.get_dist_params(data.select("observation")).select("logits")
    assert_td_close(spec.function(data, D.Categorical, value_estimator=member, gamma=0.9, lmbda=0.7),
                    spec.function(data, D.Categorical, value_estimator=name, gamma=0.9, lmbda=0.7))


@pytest.mark.parametrize("spec", NO_OLD_POLICY, ids=lambda s: s.name)
def test_flat_advantage_names_the_outer_product(spec):
    _, data = given_batch()
    data["advantage"] = data["advantage"].squeeze(-1)
    with pytest.raises(EntryShapeError, match="outer product"):
        spec.function(data, D.Categorical)


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


def _entropy_loss(spec):
    def loss(td, generator):
        return spec.function(td, TanhNormal, generator=generator)["loss_entropy"]

    return loss


@pytest.mark.parametrize("spec", WITH_GENERATOR, ids=lambda s: s.name)
def test_vmap_tanh_normal_entropy_with_a_generator_different_randomness(spec):
    """``randomness="different"`` with ``generator=``: one independent draw per task, from the
    generator (reproducible: same generator state, same numbers)."""
    tasks = _tasks()
    entropy_loss = _entropy_loss(spec)
    out = torch.vmap(entropy_loss, in_dims=(0, None), randomness="different")(tasks, torch.Generator().manual_seed(0))
    again = torch.vmap(entropy_loss, in_dims=(0, None), randomness="different")(tasks, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, again)
    # a task whose inputs are copied gets another draw: the tasks' noises are independent
    same_inputs = torch.stack([tasks[0], tasks[0]])
    twin = torch.vmap(entropy_loss, in_dims=(0, None), randomness="different")(same_inputs, torch.Generator().manual_seed(0))
    assert not torch.allclose(twin[0], twin[1])


@pytest.mark.parametrize("spec", WITH_GENERATOR, ids=lambda s: s.name)
def test_vmap_tanh_normal_entropy_same_randomness_equals_a_loop_with_one_draw(spec):
    """``randomness="same"``: every task uses the same noise, as a loop that replays the generator."""
    tasks = _tasks()
    entropy_loss = _entropy_loss(spec)
    out = torch.vmap(entropy_loss, in_dims=(0, None), randomness="same")(tasks, torch.Generator().manual_seed(0))
    loop = torch.stack([entropy_loss(tasks[i], torch.Generator().manual_seed(0)) for i in range(3)])
    torch.testing.assert_close(out, loop)


@pytest.mark.parametrize("spec", WITH_GENERATOR, ids=lambda s: s.name)
def test_vmap_global_rng_needs_same_randomness(spec):
    """With ``generator=None`` TorchRL's sampler draws in place: ``vmap`` refuses "different"
    randomness; "same" works (documented modes)."""
    tasks = _tasks()
    entropy_loss = _entropy_loss(spec)
    with pytest.raises(RuntimeError, match="randomness"):
        torch.vmap(lambda td: entropy_loss(td, None), randomness="different")(tasks)
    torch.vmap(lambda td: entropy_loss(td, None), randomness="same")(tasks)


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
    monkeypatch.setattr(_validation, "_EVER_ENABLED", True)  # past the never-enabled shortcut
    torch._dynamo.reset()
    _, data = given_batch()
    fn = ON_POLICY[0].function  # any on-policy loss
    eager = fn(data, D.Categorical)["loss_objective"]
    compiled = torch.compile(lambda td: fn(td, D.Categorical)["loss_objective"], fullgraph=True)
    torch.testing.assert_close(compiled(data), eager)
    assert not math.isnan(eager.item())

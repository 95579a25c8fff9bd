"""The keyword options shared by a family of losses (``**options: Unpack[OffPolicyOptions]``,
``Unpack[PPOOptions]`` ...) behave as keywords: a misspelt one is a ``TypeError`` naming the
loss, an option a loss's TypedDict does not declare is refused, and a declared one is read."""

from __future__ import annotations

import pytest
import torch

from tests.specs import SPECS
from torchrl_functional.functional import (
    A2COptions,
    DreamerV3ValueOptions,
    GRPOOptions,
    MultiAgentPPOOptions,
    OffPolicyOptions,
    OnPolicyOptions,
    PPOOptions,
    PrioritizedOffPolicyOptions,
    PrioritizedReplayOptions,
    ReplayOptions,
)
from torchrl_functional.functional._offpolicy import options_type

REPLAY = (ReplayOptions, PrioritizedReplayOptions, OffPolicyOptions, PrioritizedOffPolicyOptions)
OPTIONS = (*REPLAY, OnPolicyOptions, A2COptions, PPOOptions,
           MultiAgentPPOOptions, GRPOOptions, DreamerV3ValueOptions)


WITH_OPTIONS = [pytest.param(s, id=s.name) for s in SPECS if options_type(s.function) is not None]
OFF_POLICY = [p for p in WITH_OPTIONS if options_type(p.values[0].function) in REPLAY]


def test_the_families_declare_their_options():
    assert len(WITH_OPTIONS) >= 22 and len(OFF_POLICY) >= 15
    for param in WITH_OPTIONS:
        assert options_type(param.values[0].function) in OPTIONS


def test_the_declarations_nest():
    keys = [set(t.__optional_keys__) for t in (OnPolicyOptions, A2COptions, PPOOptions)]
    assert keys[0] < keys[1] < keys[2]
    replay, prioritized, off_policy = (set(t.__optional_keys__) for t in REPLAY[:3])
    assert replay < off_policy and replay | {"use_prioritized_weights"} == prioritized
    assert off_policy | prioritized == set(PrioritizedOffPolicyOptions.__optional_keys__)


@pytest.mark.parametrize("spec", WITH_OPTIONS)
def test_a_misspelt_option_is_a_type_error(spec):
    layout = spec.layouts[0]
    td = layout.make_td(0, torch.float32)
    with pytest.raises(TypeError, match=rf"{spec.name}\(\) got an unexpected keyword argument 'gama'"):
        spec.call(td, layout, gama=0.5)
    if options_type(spec.function) is OffPolicyOptions:
        with pytest.raises(TypeError, match="use_prioritized_weights"):
            spec.call(td, layout, use_prioritized_weights=True)
    if options_type(spec.function) is PrioritizedReplayOptions:  # bootstrapped one step only, as TorchRL
        with pytest.raises(TypeError, match="value_estimator"):
            spec.call(td, layout, value_estimator="td1")
    if options_type(spec.function) in (OnPolicyOptions, A2COptions):
        with pytest.raises(TypeError, match="max_importance_ratio"):
            spec.call(td, layout, max_importance_ratio=2.0)


@pytest.mark.parametrize("spec", OFF_POLICY)
def test_gamma_and_reduction_are_read(spec):
    layout = spec.layouts[0]
    td = layout.make_td(0, torch.float32)
    torch.manual_seed(0)
    ref = spec.call(td, layout, gamma=0.99)
    torch.manual_seed(0)
    other = spec.call(td, layout, gamma=0.5)
    assert any(not torch.equal(ref[k], other[k]) for k in ref.keys() if k.startswith("loss"))
    torch.manual_seed(0)
    summed = spec.call(td, layout, reduction="sum")
    torch.manual_seed(0)
    per_sample = spec.call(td, layout, reduction="none")
    for key in summed.keys():
        if key.startswith("loss") and per_sample[key].ndim:
            torch.testing.assert_close(summed[key], per_sample[key].sum(), rtol=1e-5, atol=1e-5)


AVERAGING = [p for p in OFF_POLICY if "average_rewards" in options_type(p.values[0].function).__optional_keys__]


def test_average_rewards_is_an_estimator_option():
    # the replay options of the one-step losses do not declare it; TQC takes its own keyword
    # (TorchRL standardises TQC's reward expanded to every atom, another number)
    assert len(AVERAGING) >= 13
    assert "average_rewards" not in PrioritizedReplayOptions.__optional_keys__


@pytest.mark.parametrize("spec", AVERAGING)
def test_average_rewards_standardises_the_rewards_first(spec):
    """``average_rewards=True`` is the loss on rewards standardised by hand (float64, over every
    sample, unbiased std), and differs from the loss on the raw rewards."""
    layout = spec.layouts[0]
    td = layout.make_td(0, torch.float64)
    key = ("next", "reward")
    reward = td.get(key)
    standardised = td.clone()
    standardised.set(key, (reward - reward.mean()) / reward.std())
    torch.manual_seed(0)
    averaged = spec.call(td, layout, average_rewards=True)
    torch.manual_seed(0)
    by_hand = spec.call(standardised, layout)
    torch.manual_seed(0)
    raw = spec.call(td, layout)
    losses = [k for k in averaged.keys() if k.startswith("loss")]
    for k in losses:
        torch.testing.assert_close(averaged[k], by_hand[k])
    assert any(not torch.allclose(averaged[k], raw[k]) for k in losses)

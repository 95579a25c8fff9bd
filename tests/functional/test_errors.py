"""Bad input to the on-policy losses (the registry's ``"on_policy"`` specs): each case raises
the library's exception naming the loss and the entry, and leaves the input untouched."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torch.distributions import Categorical

from tests.specs import tagged
from torchrl_functional.errors import (
    EntryDtypeError,
    EntryRequiresGradError,
    EntryShapeError,
    HyperparameterError,
    MissingEntryError,
)

from .onpolicy_common import batch
from .onpolicy_common import check as check_fn

LOSSES = {s.name: s.function for s in tagged("on_policy")}
USES_BEHAVIOUR_LOG_PROB = [s.name for s in tagged("importance_ratio")]
#: hyperparameters read whatever the layout (an estimator's are read only when it estimates)
ENTRY_HYPERS = [(s.name, h.name) for s in tagged("on_policy") for h in s.hypers if h.entry and h.layouts is None]


def check(name, td, exc, entry, match=None, **kwargs):
    check_fn(LOSSES[name], td, exc, entry, match, **kwargs)


@pytest.mark.parametrize("name", list(LOSSES))
def test_missing_policy(name):
    td = batch().exclude("actor_output")
    check(name, td, MissingEntryError, "actor_output", "log_prob")


@pytest.mark.parametrize("name", list(LOSSES))
def test_missing_action(name):
    check(name, batch().exclude("action"), MissingEntryError, "action", "collector")


@pytest.mark.parametrize("name", USES_BEHAVIOUR_LOG_PROB)
def test_missing_behaviour_log_prob(name):
    check(name, batch().exclude("action_log_prob"), MissingEntryError, "action_log_prob")


@pytest.mark.parametrize("name", list(LOSSES))
def test_missing_value_target(name):
    check(name, batch().exclude("value_target"), MissingEntryError, "value_target", "value estimator")


@pytest.mark.parametrize("name", list(LOSSES))
def test_missing_reward_when_estimating(name):
    td = batch().exclude("advantage", ("next", "reward"))
    check(name, td, MissingEntryError, ("next", "reward"), "advantage")


@pytest.mark.parametrize("name", list(LOSSES))
def test_missing_next_value_when_estimating(name):
    td = batch().exclude("advantage", ("next", "state_value"))
    check(name, td, MissingEntryError, ("next", "state_value"), "V(s')")


@pytest.mark.parametrize("name", list(LOSSES))
def test_advantage_that_would_broadcast(name):
    td = batch()
    td["advantage"] = td["advantage"].squeeze(-1)  # [B] against [B, 1]: a silent [B, B]
    check(name, td, EntryShapeError, "advantage", "unsqueeze(-1)")


@pytest.mark.parametrize("name", list(LOSSES))
def test_value_target_shape(name):
    td = batch()
    td["value_target"] = td["value_target"].squeeze(-1)
    check(name, td, EntryShapeError, "value_target", "unsqueeze(-1)")


@pytest.mark.parametrize("name", list(LOSSES))
def test_state_value_shape(name):
    td = batch()
    td["state_value"] = torch.randn(6, 2)
    check(name, td, EntryShapeError, "state_value")


@pytest.mark.parametrize("name", USES_BEHAVIOUR_LOG_PROB)
def test_behaviour_log_prob_shape(name):
    td = batch()
    td["action_log_prob"] = td["action_log_prob"].unsqueeze(-1)
    check(name, td, EntryShapeError, "action_log_prob")


@pytest.mark.parametrize("name", USES_BEHAVIOUR_LOG_PROB)
def test_behaviour_log_prob_requires_grad(name):
    td = batch()
    td["action_log_prob"] = td["action_log_prob"].clone().requires_grad_()
    check(name, td, EntryRequiresGradError, "action_log_prob", "constant")


@pytest.mark.parametrize("name", list(LOSSES))
def test_action_requires_grad(name):
    td = TensorDict(
        {
            "actor_output": {"loc": torch.zeros(4, 2, requires_grad=True), "scale": torch.ones(4, 2)},
            "action": torch.zeros(4, 2, requires_grad=True),
            "action_log_prob": torch.zeros(4),
            "advantage": torch.zeros(4, 1),
            "value_target": torch.zeros(4, 1),
            "state_value": torch.zeros(4, 1),
        },
        [4],
    )
    with pytest.raises(EntryRequiresGradError, match=f"{name}.*action"):
        LOSSES[name](td, torch.distributions.Normal)


@pytest.mark.parametrize("name", list(LOSSES))
def test_wrong_dtypes(name):
    td = batch().exclude("advantage")
    td["next", "done"] = td["next", "done"].float()
    check(name, td, EntryDtypeError, ("next", "done"), "torch.bool")
    td = batch()
    td["advantage"] = td["advantage"].long()
    check(name, td, EntryDtypeError, "advantage", "floating")
    td = batch()
    td["value_target"] = td["value_target"].int()
    check(name, td, EntryDtypeError, "value_target")


@pytest.mark.parametrize("name", list(LOSSES))
def test_mask_dtype(name):
    td = batch()
    td["collector", "mask"] = torch.ones(6)
    check(name, td, EntryDtypeError, ("collector", "mask"), "torch.bool")


@pytest.mark.parametrize("name", list(LOSSES))
def test_bad_reduction_and_critic_type(name):
    check(name, batch(), HyperparameterError, "reduction", reduction="avg")
    check(name, batch(), HyperparameterError, "loss_critic_type", loss_critic_type="huber")
    check(name, batch(), HyperparameterError, "clip_value", clip_value=-0.1)
    td = batch().exclude("advantage")
    check(name, td, HyperparameterError, "gamma", gamma=1.2)
    check(name, td, HyperparameterError, "lmbda", lmbda=torch.tensor(-0.5))
    check(name, td, HyperparameterError, "value_estimator", value_estimator="mc")


@pytest.mark.parametrize("name, hyper", ENTRY_HYPERS, ids=[f"{n}-{h}" for n, h in ENTRY_HYPERS])
def test_hyperparameter_entry_shape_and_dtype(name, hyper):
    td = batch()
    td[hyper] = torch.full((6, 2), 0.2)
    check(name, td, EntryShapeError, hyper)
    td = batch()
    td[hyper] = torch.ones(6, dtype=torch.bool)
    check(name, td, EntryDtypeError, hyper)


@pytest.mark.parametrize("name", [s.name for s in tagged("kl_penalty")])
def test_kl_penalty_needs_old_distribution(name):
    check(name, batch().exclude("old_actor_output"), MissingEntryError, "old_actor_output", "behaviour")


@pytest.mark.parametrize("name", list(LOSSES))
def test_dist_class_problems(name):
    fn = LOSSES[name]
    td = batch()
    with pytest.raises(HyperparameterError, match=f"{name}.*dist_class"):
        fn(td)
    with pytest.raises(HyperparameterError, match=f"{name}.*actor_output.*Normal"):
        fn(td, torch.distributions.Normal)
    td2 = batch()
    td2["actor_output"] = td2["actor_output", "logits"]
    with pytest.raises(EntryShapeError, match="sub-TensorDict"):
        fn(td2, Categorical)
    td3 = batch()
    td3["action"] = torch.zeros(6, 3, dtype=torch.long)  # one-hot-shaped action for a Categorical
    with pytest.raises(EntryShapeError, match=f"{name}.*action"):
        fn(td3, Categorical)


@pytest.mark.parametrize("name", list(LOSSES))
def test_not_a_tensordict_and_bad_keys(name):
    fn = LOSSES[name]
    with pytest.raises(TypeError, match=f"{name}.*TensorDict"):
        fn({"action": torch.zeros(3)}, Categorical)
    with pytest.raises(TypeError, match="keys"):
        fn(batch(), Categorical, keys={"no_such_entry": "x"})
    with pytest.raises(TypeError, match="keys"):
        fn(batch(), Categorical, keys=3)


@pytest.mark.parametrize("name", USES_BEHAVIOUR_LOG_PROB)
def test_missing_entry_error_is_a_key_error_with_readable_text(name):
    with pytest.raises(KeyError) as info:
        LOSSES[name](batch().exclude("action_log_prob"), Categorical)
    assert str(info.value).startswith(f"{name}: 'action_log_prob': not found")

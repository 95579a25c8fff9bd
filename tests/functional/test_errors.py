"""Bad input to the on-policy losses: each case raises the library's exception naming the
loss and the entry, and leaves the input untouched."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torch.distributions import Categorical

from torchrl_functional.errors import (
    EntryDtypeError,
    EntryRequiresGradError,
    EntryShapeError,
    HyperparameterError,
    LossInputError,
    MissingEntryError,
)
from torchrl_functional.functional import (
    a2c_loss,
    clip_ppo_loss,
    klpen_ppo_loss,
    ppo_loss,
    reinforce_loss,
)

LOSSES = {
    "ppo_loss": ppo_loss,
    "clip_ppo_loss": clip_ppo_loss,
    "klpen_ppo_loss": klpen_ppo_loss,
    "a2c_loss": a2c_loss,
    "reinforce_loss": reinforce_loss,
}
USES_BEHAVIOUR_LOG_PROB = ("ppo_loss", "clip_ppo_loss", "klpen_ppo_loss")


def batch(B=6, N=3):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(B, N, generator=g, requires_grad=True)
    return TensorDict(
        {
            "actor_output": {"logits": logits},
            "old_actor_output": {"logits": logits.detach() + 0.1},
            "action": torch.randint(N, (B,), generator=g),
            "action_log_prob": torch.randn(B, generator=g),
            "advantage": torch.randn(B, 1, generator=g),
            "value_target": torch.randn(B, 1, generator=g),
            "state_value": torch.randn(B, 1, generator=g, requires_grad=True),
            "old_state_value": torch.randn(B, 1, generator=g),
            "next": {
                "reward": torch.randn(B, 1, generator=g),
                "done": torch.zeros(B, 1, dtype=torch.bool),
                "terminated": torch.zeros(B, 1, dtype=torch.bool),
                "state_value": torch.randn(B, 1, generator=g),
            },
        },
        [B],
    )


def check(name, td, exc, entry, match=None, **kwargs):
    snapshot = td.clone()
    with pytest.raises(exc) as info:
        LOSSES[name](td, Categorical, **kwargs)
    err = info.value
    assert isinstance(err, LossInputError)
    assert err.loss == name
    assert err.entry == entry, (err.entry, entry)
    text = str(err)
    assert name in text and (entry is None or str(entry if isinstance(entry, str) else entry[-1]) in text)
    if match:
        assert match in text, text
    assert (td == snapshot).all()


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


@pytest.mark.parametrize(
    "name, kwargs, entry",
    [
        ("clip_ppo_loss", {"clip_epsilon": 1.5}, "clip_epsilon"),
        ("clip_ppo_loss", {"clip_epsilon": -0.1}, "clip_epsilon"),
        ("clip_ppo_loss", {"clip_epsilon": torch.tensor(2.0)}, "clip_epsilon"),
        ("clip_ppo_loss", {"clip_epsilon": (0.1, 0.2, 0.3)}, "clip_epsilon"),
        ("clip_ppo_loss", {"clip_epsilon": (0.1, 0.2), "clip_value": True}, "clip_value"),
        ("ppo_loss", {"critic_coeff": -1.0}, "critic_coeff"),
        ("ppo_loss", {"samples_mc_entropy": 0}, "samples_mc_entropy"),
        ("ppo_loss", {"max_importance_ratio": 0.0}, "max_importance_ratio"),
        ("klpen_ppo_loss", {"beta": -1.0}, "beta"),
        ("klpen_ppo_loss", {"dtarg": 0.0}, "dtarg"),
        ("klpen_ppo_loss", {"increment": 0.5}, "increment"),
        ("klpen_ppo_loss", {"decrement": 1.5}, "decrement"),
        ("klpen_ppo_loss", {"samples_mc_kl": 0}, "samples_mc_kl"),
        ("a2c_loss", {"samples_mc_entropy": 1.5}, "samples_mc_entropy"),
    ],
)
def test_out_of_range_hyperparameters(name, kwargs, entry):
    check(name, batch(), HyperparameterError, entry, **kwargs)


def test_hyperparameter_entry_shape_and_dtype():
    td = batch()
    td["clip_epsilon"] = torch.full((6, 2), 0.2)
    check("clip_ppo_loss", td, EntryShapeError, "clip_epsilon")
    td = batch()
    td["entropy_coeff"] = torch.ones(6, dtype=torch.bool)
    check("clip_ppo_loss", td, EntryDtypeError, "entropy_coeff")


def test_klpen_needs_old_distribution():
    check("klpen_ppo_loss", batch().exclude("old_actor_output"), MissingEntryError, "old_actor_output", "behaviour")


def test_dist_class_problems():
    td = batch()
    with pytest.raises(HyperparameterError, match="clip_ppo_loss.*dist_class"):
        clip_ppo_loss(td)
    with pytest.raises(HyperparameterError, match="clip_ppo_loss.*actor_output.*Normal"):
        clip_ppo_loss(td, torch.distributions.Normal)
    td2 = batch()
    td2["actor_output"] = td2["actor_output", "logits"]
    with pytest.raises(EntryShapeError, match="sub-TensorDict"):
        clip_ppo_loss(td2, Categorical)
    td3 = batch()
    td3["action"] = torch.zeros(6, 3, dtype=torch.long)  # one-hot-shaped action for a Categorical
    with pytest.raises(EntryShapeError, match="clip_ppo_loss.*action"):
        clip_ppo_loss(td3, Categorical)


def test_not_a_tensordict_and_bad_keys():
    with pytest.raises(TypeError, match="clip_ppo_loss.*TensorDict"):
        clip_ppo_loss({"action": torch.zeros(3)}, Categorical)
    with pytest.raises(TypeError, match="keys"):
        clip_ppo_loss(batch(), Categorical, keys={"no_such_entry": "x"})
    with pytest.raises(TypeError, match="keys"):
        clip_ppo_loss(batch(), Categorical, keys=3)


def test_missing_entry_error_is_a_key_error_with_readable_text():
    with pytest.raises(KeyError) as info:
        clip_ppo_loss(batch().exclude("action_log_prob"), Categorical)
    assert str(info.value).startswith("clip_ppo_loss: 'action_log_prob': not found")

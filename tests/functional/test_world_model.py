"""``world_model_loss`` against hand-written distances; bad input."""

from __future__ import annotations

import pytest
import torch

from tests.specs.world_model import ALL, heads
from torchrl_functional.errors import EntryDtypeError, HyperparameterError, MissingEntryError
from torchrl_functional.functional import world_model_loss


def test_each_term_is_a_weighted_mean_distance():
    td = heads(0, torch.float64)
    n = td["next"]
    out = world_model_loss(td, losses=ALL, done_loss="l1", latent_loss="smooth_l1", reward_weight=0.5,
                           done_weight=2.0, reconstruction_weight=3.0, latent_weight=4.0)
    torch.testing.assert_close(out["loss_reward"], 0.5 * ((n["reward"] - n["true_reward"]) ** 2).mean())
    torch.testing.assert_close(out["loss_done"], 2.0 * (n["done"] - n["true_done"].double()).abs().mean())
    torch.testing.assert_close(out["loss_reconstruction"],
                               3.0 * ((td["reconstructed_observation"] - td["observation"]) ** 2).mean())
    d = (td["predicted_latent"] - td["target_latent"]).abs()
    huber = torch.where(d < 1, 0.5 * d**2, d - 0.5)
    torch.testing.assert_close(out["loss_latent"], 4.0 * huber.mean())
    assert set(world_model_loss(td).keys()) == {"loss_reward"}


def test_bad_inputs_are_named():
    td = heads(0)
    with pytest.raises(MissingEntryError, match="true_done"):
        world_model_loss(td.exclude(("next", "true_done")), losses=["done"])
    with pytest.raises(HyperparameterError, match="losses"):
        world_model_loss(td, losses=["reward", "bad_loss"])
    bad = td.clone()
    bad["next", "true_done"] = bad["next", "true_done"].long()
    with pytest.raises(EntryDtypeError, match="true_done"):
        world_model_loss(bad, losses=["done"])


def test_options_checked_once_still_follow_every_call():
    """The checked plan of terms is reused across calls: a call with other keys, other terms or
    invalid options gets its own answer, whatever came before."""
    td = heads(0)
    renamed = td.clone()
    renamed.rename_key_(("next", "reward"), ("next", "r_hat"))
    for _ in range(2):
        plain = world_model_loss(td)
        other = world_model_loss(renamed, keys={"reward": "r_hat"})
        torch.testing.assert_close(plain["loss_reward"], other["loss_reward"])
        assert set(world_model_loss(td, losses=["reward", "done"]).keys()) == {"loss_reward", "loss_done"}
        with pytest.raises(MissingEntryError):
            world_model_loss(td, keys={"reward": "r_hat"})
        for bad in (["bad_term"], "reward", [["reward"]]):
            with pytest.raises((HyperparameterError, TypeError)):
                world_model_loss(td, losses=bad)
        with pytest.raises(HyperparameterError, match="reward_loss"):
            world_model_loss(td, reward_loss="l3")

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

"""RND's functional loss and statistics kernels against independent references: hand-computed
masked means, TorchRL's ``RunningMeanStd``, and the statistics of the concatenated data."""

from __future__ import annotations

import pytest
import torch
from torchrl.envs.transforms.rnd import RunningMeanStd

from tests.specs.rnd import features
from torchrl_functional.errors import EntryShapeError, HyperparameterError, MissingEntryError
from torchrl_functional.functional import rnd_loss, rnd_normalize_observation, running_mean_std_update


def test_loss_is_the_mean_over_selected_samples():
    td = features(0, torch.float64)
    noise = torch.tensor([0.1, 0.9, 0.2, 0.3, 0.24, 0.8], dtype=torch.float64)
    per_sample = (td["predictor_features"] - td["target_features"]).pow(2).mean(-1)
    selected = noise < 0.25
    out = rnd_loss(td, noise=noise)
    torch.testing.assert_close(out["loss_predictor"], per_sample[selected].sum() / selected.sum())
    none = rnd_loss(td, noise=noise, reduction="none")["loss_predictor"]
    torch.testing.assert_close(none, torch.where(selected, per_sample, torch.zeros_like(per_sample)))
    torch.testing.assert_close(rnd_loss(td, update_fraction=1.0)["loss_predictor"], per_sample.mean())


def test_generator_draws_are_reproducible_and_the_target_is_detached():
    td = features(1)
    pred = td["predictor_features"].clone().requires_grad_(True)
    target = td["target_features"].clone().requires_grad_(True)
    td2 = td.clone()
    td2["predictor_features"], td2["target_features"] = pred, target
    a = rnd_loss(td2, update_fraction=0.5, generator=torch.Generator().manual_seed(7))
    b = rnd_loss(td2, update_fraction=0.5, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(a["loss_predictor"], b["loss_predictor"])
    a["loss_predictor"].backward()
    assert target.grad is None and pred.grad is not None


def test_statistics_kernels_match_torchrl_and_the_concatenated_data():
    g = torch.Generator().manual_seed(0)
    rms = RunningMeanStd(shape=(3,))
    mean, var, count = rms.mean.clone(), rms.var.clone(), rms.count.clone()
    batches = [torch.randn(n, 3, generator=g) * 2 + 1 for n in (5, 1, 8)]
    for x in batches:
        rms.update(x)
        mean, var, count = running_mean_std_update(x, mean, var, count)
    torch.testing.assert_close(mean, rms.mean)
    torch.testing.assert_close(var, rms.var)
    torch.testing.assert_close(count, rms.count)
    # independent: from count ~ 0 the statistics are those of the data (float64)
    m, v, c = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64), torch.tensor(1e-12, dtype=torch.float64)
    for x in batches:
        m, v, c = running_mean_std_update(x.double(), m, v, c)
    data = torch.cat(batches).float().double()
    torch.testing.assert_close(m, data.mean(0).float().double(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(v, data.var(0, unbiased=False).float().double(), rtol=1e-5, atol=1e-6)
    obs = torch.randn(4, 3, generator=g) * 10
    torch.testing.assert_close(rnd_normalize_observation(obs, rms.mean, rms.var, obs_clip=2.0),
                               rms.normalize(obs).clamp(-2.0, 2.0))


def test_bad_inputs_are_named():
    td = features(0)
    with pytest.raises(MissingEntryError, match="target_features"):
        rnd_loss(td.exclude("target_features"))
    with pytest.raises(HyperparameterError, match="update_fraction"):
        rnd_loss(td, update_fraction=1.5)
    with pytest.raises(EntryShapeError, match="noise"):
        rnd_loss(td, noise=torch.rand(5))
    with pytest.raises(EntryShapeError, match="x"):
        running_mean_std_update(torch.randn(4, 2), torch.zeros(3), torch.ones(3), torch.tensor(1.0))

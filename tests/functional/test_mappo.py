"""mappo_loss / ippo_loss and the value normalisers against independent computations: float64
running statistics computed from all samples at once, hand-written EMA loops, the critic loss
from the normalised entries, the team-reward GAE against per-agent rewards; bad inputs."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from tests.specs._inputs import categorical
from tests.specs.mappo import marl_td
from torchrl_functional.errors import EntryShapeError, HyperparameterError, MissingEntryError
from torchrl_functional.functional import (
    ValueNormalizer,
    ippo_loss,
    mappo_loss,
    percentile_update,
    popart_normalize,
    popart_update,
    running_normalize,
    running_update,
)

from .onpolicy_common import clipped_ratio_spec


def _batches(seed=0, n=4):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(5 + i, 3, 1, generator=g, dtype=torch.float64) * (2 + i) + i for i in range(n)]


def test_running_equals_statistics_of_everything_seen():
    stats = ValueNormalizer("running").init(1, dtype=torch.float64)
    batches = _batches()
    for x in batches:
        stats = running_update(stats, x)
    flat = torch.cat([x.reshape(-1) for x in batches])
    assert stats["count"].item() == flat.numel()
    torch.testing.assert_close(stats["mean"], flat.mean().reshape(1))
    torch.testing.assert_close(stats["m2"] / stats["count"], flat.var(unbiased=False).reshape(1))
    y = torch.randn(4, 1, dtype=torch.float64)
    torch.testing.assert_close(running_normalize(stats, y), (y - flat.mean()) / flat.var(unbiased=False).sqrt())


def test_popart_is_the_debiased_ema_loop():
    beta = 0.7
    stats = ValueNormalizer("popart").init(1, dtype=torch.float64)
    m = m2 = d = 0.0
    for x in _batches(1):
        stats = popart_update(stats, x, beta=beta)
        m = beta * m + (1 - beta) * x.mean().item()
        m2 = beta * m2 + (1 - beta) * (x**2).mean().item()
        d = beta * d + (1 - beta)
    mean, var = m / d, m2 / d - (m / d) ** 2
    y = torch.tensor([[0.5], [3.0]], dtype=torch.float64)
    torch.testing.assert_close(popart_normalize(stats, y), (y - mean) / var**0.5)


def test_percentile_ema_of_quantiles():
    stats = ValueNormalizer("percentile").init(1, dtype=torch.float64)
    x = torch.linspace(0.0, 100.0, 101, dtype=torch.float64).unsqueeze(-1)
    stats = percentile_update(stats, x, rate=0.5)
    torch.testing.assert_close(stats["low"], torch.tensor([2.5], dtype=torch.float64))
    torch.testing.assert_close(stats["high"], torch.tensor([47.5], dtype=torch.float64))
    norm = ValueNormalizer("percentile", center=True)
    torch.testing.assert_close(norm.scale(stats), torch.tensor([45.0], dtype=torch.float64))
    torch.testing.assert_close(norm.denormalize(stats, norm.normalize(stats, x)), x)


def test_update_is_pure_and_detached():
    stats = ValueNormalizer("popart").init(1)
    snapshot = stats.clone()
    x = torch.randn(6, 1, requires_grad=True)
    new = popart_update(stats, x)
    assert (stats == snapshot).all()
    assert not any(v.requires_grad for v in new.values())


def test_bad_statistics_and_shapes():
    with pytest.raises(MissingEntryError, match="debiasing_term"):
        popart_update(TensorDict({"running_mean": torch.zeros(1), "running_mean_sq": torch.zeros(1)}, []),
                      torch.zeros(3, 1))
    with pytest.raises(EntryShapeError, match="trailing shape"):
        running_update(ValueNormalizer("running").init(1), torch.zeros(4, 8))
    with pytest.raises(HyperparameterError, match="beta"):
        popart_update(ValueNormalizer("popart").init(1), torch.zeros(3, 1), beta=1.5)
    with pytest.raises(HyperparameterError, match="quantiles"):
        percentile_update(ValueNormalizer("percentile").init(1), torch.zeros(3, 1), quantiles=(0.9, 0.1))
    with pytest.raises(HyperparameterError, match="kind"):
        ValueNormalizer("ema")


def test_mappo_critic_on_normalised_entries_and_returned_statistics():
    td = marl_td(0, advantage=True)
    norm = ValueNormalizer("popart", beta=0.5)
    stats = norm.init(1)
    out = mappo_loss(td, categorical, value_norm=norm, value_norm_stats=stats, loss_critic_type="l2")
    new = popart_update(stats, td["value_target"], beta=0.5)
    for k in new.keys():
        torch.testing.assert_close(out["value_norm", k], new[k])
    target = norm.normalize(new, td["value_target"])
    value = norm.normalize(new, td["state_value"])
    torch.testing.assert_close(out["loss_critic"], ((target - value) ** 2).mean())
    assert (stats == 0).all()  # the input statistics are left alone


def test_mappo_without_value_norm_is_clip_ppo_with_mappo_defaults():
    td = marl_td(1)
    out = mappo_loss(td, categorical, gamma=0.9, lmbda=0.8)
    clip_ppo = clipped_ratio_spec().function
    ref = clip_ppo(td, categorical, gamma=0.9, lmbda=0.8, value_estimator="magae", normalize_advantage=True,
                   normalize_advantage_exclude_dims=(-2,))
    for k in ref.keys():
        torch.testing.assert_close(out[k], ref[k], rtol=0, atol=0)
    assert "value_norm" not in out.keys()
    torch.testing.assert_close(ippo_loss(td, categorical, gamma=0.9, lmbda=0.8)["loss_objective"], out["loss_objective"])


def test_team_reward_equals_the_same_reward_for_every_agent():
    td = marl_td(2)
    per_agent = td.clone()
    for k in ("reward", "done", "terminated"):
        per_agent["next", k] = td["next", k].unsqueeze(-2).expand(*td.batch_size, 3, 1).clone()
    kw = dict(gamma=0.9, lmbda=0.8, normalize_advantage=False, reduction="none")
    a, b = mappo_loss(td, categorical, **kw), mappo_loss(per_agent, categorical, **kw)
    for k in ("loss_objective", "loss_critic"):
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_mappo_bad_value_norm_inputs():
    td = marl_td(0, advantage=True)
    with pytest.raises(HyperparameterError, match="value_norm_stats"):
        mappo_loss(td, categorical, value_norm=ValueNormalizer("running"))
    with pytest.raises(HyperparameterError, match="value_norm"):
        mappo_loss(td, categorical, value_norm="popart", value_norm_stats=ValueNormalizer().init(1))
    with pytest.raises(EntryShapeError, match="value_target"):
        mappo_loss(td, categorical, value_norm=ValueNormalizer("running"), value_norm_stats=ValueNormalizer("running").init(2))

"""DreamerV3 kernels and losses against plain float64 loops, hand-computed numbers and
TorchRL 0.14.1's own functions; bad inputs raise the library's named errors."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from torchrl.modules import PercentileValueNorm
from torchrl.objectives import dreamer_v3 as trl

from torchrl_functional.errors import EntryDtypeError, EntryShapeError, HyperparameterError, MissingEntryError
from torchrl_functional.functional import (
    categorical_kl_balanced,
    categorical_kl_terms,
    dreamer_v3_actor_loss,
    dreamer_v3_lambda_target,
    dreamer_v3_model_loss,
    dreamer_v3_replay_value_loss,
    dreamer_v3_value_loss,
    return_percentile_update,
    return_scale,
    symexp,
    symlog,
    two_hot_bins,
    two_hot_cross_entropy,
    two_hot_decode,
    two_hot_encode,
)

torch.set_num_threads(1)
D = torch.float64


def test_symlog_symexp_hand_values_and_gradient_at_zero():
    x = torch.tensor([-100.0, -1.0, 0.0, 1.0, 100.0], dtype=D, requires_grad=True)
    want = [-math.log(101), -math.log(2), 0.0, math.log(2), math.log(101)]
    torch.testing.assert_close(symlog(x), torch.tensor(want, dtype=D))
    torch.testing.assert_close(symexp(symlog(x)), x)
    (grad,) = torch.autograd.grad(symlog(x).sum(), x)
    assert grad[2].item() == 1.0  # d/dx symlog at 0 (sign() alone would give 0)
    torch.testing.assert_close(grad, 1 / (1 + x.detach().abs()))


@pytest.mark.parametrize("num_bins", [2, 7, 8, 255])
def test_bins_match_torchrl_and_are_antisymmetric(num_bins):
    bins = two_hot_bins(num_bins, dtype=D)
    torch.testing.assert_close(bins, trl._default_bins(num_bins, dtype=D), rtol=0, atol=0)
    assert torch.equal(bins, -bins.flip(0))
    assert bins[0].item() == pytest.approx(-math.expm1(20.0))
    with pytest.raises(ValueError):
        two_hot_bins(1)


def _encode_loop(x: float, bins: list[float]) -> list[float]:
    out = [0.0] * len(bins)
    x = min(max(x, bins[0]), bins[-1])
    for i in range(len(bins) - 1):
        if bins[i] <= x < bins[i + 1] or (i == len(bins) - 2 and x == bins[-1]):
            w = (x - bins[i]) / (bins[i + 1] - bins[i])
            out[i], out[i + 1] = 1 - w, w
            return out
    raise AssertionError("unreachable")


def test_two_hot_encode_matches_a_loop_and_torchrl():
    bins = two_hot_bins(7, dtype=D)
    x = torch.tensor([-1e10, -3.0, -0.2, 0.0, 0.5, 7.0, 1e10], dtype=D)
    got = two_hot_encode(x, bins)
    want = torch.tensor([_encode_loop(v, bins.tolist()) for v in x.tolist()], dtype=D)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-15)
    torch.testing.assert_close(got, trl.two_hot_encode(x, bins), rtol=0, atol=0)
    torch.testing.assert_close(got.sum(-1), torch.ones(7, dtype=D))
    # the hand-computed example of TorchRL's docstring
    torch.testing.assert_close(two_hot_encode(torch.tensor([0.25]), torch.tensor([-1.0, 0.0, 1.0])),
                               torch.tensor([[0.0, 0.75, 0.25]]))


def test_two_hot_decode_and_cross_entropy_match_loops():
    g = torch.Generator().manual_seed(0)
    bins = two_hot_bins(8, dtype=D)
    logits = torch.randn(3, 8, generator=g, dtype=D)
    target = torch.tensor([-5.0, 0.3, 40.0], dtype=D)
    for row, t, dec, ce in zip(logits, target, two_hot_decode(logits, bins), two_hot_cross_entropy(logits, target, bins)):
        z = sum(math.exp(v) for v in row.tolist())
        probs = [math.exp(v) / z for v in row.tolist()]
        assert dec.item() == pytest.approx(sum(p * b for p, b in zip(probs, bins.tolist())), rel=1e-12)
        enc = _encode_loop(t.item(), bins.tolist())
        assert ce.item() == pytest.approx(-sum(e * math.log(p) for e, p in zip(enc, probs)), rel=1e-12)
    torch.testing.assert_close(two_hot_decode(logits, bins), trl.two_hot_decode(logits, bins), rtol=0, atol=0)
    torch.testing.assert_close(two_hot_cross_entropy(logits, target, bins),
                               trl.two_hot_cross_entropy(logits, target, bins), rtol=0, atol=0)
    # uniform probabilities on the antisymmetric support decode to exactly 0
    assert two_hot_decode(torch.zeros(255), two_hot_bins(255)).item() == 0.0


def _kl_loop(p: list[float], q: list[float]) -> float:
    return sum(a * (math.log(a) - math.log(b)) for a, b in zip(p, q))


def test_categorical_kl_terms_fixture_loop_and_gradients():
    post = torch.tensor([[[2.0, -1.0, 0.5], [-0.5, 1.5, 0.0]]], dtype=D, requires_grad=True)
    prior = torch.tensor([[[0.0, 1.0, -1.0], [1.0, -0.5, 0.5]]], dtype=D, requires_grad=True)
    dyn, rep = categorical_kl_terms(post, prior, free_nats=0.0, unimix=0.01)
    assert dyn.item() == pytest.approx(1.9163513, abs=1e-6)  # TorchRL's reference fixture

    def mixed(row):
        z = sum(math.exp(v) for v in row)
        return [0.99 * math.exp(v) / z + 0.01 / 3 for v in row]

    loop = sum(_kl_loop(mixed(a), mixed(b)) for a, b in zip(post[0].tolist(), prior[0].tolist()))
    assert dyn.item() == pytest.approx(loop, rel=1e-12) and rep.item() == pytest.approx(loop, rel=1e-12)
    (g_post,) = torch.autograd.grad(dyn, post, allow_unused=True)
    assert g_post is None  # the dynamics term trains the prior only
    g_post, g_prior = torch.autograd.grad(rep, (post, prior), allow_unused=True)
    assert g_prior is None and g_post.abs().sum() > 0
    # a tensor unimix: d/d unimix by central differences (the stop-gradients leave it intact)
    u = torch.tensor(0.05, dtype=D, requires_grad=True)
    (grad,) = torch.autograd.grad(sum(categorical_kl_terms(post, prior, 0.0, u)), u)
    eps = 1e-6
    fd = (sum(categorical_kl_terms(post, prior, 0.0, 0.05 + eps)) - sum(categorical_kl_terms(post, prior, 0.0, 0.05 - eps))) / (2 * eps)
    torch.testing.assert_close(grad, fd.detach(), rtol=1e-6, atol=1e-9)


def test_categorical_kl_balanced_matches_torchrl_and_clamps_per_categorical():
    g = torch.Generator().manual_seed(1)
    post, prior = torch.randn(2, 3, 4, 5, generator=g), torch.randn(2, 3, 4, 5, generator=g)
    for free_bits in (0.0, 0.2, 5.0):
        torch.testing.assert_close(categorical_kl_balanced(post, prior, 0.8, free_bits),
                                   trl.categorical_kl_balanced(post, prior, 0.8, free_bits), rtol=1e-6, atol=1e-7)
    assert categorical_kl_balanced(post, prior, 0.8, 5.0).item() == pytest.approx(5.0)


def test_return_percentile_update_hand_values_and_torchrl():
    returns = torch.linspace(0.0, 100.0, 101).reshape(101, 1)
    low, high = return_percentile_update(returns, torch.zeros(1), torch.zeros(1), rate=1.0)
    torch.testing.assert_close((low, high), (torch.tensor([5.0]), torch.tensor([95.0])))
    assert return_scale(low, high).item() == 90.0
    assert return_scale(torch.tensor([0.0]), torch.tensor([0.5]), 1.0).item() == 1.0
    # one EMA step vs TorchRL's PercentileValueNorm.update (in place there, an output here)
    g = torch.Generator().manual_seed(2)
    norm = PercentileValueNorm(rate=0.3)
    norm.low.fill_(-1.0)
    norm.high.fill_(2.0)
    x = torch.randn(4, 6, 1, generator=g) * 5
    low, high = return_percentile_update(x, norm.low.clone(), norm.high.clone(), rate=0.3)
    norm.update(x)
    torch.testing.assert_close((low, high), (norm.low, norm.high), rtol=0, atol=0)
    torch.testing.assert_close(return_scale(low, high), norm.scale(), rtol=0, atol=0)


def _lambda_loop(r, v, c, gamma, lmbda):
    """DreamerV3's return, one trajectory of floats: R_T-1 = r + g c v, R_t = r + g c ((1-l) v + l R_t+1)."""
    out, nxt = [0.0] * len(r), v[-1]
    for t in reversed(range(len(r))):
        nxt = r[t] + gamma * c[t] * ((1 - lmbda) * v[t] + lmbda * nxt)
        out[t] = nxt
    return out


def test_lambda_target_matches_a_loop_with_and_without_continuation():
    g = torch.Generator().manual_seed(3)
    r, v = torch.randn(2, 5, 1, generator=g, dtype=D), torch.randn(2, 5, 1, generator=g, dtype=D)
    c = torch.rand(2, 5, 1, generator=g, dtype=D)
    got = dreamer_v3_lambda_target(r, v, c, gamma=0.9, lmbda=0.7)
    got_plain = dreamer_v3_lambda_target(r, v, gamma=0.9, lmbda=0.7)
    for b in range(2):
        rb, vb, cb = r[b, :, 0].tolist(), v[b, :, 0].tolist(), c[b, :, 0].tolist()
        torch.testing.assert_close(got[b, :, 0], torch.tensor(_lambda_loop(rb, vb, cb, 0.9, 0.7), dtype=D))
        torch.testing.assert_close(got_plain[b, :, 0], torch.tensor(_lambda_loop(rb, vb, [1.0] * 5, 0.9, 0.7), dtype=D))
    # TorchRL's fixture (test_dreamer_v3_continuation_lambda_and_weights)
    torch.testing.assert_close(
        dreamer_v3_lambda_target(torch.tensor([[[1.0], [2.0], [3.0]]]), torch.tensor([[[10.0], [20.0], [30.0]]]),
                                 torch.full((1, 3, 1), 0.5), gamma=1.0, lmbda=0.5),
        torch.tensor([[[6.375], [11.5], [18.0]]]))
    # time_dim=-1 (TorchRL 0.14.1 without continuations): one-step targets
    torch.testing.assert_close(dreamer_v3_lambda_target(r, v, gamma=0.9, lmbda=0.7, time_dim=-1), r + 0.9 * v)


def test_actor_loss_hand_computed():
    # one trajectory of 2 steps, no normalisation, no entropy: loss = -mean(w * R)
    td = TensorDict({"next": {"reward": torch.tensor([[[1.0], [2.0]]], dtype=D),
                              "state_value": torch.tensor([[[10.0], [20.0]]], dtype=D)}}, [1, 2])
    out = dreamer_v3_actor_loss(td, gamma=0.5, lmbda=0.5, entropy_bonus=0.0, return_normalization=False)
    r1 = 2.0 + 0.5 * 20.0  # 12
    r0 = 1.0 + 0.5 * (0.5 * 10.0 + 0.5 * r1)  # 6.5
    torch.testing.assert_close(out["lambda_target"][0, :, 0], torch.tensor([r0, r1], dtype=D))
    torch.testing.assert_close(out["discount_weight"][0, :, 0], torch.tensor([1.0, 0.5], dtype=D))
    assert out["loss_actor"].item() == pytest.approx(-(1.0 * r0 + 0.5 * r1) / 2)
    # with normalisation from given statistics: S = max(1, 3 - (-2)) = 5, no update
    out = dreamer_v3_actor_loss(td, gamma=0.5, lmbda=0.5, entropy_bonus=0.0, return_low=torch.tensor([-2.0]),
                                return_high=torch.tensor([3.0]), update_return_statistics=False)
    assert out["return_scale"].item() == 5.0
    assert out["loss_actor"].item() == pytest.approx(-(1.0 * r0 + 0.5 * r1) / 2 / 5)


def test_value_and_replay_losses_hand_computed():
    td = TensorDict({"lambda_target": torch.tensor([[[1.0], [3.0]]], dtype=D),
                     "state_value": torch.tensor([[[0.0], [1.0]]], dtype=D)}, [1, 2])
    out = dreamer_v3_value_loss(td, gamma=0.5, reduction="sum")
    want = math.log(2) ** 2 + 0.5 * (math.log(4) - math.log(2)) ** 2
    assert out["loss_value"].item() == pytest.approx(want)
    # TorchRL's replay target fixture: horizon 2 (gamma 0.5), lmbda 0.5
    replay = TensorDict({
        "state_value": torch.zeros(1, 4, 1, dtype=D), "bootstrap": torch.tensor([[10.0, 20.0, 30.0, 40.0]], dtype=D),
        "next": {"reward": torch.tensor([[0.0, 1.0, 2.0, 3.0]], dtype=D),
                 "done": torch.zeros(1, 4, dtype=torch.bool), "terminated": torch.zeros(1, 4, dtype=torch.bool)},
    }, [1, 4])
    out = dreamer_v3_replay_value_loss(replay, horizon=2.0, lmbda=0.5, reduction="none")
    targets = torch.tensor([[9.8125, 15.25, 23.0]], dtype=D)
    torch.testing.assert_close(out["loss_replay_value"], symlog(targets) ** 2)


def _model_td():
    b = (2, 3)
    return TensorDict({"next": {
        "true_reward": torch.ones(*b, 1), "reward_logits": torch.zeros(*b, 5),
        "posterior_logits": torch.zeros(*b, 2, 3), "prior_logits": torch.zeros(*b, 2, 3),
        "pixels": torch.ones(*b, 4), "reco_pixels": torch.zeros(*b, 4)}}, b)


def test_model_loss_hand_computed():
    out = dreamer_v3_model_loss(_model_td(), num_reward_bins=5, free_bits=0.0)
    assert out["loss_model_reco"].item() == pytest.approx(4 * math.log(2) ** 2)  # summed over 4 features
    assert out["loss_model_reward"].item() == pytest.approx(math.log(5))  # uniform logits
    assert out["loss_model_kl"].item() == pytest.approx(0.0, abs=1e-12)


def test_bad_inputs_raise_named_errors():
    td = _model_td()
    with pytest.raises(MissingEntryError, match="true_reward"):
        dreamer_v3_model_loss(td.exclude(("next", "true_reward")), num_reward_bins=5)
    with pytest.raises(EntryShapeError, match="reward_logits"):
        dreamer_v3_model_loss(td, num_reward_bins=7)
    bad = td.clone()
    bad["next", "pixels"] = (bad["next", "pixels"] * 255).to(torch.uint8)
    with pytest.raises(EntryDtypeError, match="pixels"):
        dreamer_v3_model_loss(bad, num_reward_bins=5)  # integer targets need reco_symlog=False
    dreamer_v3_model_loss(bad, num_reward_bins=5, reco_symlog=False)
    with pytest.raises(HyperparameterError, match="unimix"):
        dreamer_v3_model_loss(td, num_reward_bins=5, kl_mode="separate", unimix=1.0)
    with pytest.raises(HyperparameterError, match="kl_mode"):
        dreamer_v3_model_loss(td, num_reward_bins=5, kl_mode="mixed")
    actor = TensorDict({"next": {"reward": torch.zeros(2, 3, 1), "state_value": torch.zeros(2, 3)}}, [2, 3])
    with pytest.raises(EntryShapeError, match="state_value"):
        dreamer_v3_actor_loss(actor, entropy_bonus=0.0)
    actor["next", "state_value"] = torch.zeros(2, 3, 1)
    actor["continuation"] = torch.ones(2, 3, 1)
    with pytest.raises(MissingEntryError, match="continuation"):
        dreamer_v3_actor_loss(actor, entropy_bonus=0.0)
    with pytest.raises(HyperparameterError, match="quantiles"):
        dreamer_v3_actor_loss(actor.exclude("continuation"), entropy_bonus=0.0,
                              return_normalization_quantiles=(0.9, 0.1))

"""Numerical robustness: extreme log-ratios, tiny/huge advantages, near-zero scales, float64
end to end, bfloat16 where TorchRL works, and the opt-in finiteness check."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import NormalParamExtractor
from torch.distributions import Categorical

from tests.builders import clone_nets, loss_sum, make_data, make_nets
from tests.functional.onpolicy_common import clipped_ratio_spec
from tests.specs import tagged
from torchrl_functional import check_finite
from torchrl_functional.errors import NonFiniteEntryError
from torchrl_functional.functional import generalized_advantage_estimate

#: the clipped PPO loss (the class pair of most checks here) and every importance-ratio loss
#: that needs no behaviour distribution (the extreme-ratio check)
CLIPPED = clipped_ratio_spec()
RATIO = [s for s in tagged("on_policy", "importance_ratio") if "kl_penalty" not in s.tags]


def _pair(torchrl_cls, our_cls, dist, data_fn, seed=0, dtype=None, **kwargs):
    nets = make_nets(dist, seed=seed)
    ref_nets, our_nets = clone_nets(nets), clone_nets(nets)
    if dtype is not None:
        for n in (ref_nets, our_nets):
            n.actor.to(dtype)
            n.critic.to(dtype)
    data = data_fn(nets)
    ref, mine = torchrl_cls(ref_nets.actor, ref_nets.critic, **kwargs), our_cls(our_nets.actor, our_nets.critic, **kwargs)
    torch.manual_seed(0)
    out_ref = ref(data.clone())
    torch.manual_seed(0)
    out_ours = mine(data.clone())
    return ref, mine, out_ref, out_ours


def _same_or_both_nonfinite(a, b, **tol):
    fa, fb = torch.isfinite(a), torch.isfinite(b)
    assert torch.equal(fa, fb), (a, b)
    torch.testing.assert_close(a[fa], b[fb], **tol)


@pytest.mark.parametrize("shift", [-50.0, -20.0, 20.0, 50.0])
@pytest.mark.parametrize("dist", ["normal", "categorical", "tanh_normal"])
@pytest.mark.parametrize("spec", RATIO, ids=lambda s: s.name)
def test_extreme_log_ratios_match_torchrl(shift, dist, spec):
    def data_fn(nets):
        data = make_data(dist, (16,), seed=1, nets=nets)
        data["action_log_prob"] = data["action_log_prob"] + shift  # log-ratio ~ -shift
        return data

    ref, mine, out_ref, out_ours = _pair(spec.torchrl, spec.module, dist, data_fn)
    for key in out_ref.keys():
        _same_or_both_nonfinite(out_ours[key], out_ref[key], rtol=1e-5, atol=1e-6)
    if torch.isfinite(loss_sum(out_ref)):
        loss_sum(out_ref).backward()
        loss_sum(out_ours).backward()
        for (name, p_ref), p_ours in zip(ref.named_parameters(), mine.parameters()):
            if p_ref.grad is not None:
                _same_or_both_nonfinite(p_ours.grad, p_ref.grad, rtol=1e-4, atol=1e-5)
                assert torch.isfinite(p_ours.grad).all(), name


@pytest.mark.parametrize("scale", [1e-30, 1e-8, 1e8, 1e30])
def test_tiny_and_huge_advantages_match_torchrl(scale):
    def data_fn(nets):
        data = make_data("normal", (16,), seed=2, nets=nets)
        data["advantage"] = data["advantage"] * scale
        data["value_target"] = data["value_target"] * min(scale, 1e3)
        return data

    ref, mine, out_ref, out_ours = _pair(CLIPPED.torchrl, CLIPPED.module, "normal", data_fn)
    for key in out_ref.keys():
        _same_or_both_nonfinite(out_ours[key], out_ref[key], rtol=1e-5, atol=0)
        assert torch.isfinite(out_ours[key]).all() == torch.isfinite(out_ref[key]).all()
    loss_sum(out_ref).backward()
    loss_sum(out_ours).backward()
    for p_ref, p_ours in zip(ref.parameters(), mine.parameters()):
        if p_ref.grad is not None:
            _same_or_both_nonfinite(p_ours.grad, p_ref.grad, rtol=1e-4, atol=0)


@pytest.mark.parametrize("target_scale", [1e-4, 1e-6])
@pytest.mark.parametrize("dist", ["normal", "tanh_normal"])
def test_scale_near_zero_matches_torchrl(target_scale, dist):
    """Policies whose scale collapses towards 0: huge log-densities and ratios."""
    nets = make_nets(dist, seed=4)
    data = make_data(dist, (12,), seed=3, nets=nets)
    outs = []
    for cls in (CLIPPED.torchrl, CLIPPED.module):
        n = clone_nets(nets)
        n.actor.module[0].module[3] = NormalParamExtractor(scale_mapping="exp", scale_lb=1e-12)
        with torch.no_grad():  # the scale half of the last layer's output: log(target_scale)
            last = n.actor.module[0].module[2]
            last.weight[3:] = 0
            last.bias[3:] = math.log(target_scale)
        loss = cls(n.actor, n.critic)
        torch.manual_seed(0)
        out = loss(data.clone())
        if torch.isfinite(loss_sum(out)):
            loss_sum(out).backward()
        outs.append((loss, out))
    (ref, out_ref), (mine, out_ours) = outs
    scale = n.actor.get_dist_params(data.clone())["scale"]
    torch.testing.assert_close(scale, torch.full_like(scale, target_scale))
    for key in out_ref.keys():
        _same_or_both_nonfinite(out_ours[key], out_ref[key], rtol=1e-4, atol=1e-5)
    for p_ref, p_ours in zip(ref.parameters(), mine.parameters()):
        if p_ref.grad is not None:
            _same_or_both_nonfinite(p_ours.grad, p_ref.grad, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("dist", ["normal", "categorical", "tanh_normal"])
def test_float64_stays_float64_end_to_end(dist):
    def data_fn(nets):
        return make_data(dist, (2, 6), seed=5, nets=nets, with_advantage=False).apply(
            lambda x: x.double() if x.is_floating_point() else x
        )

    ref, mine, out_ref, out_ours = _pair(CLIPPED.torchrl, CLIPPED.module, dist, data_fn, dtype=torch.float64)
    assert all(v.dtype == torch.float64 for v in out_ours.values())
    for key in out_ref.keys():
        torch.testing.assert_close(out_ours[key], out_ref[key], rtol=1e-10, atol=1e-12)
    loss_sum(out_ours).backward()
    assert all(p.grad.dtype == torch.float64 for p in mine.parameters() if p.grad is not None)


@pytest.mark.parametrize("dist", ["normal", "categorical"])
def test_bfloat16_works_where_torchrl_does(dist):
    def data_fn(nets):
        return make_data(dist, (16,), seed=6, nets=nets).apply(
            lambda x: x.bfloat16() if x.is_floating_point() else x
        )

    try:
        ref, mine, out_ref, out_ours = _pair(CLIPPED.torchrl, CLIPPED.module, dist, data_fn, dtype=torch.bfloat16)
    except RuntimeError as err:  # pragma: no cover - only if TorchRL itself cannot run bf16
        pytest.skip(f"TorchRL's {CLIPPED.torchrl.__name__} fails in bfloat16 too: {err}")
    for key in out_ref.keys():
        assert out_ours[key].dtype == out_ref[key].dtype
        torch.testing.assert_close(out_ours[key].float(), out_ref[key].float(), rtol=2e-2, atol=2e-2)


def test_kernels_bfloat16_and_float16_run():
    for dtype in (torch.bfloat16, torch.float16):
        v, nv, r = (torch.randn(2, 8, 1).to(dtype) for _ in range(3))
        done = torch.zeros(2, 8, 1, dtype=torch.bool)
        adv, _ = generalized_advantage_estimate(0.9, 0.9, v, nv, r, done)
        ref, _ = generalized_advantage_estimate(0.9, 0.9, v.float(), nv.float(), r.float(), done)
        assert adv.dtype == dtype
        torch.testing.assert_close(adv.float(), ref, rtol=5e-2, atol=5e-2)


# ----------------------------------------------------------------------------- opt-in finiteness check


def _logits_td():
    B = 5
    return TensorDict(
        {
            "actor_output": {"logits": torch.randn(B, 3)},
            "action": torch.randint(3, (B,)),
            "action_log_prob": torch.randn(B),
            "advantage": torch.randn(B, 1),
            "value_target": torch.randn(B, 1),
            "state_value": torch.randn(B, 1),
        },
        [B],
    )


@pytest.mark.parametrize(
    "entry", ["advantage", "value_target", "state_value", "action_log_prob", ("actor_output", "logits")]
)
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_check_finite_names_the_entry(entry, bad):
    td = _logits_td()
    td[entry].view(-1)[1] = bad
    if entry != ("actor_output", "logits"):  # (torch's Categorical itself rejects NaN logits)
        CLIPPED.function(td, Categorical)  # off by default: computes (a non-finite number)
    with check_finite(), pytest.raises(NonFiniteEntryError) as info:
        CLIPPED.function(td, Categorical)
    assert info.value.loss == CLIPPED.name
    assert info.value.entry == entry
    assert ("NaN" if bad != bad else "infinite") in str(info.value)
    # the context is scoped
    if entry != ("actor_output", "logits"):
        CLIPPED.function(td, Categorical)


def test_check_finite_covers_estimation_inputs_and_kernels():
    B, T = 2, 4
    td = TensorDict(
        {
            "log_prob": torch.randn(B, T),
            "action_log_prob": torch.randn(B, T),
            "state_value": torch.randn(B, T, 1),
            "next": {"state_value": torch.randn(B, T, 1), "reward": torch.randn(B, T, 1),
                     "done": torch.zeros(B, T, 1, dtype=torch.bool)},
        },
        [B, T],
    )
    td["next", "reward"][0, 2] = float("nan")
    with check_finite():
        with pytest.raises(NonFiniteEntryError, match=rf"{CLIPPED.name}: \('next', 'reward'\)"):
            CLIPPED.function(td, entropy_bonus=False)
        with pytest.raises(NonFiniteEntryError, match="generalized_advantage_estimate: 'reward'"):
            generalized_advantage_estimate(0.9, 0.9, td["state_value"], td["next", "state_value"],
                                           td["next", "reward"], td["next", "done"])


def test_check_finite_is_off_until_a_context_turns_it_on():
    """A fresh process: the check is off (the entry reads skip the context lookup until some
    context enables it); turned on in one thread's context, it stays off in another thread and
    after the block."""
    import subprocess
    import sys

    code = """
import math, threading, torch
from tensordict import TensorDict
from torch.distributions import Categorical
import torchrl_functional.functional._validation as v
from torchrl_functional import check_finite, set_check_finite
from torchrl_functional.errors import NonFiniteEntryError
from torchrl_functional.functional import clip_ppo_loss
td = TensorDict({"advantage": torch.tensor([[1.0], [float("nan")]]), "action": torch.tensor([0, 1]),
                 "action_log_prob": torch.zeros(2), "actor_output": {"logits": torch.zeros(2, 3)},
                 "state_value": torch.zeros(2, 1), "value_target": torch.ones(2, 1)}, [2])
assert not v._EVER_ENABLED and not v.finite_checks_enabled()
assert math.isnan(clip_ppo_loss(td, Categorical)["loss_objective"].item())
with check_finite():
    assert v.finite_checks_enabled()
    seen = []
    t = threading.Thread(target=lambda: seen.append(v.finite_checks_enabled()))
    t.start(); t.join()
    assert seen == [False], seen
    try:
        clip_ppo_loss(td, Categorical)
        raise SystemExit("not checked")
    except NonFiniteEntryError:
        pass
assert v._EVER_ENABLED and not v.finite_checks_enabled()
set_check_finite(True)
assert v.finite_checks_enabled()
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stdout[-2000:] + proc.stderr[-2000:]

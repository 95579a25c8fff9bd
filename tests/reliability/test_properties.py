"""Property-based tests (hypothesis) of the kernels and TensorDict losses, each checked
against an independent computation on random shapes ``[B]``, ``[B, T]``, ``[B, T, F]``."""

from __future__ import annotations

import math

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensordict import TensorDict

from tests.functional.onpolicy_common import clipped_ratio_spec
from tests.specs import tagged
from torchrl_functional.functional import (
    generalized_advantage_estimate,
    reverse_discounted_scan,
    td0_return_estimate,
    td1_return_estimate,
    td_lambda_return_estimate,
)

#: the on-policy losses (registry) that need no behaviour distribution, and among them the
#: clipped and the plain importance-weighted PPO objectives
ON_POLICY = [s.function for s in tagged("on_policy") if "kl_penalty" not in s.tags]
clipped_ppo = clipped_ratio_spec().function
(plain_ppo,) = [s.function for s in tagged("importance_ratio")
               if "kl_penalty" not in s.tags and s.function is not clipped_ppo]

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

batch_shapes = st.one_of(
    st.tuples(st.integers(1, 9)),
    st.tuples(st.integers(1, 5), st.integers(1, 9)),
)
traj_shapes = st.tuples(st.integers(1, 4), st.integers(1, 20), st.integers(1, 3))  # [B, T, F]
unit = st.floats(0.0, 1.0)
seeds = st.integers(0, 2**31 - 1)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _policy_td(shape, seed, *, same_policy=False, dtype=torch.float64):
    g = _gen(seed)
    log_prob = torch.randn(shape, generator=g, dtype=dtype)
    prev = log_prob.clone() if same_policy else log_prob + 0.5 * torch.randn(shape, generator=g, dtype=dtype)
    return TensorDict(
        {
            "log_prob": log_prob.requires_grad_(),
            "action_log_prob": prev,
            "entropy": torch.rand(shape, generator=g, dtype=dtype),
            "advantage": torch.randn(*shape, 1, generator=g, dtype=dtype),
            "value_target": torch.randn(*shape, 1, generator=g, dtype=dtype),
            "state_value": torch.randn(*shape, 1, generator=g, dtype=dtype).requires_grad_(),
        },
        shape,
    )


# ----------------------------------------------------------------------------- PPO surrogate


@SETTINGS
@given(shape=batch_shapes, seed=seeds, eps=st.floats(0.01, 0.9))
def test_ratio_one_gives_minus_mean_advantage(shape, seed, eps):
    td = _policy_td(shape, seed, same_policy=True)
    out = clipped_ppo(td, clip_epsilon=eps, entropy_bonus=False, critic_coeff=None)
    torch.testing.assert_close(out["loss_objective"], -td["advantage"].mean())
    assert out["clip_fraction"].item() == 0.0
    torch.testing.assert_close(plain_ppo(td, entropy_bonus=False, critic_coeff=None)["loss_objective"],
                               -td["advantage"].mean())


@SETTINGS
@given(shape=batch_shapes, seed=seeds, eps=st.floats(0.01, 0.9))
def test_clipped_objective_is_a_pessimistic_bound(shape, seed, eps):
    """Per sample, min(rA, clip(r)A) <= rA: the clipped loss is never below the unclipped one."""
    td = _policy_td(shape, seed)
    clipped = clipped_ppo(td, clip_epsilon=eps, reduction="none", entropy_bonus=False, critic_coeff=None)
    plain = plain_ppo(td, reduction="none", entropy_bonus=False, critic_coeff=None)
    assert (clipped["loss_objective"] >= plain["loss_objective"] - 1e-12).all()
    # and equal where the ratio is inside the trust region
    lw = (td["log_prob"] - td["action_log_prob"]).detach()
    inside = (lw >= math.log1p(-eps)) & (lw <= math.log1p(eps))
    torch.testing.assert_close(clipped["loss_objective"][inside], plain["loss_objective"][inside])


@SETTINGS
@given(shape=batch_shapes, seed=seeds, fn=st.sampled_from(ON_POLICY))
def test_sum_is_mean_times_count(shape, seed, fn):
    td = _policy_td(shape, seed)
    mean = fn(td, reduction="mean")
    total = fn(td, reduction="sum")
    none = fn(td, reduction="none")
    n = math.prod(shape)
    for key in mean.keys():
        if key.startswith("loss_"):
            torch.testing.assert_close(total[key], mean[key] * n)
            assert none[key].shape == torch.Size(shape)
            torch.testing.assert_close(none[key].sum(), total[key])


@SETTINGS
@given(shape=batch_shapes, seed=seeds, fn=st.sampled_from(ON_POLICY))
def test_masked_entries_change_neither_values_nor_gradients(shape, seed, fn):
    td = _policy_td(shape, seed)
    g = _gen(seed + 1)
    mask = torch.rand(shape, generator=g) < 0.6
    mask.view(-1)[0] = True
    td["collector", "mask"] = mask
    noisy = td.clone()
    for key in ("advantage", "value_target"):
        noisy[key] = torch.where(mask.unsqueeze(-1), td[key], torch.randn_like(td[key]) * 1e3)
    noisy["entropy"] = torch.where(mask, td["entropy"], torch.randn_like(td["entropy"]))
    noisy["action_log_prob"] = torch.where(mask, td["action_log_prob"], torch.randn_like(td["action_log_prob"]))
    a, b = fn(td), fn(noisy)
    # reference: the valid samples alone, no mask
    flat = td.exclude("collector").reshape(-1)[mask.reshape(-1)]
    ref = fn(flat)
    for key in a.keys():
        if key.startswith("loss_"):
            torch.testing.assert_close(a[key], b[key])
            torch.testing.assert_close(a[key], ref[key])
    ga = torch.autograd.grad(sum(v for k, v in a.items() if k.startswith("loss_")), (td["log_prob"], td["state_value"]))
    gb = torch.autograd.grad(sum(v for k, v in b.items() if k.startswith("loss_")), (td["log_prob"], td["state_value"]))
    for x, y in zip(ga, gb):
        torch.testing.assert_close(x, y)
    assert torch.count_nonzero(ga[0][~mask]) == 0


# ----------------------------------------------------------------------------- value kernels


def _trajectory(shape, seed, p_done=0.0, dtype=torch.float64):
    g = _gen(seed)
    B, T, F = shape
    v = torch.randn(B, T + 1, F, generator=g, dtype=dtype)
    r = torch.randn(B, T, F, generator=g, dtype=dtype)
    done = torch.rand(B, T, F, generator=g) < p_done
    term = done & (torch.rand(B, T, F, generator=g) < 0.5)
    return v[:, :-1], v[:, 1:], r, done, term  # consistent: V(s'[t]) = V(s[t+1])


@SETTINGS
@given(shape=traj_shapes, seed=seeds, gamma=unit)
def test_gae_lambda_one_no_done_is_discounted_return_minus_value(shape, seed, gamma):
    v, nv, r, done, _ = _trajectory(shape, seed)
    adv, target = generalized_advantage_estimate(gamma, 1.0, v, nv, r, done)
    T = shape[1]
    expected = torch.empty_like(v)
    for t in range(T):  # discounted rewards to the end, bootstrapped with the last V(s')
        ret = sum(gamma**k * r[:, t + k] for k in range(T - t)) + gamma ** (T - t) * nv[:, -1]
        expected[:, t] = ret - v[:, t]
    torch.testing.assert_close(adv, expected)
    torch.testing.assert_close(target, expected + v)


@SETTINGS
@given(shape=traj_shapes, seed=seeds, gamma=unit, p_done=st.floats(0.0, 0.5))
def test_td_lambda_limits(shape, seed, gamma, p_done):
    _, nv, r, done, term = _trajectory(shape, seed, p_done)
    torch.testing.assert_close(td_lambda_return_estimate(gamma, 0.0, nv, r, done, term),
                               td0_return_estimate(gamma, nv, r, term))
    torch.testing.assert_close(td_lambda_return_estimate(gamma, 1.0, nv, r, done, term),
                               td1_return_estimate(gamma, nv, r, done, term))


@SETTINGS
@given(shape=traj_shapes, seed=seeds, dim=st.sampled_from([0, 1, 2]))
def test_scan_equals_python_recursion_on_any_dim(shape, seed, dim):
    g = _gen(seed)
    a = torch.rand(shape, generator=g, dtype=torch.float64)
    b = torch.randn(shape, generator=g, dtype=torch.float64)
    a_t, b_t = a.movedim(dim, 0), b.movedim(dim, 0)
    x, out = torch.zeros_like(b_t[0]), []
    for t in reversed(range(a_t.shape[0])):
        x = b_t[t] + a_t[t] * x
        out.append(x)
    expected = torch.stack(out[::-1], 0).movedim(0, dim)
    torch.testing.assert_close(reverse_discounted_scan(a, b, dim), expected)


@SETTINGS
@given(shape=traj_shapes, seed=seeds, gamma=st.floats(0.5, 0.999), lmbda=unit, p_done=st.floats(0.0, 0.4))
def test_gae_equals_its_recursion(shape, seed, gamma, lmbda, p_done):
    v, nv, r, done, term = _trajectory(shape, seed, p_done)
    adv, _ = generalized_advantage_estimate(gamma, lmbda, v, nv, r, done, term)
    a = torch.zeros_like(v[:, 0])
    for t in reversed(range(shape[1])):
        not_term, not_done = (~term[:, t]).double(), (~done[:, t]).double()
        delta = r[:, t] + gamma * not_term * nv[:, t] - v[:, t]
        a = delta + gamma * lmbda * not_done * a
        torch.testing.assert_close(adv[:, t], a)

"""Value kernels: values equal TorchRL's loop kernels; gradients w.r.t. gamma and lmbda
(0-d and per-step) equal autograd through a plain Python loop and pass gradcheck."""

from __future__ import annotations

import pytest
import torch
from torchrl.objectives.value import functional as trl

from torchrl_functional.errors import EntryDtypeError, EntryShapeError, HyperparameterError
from torchrl_functional.functional import value as V
from torchrl_functional.functional.vtrace import vtrace_advantage_estimate

# ----------------------------------------------------------------------------- references


def loop_scan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """x[t] = b[t] + a[t] x[t+1] along dim -2, the obvious way."""
    out = []
    x = torch.zeros_like(b[..., -1, :])
    for t in reversed(range(b.shape[-2])):
        x = b[..., t, :] + a[..., t, :] * x
        out.append(x)
    return torch.stack(out[::-1], -2)


def loop_gae(gamma, lmbda, v, nv, r, done, term):
    adv = []
    a = torch.zeros_like(v[..., -1, :])
    T = v.shape[-2]
    gamma = torch.as_tensor(gamma, dtype=v.dtype).expand_as(v)
    lmbda = torch.as_tensor(lmbda, dtype=v.dtype).expand_as(v)
    for t in reversed(range(T)):
        nd = (~done[..., t, :]).to(v.dtype)
        nt = (~term[..., t, :]).to(v.dtype)
        delta = r[..., t, :] + gamma[..., t, :] * nt * nv[..., t, :] - v[..., t, :]
        a = delta + gamma[..., t, :] * lmbda[..., t, :] * nd * a
        adv.append(a)
    adv = torch.stack(adv[::-1], -2)
    return adv, adv + v


def loop_td_lambda(gamma, lmbda, nv, r, done, term):
    T = nv.shape[-2]
    gamma = torch.as_tensor(gamma, dtype=nv.dtype).expand_as(nv)
    lmbda = torch.as_tensor(lmbda, dtype=nv.dtype).expand_as(nv)
    out = []
    g = None
    for t in reversed(range(T)):
        v_next = (~term[..., t, :]).to(nv.dtype) * nv[..., t, :]
        if t == T - 1:
            boot = v_next
        else:
            d = done[..., t, :].to(nv.dtype)
            boot = d * v_next + (1 - d) * g
        g = r[..., t, :] + gamma[..., t, :] * ((1 - lmbda[..., t, :]) * v_next + lmbda[..., t, :] * boot)
        out.append(g)
    return torch.stack(out[::-1], -2)


# ----------------------------------------------------------------------------- data


def make_traj(shape=(3, 11, 1), seed=0, dtype=torch.float32, p_done=0.2):
    g = torch.Generator().manual_seed(seed)
    v, nv, r = (torch.randn(shape, generator=g, dtype=dtype) for _ in range(3))
    done = torch.rand(shape, generator=g) < p_done
    term = done & (torch.rand(shape, generator=g) < 0.5)
    return v, nv, r, done, term


GAMMAS = {
    "float": lambda shape: 0.93,
    "0d": lambda shape: torch.tensor(0.93),
    "per_step": lambda shape: torch.rand(shape, generator=torch.Generator().manual_seed(7)) * 0.2 + 0.8,
}
SHAPES = [(1, 1), (2, 1), (7, 1), (3, 11, 1), (2, 4, 16, 1), (3, 5, 2), (2, 33, 1)]


# ----------------------------------------------------------------------------- values vs TorchRL


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("gamma_kind", list(GAMMAS))
def test_gae_matches_torchrl_loop(shape, gamma_kind):
    v, nv, r, done, term = make_traj(shape)
    gamma = GAMMAS[gamma_kind](shape)
    ref_adv, ref_target = trl.generalized_advantage_estimate(gamma, 0.87, v, nv, r, done, term)
    adv, target = V.generalized_advantage_estimate(gamma, 0.87, v, nv, r, done, term)
    torch.testing.assert_close(adv, ref_adv)
    torch.testing.assert_close(target, ref_target)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("gamma_kind", list(GAMMAS))
def test_td_lambda_and_td1_match_torchrl_loop(shape, gamma_kind):
    v, nv, r, done, term = make_traj(shape, seed=1)
    gamma = GAMMAS[gamma_kind](shape)
    torch.testing.assert_close(
        V.td_lambda_return_estimate(gamma, 0.7, nv, r, done, term),
        trl.td_lambda_return_estimate(gamma, 0.7, nv, r, done, term),
    )
    torch.testing.assert_close(
        V.td1_return_estimate(gamma, nv, r, done, term),
        trl.td1_return_estimate(gamma, nv, r, done, term),
    )
    torch.testing.assert_close(
        V.td_lambda_advantage_estimate(gamma, 0.7, v, nv, r, done, term),
        trl.td_lambda_advantage_estimate(gamma, 0.7, v, nv, r, done, term),
    )
    torch.testing.assert_close(
        V.td1_advantage_estimate(gamma, v, nv, r, done, term),
        trl.td1_advantage_estimate(gamma, v, nv, r, done, term),
    )


@pytest.mark.parametrize("shape", SHAPES)
def test_td0_matches_torchrl(shape):
    v, nv, r, done, term = make_traj(shape, seed=2)
    torch.testing.assert_close(V.td0_return_estimate(0.9, nv, r, term), trl.td0_return_estimate(0.9, nv, r, term))
    torch.testing.assert_close(
        V.td0_advantage_estimate(0.9, v, nv, r, done, term), trl.td0_advantage_estimate(0.9, v, nv, r, done, term)
    )


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("thresh", [(1.0, 1.0), (0.5, 2.0)])
def test_vtrace_matches_torchrl(shape, thresh):
    v, nv, r, done, term = make_traj(shape, seed=3)
    g = torch.Generator().manual_seed(9)
    log_pi, log_mu = torch.randn(shape, generator=g) * 0.5, torch.randn(shape, generator=g) * 0.5
    ref = trl.vtrace_advantage_estimate(0.9, log_pi, log_mu, v, nv, r, done, term, *thresh)
    ours = vtrace_advantage_estimate(0.9, log_pi, log_mu, v, nv, r, done, term, *thresh)
    torch.testing.assert_close(ours[0], ref[0])
    torch.testing.assert_close(ours[1], ref[1])


@pytest.mark.parametrize("time_dim", [0, 1, -3])
def test_time_dim(time_dim):
    v, nv, r, done, term = make_traj((4, 6, 5, 1), seed=4)
    ref = trl.generalized_advantage_estimate(0.9, 0.8, v, nv, r, done, term, time_dim=time_dim)
    ours = V.generalized_advantage_estimate(0.9, 0.8, v, nv, r, done, term, time_dim=time_dim)
    torch.testing.assert_close(ours[0], ref[0])
    torch.testing.assert_close(
        V.td_lambda_return_estimate(0.9, 0.8, nv, r, done, term, time_dim=time_dim),
        trl.td_lambda_return_estimate(0.9, 0.8, nv, r, done, term, time_dim=time_dim),
    )


def test_terminated_defaults_to_done():
    v, nv, r, done, _ = make_traj((2, 9, 1), seed=5)
    torch.testing.assert_close(
        V.generalized_advantage_estimate(0.9, 0.8, v, nv, r, done)[0],
        V.generalized_advantage_estimate(0.9, 0.8, v, nv, r, done, done)[0],
    )


@pytest.mark.parametrize("steps", [1, 2, 3, 5, 8, 17, 64, 100])
def test_reverse_discounted_scan_equals_loop(steps):
    g = torch.Generator().manual_seed(steps)
    a = torch.rand(2, steps, 3, generator=g)
    b = torch.randn(2, steps, 3, generator=g)
    torch.testing.assert_close(V.reverse_discounted_scan(a, b), loop_scan(a, b))
    # other time dims and zero discounts (episode boundaries) are exact cuts
    a[:, steps // 2] = 0
    torch.testing.assert_close(
        V.reverse_discounted_scan(a.transpose(0, 1), b.transpose(0, 1), dim=0),
        loop_scan(a, b).transpose(0, 1),
    )


def test_lambda_limits():
    """TD(lambda) at lambda=0 is TD(0), at lambda=1 it is TD(1); GAE(1) = MC return - V
    (the last identity needs consistent values: V(s'[t]) = V(s[t+1]) inside a trajectory)."""
    v, nv, r, done, term = make_traj((3, 12, 1), seed=6)
    nv = torch.where(done, nv, torch.cat([v[:, 1:], nv[:, -1:]], 1))
    torch.testing.assert_close(V.td_lambda_return_estimate(0.9, 0.0, nv, r, done, term), V.td0_return_estimate(0.9, nv, r, term))
    torch.testing.assert_close(V.td_lambda_return_estimate(0.9, 1.0, nv, r, done, term), V.td1_return_estimate(0.9, nv, r, done, term))
    adv, _ = V.generalized_advantage_estimate(0.9, 1.0, v, nv, r, done, term)
    torch.testing.assert_close(adv, V.td1_return_estimate(0.9, nv, r, done, term) - v)


def test_hand_computed_gae():
    # T=3, no done, gamma=0.5, lambda=0.5: deltas then A2 = d2, A1 = d1 + .25 d2, A0 = d0 + .25 A1
    v = torch.tensor([[1.0], [2.0], [3.0]])
    nv = torch.tensor([[2.0], [3.0], [4.0]])
    r = torch.tensor([[1.0], [0.0], [2.0]])
    done = torch.zeros(3, 1, dtype=torch.bool)
    d = r + 0.5 * nv - v  # [1, -0.5, 1]
    expected = torch.tensor([[d[0, 0] + 0.25 * (d[1, 0] + 0.25 * d[2, 0])], [d[1, 0] + 0.25 * d[2, 0]], [d[2, 0]]])
    adv, target = V.generalized_advantage_estimate(0.5, 0.5, v, nv, r, done)
    torch.testing.assert_close(adv, expected)
    torch.testing.assert_close(target, expected + v)
    assert adv[0, 0].item() == pytest.approx(1.0 + 0.25 * (-0.5 + 0.25))


# ----------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("kind", ["0d", "per_step"])
def test_gae_grad_gamma_lambda_equals_python_loop(kind):
    v, nv, r, done, term = make_traj((2, 13, 1), seed=7, dtype=torch.float64)
    if kind == "0d":
        gamma = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
        lmbda = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    else:
        gamma = (torch.rand(2, 13, 1, dtype=torch.float64) * 0.2 + 0.75).requires_grad_()
        lmbda = (torch.rand(2, 13, 1, dtype=torch.float64) * 0.2 + 0.75).requires_grad_()
    w = torch.randn(2, 13, 1, dtype=torch.float64)
    ours = (V.generalized_advantage_estimate(gamma, lmbda, v, nv, r, done, term)[0] * w).sum()
    g_ours = torch.autograd.grad(ours, (gamma, lmbda))
    ref = (loop_gae(gamma, lmbda, v, nv, r, done, term)[0] * w).sum()
    g_ref = torch.autograd.grad(ref, (gamma, lmbda))
    for a, b in zip(g_ours, g_ref):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("kind", ["0d", "per_step"])
def test_td_lambda_grad_equals_python_loop(kind):
    _, nv, r, done, term = make_traj((2, 10, 1), seed=8, dtype=torch.float64)
    if kind == "0d":
        gamma = torch.tensor(0.95, dtype=torch.float64, requires_grad=True)
        lmbda = torch.tensor(0.6, dtype=torch.float64, requires_grad=True)
    else:
        gamma = (torch.rand(2, 10, 1, dtype=torch.float64) * 0.2 + 0.75).requires_grad_()
        lmbda = (torch.rand(2, 10, 1, dtype=torch.float64) * 0.5 + 0.25).requires_grad_()
    w = torch.randn(2, 10, 1, dtype=torch.float64)
    g_ours = torch.autograd.grad((V.td_lambda_return_estimate(gamma, lmbda, nv, r, done, term) * w).sum(), (gamma, lmbda))
    g_ref = torch.autograd.grad((loop_td_lambda(gamma, lmbda, nv, r, done, term) * w).sum(), (gamma, lmbda))
    for a, b in zip(g_ours, g_ref):
        torch.testing.assert_close(a, b)
    # also TorchRL's loop kernel (the only TorchRL TD(lambda) kernel with a correct gamma gradient)
    g_trl = torch.autograd.grad((trl.td_lambda_return_estimate(gamma, lmbda, nv, r, done, term) * w).sum(), (gamma, lmbda))
    for a, b in zip(g_ours, g_trl):
        torch.testing.assert_close(a, b)


def test_gradcheck_float64():
    v, nv, r, done, term = make_traj((2, 7, 1), seed=9, dtype=torch.float64)
    v.requires_grad_()
    r.requires_grad_()
    gamma = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    lmbda = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    gamma_t = (torch.rand(2, 7, 1, dtype=torch.float64) * 0.3 + 0.6).requires_grad_()

    def gae(g, lam, val, rew):
        return V.generalized_advantage_estimate(g, lam, val, nv, rew, done, term)[0]

    assert torch.autograd.gradcheck(gae, (gamma, lmbda, v, r))
    assert torch.autograd.gradcheck(gae, (gamma_t, lmbda, v, r))
    assert torch.autograd.gradcheck(lambda g, lam: V.td_lambda_return_estimate(g, lam, nv, r, done, term), (gamma_t, lmbda))
    assert torch.autograd.gradcheck(lambda g: V.td1_return_estimate(g, nv, r, done, term), (gamma,))
    assert torch.autograd.gradcheck(lambda g: V.td0_return_estimate(g, nv, r, term), (gamma_t,))
    lp = torch.randn(2, 7, 1, dtype=torch.float64) * 0.3
    assert torch.autograd.gradcheck(
        lambda g, val: vtrace_advantage_estimate(g, lp, torch.zeros_like(lp), val, nv, r, done, term)[1], (gamma, v)
    )


def test_torchrl_vectorized_gae_gamma_gradient_is_wrong_for_0d_gamma():
    """Pins the TorchRL 0.14.1 discrepancy this library fixes (see README): the vectorized
    GAE returns a wrong gradient w.r.t. a 0-d gamma; ours and TorchRL's loop kernel agree."""
    v, nv, r, done, term = make_traj((2, 9, 1), seed=10, dtype=torch.float64, p_done=0.0)
    gamma = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    g_loop = torch.autograd.grad(trl.generalized_advantage_estimate(gamma, 0.8, v, nv, r, done, term)[0].sum(), gamma)[0]
    g_ours = torch.autograd.grad(V.generalized_advantage_estimate(gamma, 0.8, v, nv, r, done, term)[0].sum(), gamma)[0]
    torch.testing.assert_close(g_ours, g_loop)
    try:
        g_vec = torch.autograd.grad(trl.vec_generalized_advantage_estimate(gamma, 0.8, v, nv, r, done, term)[0].sum(), gamma)[0]
    except RuntimeError:  # no graph to gamma at all is also "wrong"
        return
    assert not torch.allclose(g_vec, g_loop)


# ----------------------------------------------------------------------------- bad input


def test_bad_inputs_raise_named_errors():
    v, nv, r, done, term = make_traj((2, 5, 1))
    with pytest.raises(EntryShapeError, match="generalized_advantage_estimate.*reward"):
        V.generalized_advantage_estimate(0.9, 0.9, v, nv, r[..., 0], done, term)
    with pytest.raises(EntryDtypeError, match="done.*torch.bool"):
        V.generalized_advantage_estimate(0.9, 0.9, v, nv, r, done.float(), term)
    with pytest.raises(EntryDtypeError, match="state_value"):
        V.generalized_advantage_estimate(0.9, 0.9, v.long(), nv, r, done, term)
    with pytest.raises(HyperparameterError, match="gamma.*<= 1"):
        V.generalized_advantage_estimate(1.5, 0.9, v, nv, r, done, term)
    with pytest.raises(HyperparameterError, match="lmbda.*>= 0"):
        V.td_lambda_return_estimate(0.9, torch.tensor(-0.1), nv, r, done, term)
    with pytest.raises(EntryShapeError, match="gamma.*broadcast"):
        V.generalized_advantage_estimate(torch.full((2, 5, 1, 1), 0.9), 0.9, v, nv, r, done, term)
    with pytest.raises(EntryShapeError, match="time_dim"):
        V.td1_return_estimate(0.9, nv, r, done, term, time_dim=3)
    with pytest.raises(HyperparameterError, match="gamma"):
        V.td0_return_estimate("0.9", nv, r, term)
    # nothing was modified
    v2, nv2, r2, done2, term2 = make_traj((2, 5, 1))
    for a, b in zip((v, nv, r, done, term), (v2, nv2, r2, done2, term2)):
        assert torch.equal(a, b)


def test_factor_broadcast_rule_matches_torch():
    # a discount must broadcast to the values without enlarging them (torch.broadcast_shapes rule)
    import itertools

    shapes = [(), (1,), (0,), (3,), (1, 3), (2, 1), (2, 3), (3, 1), (1, 1, 1), (2, 0), (0, 3), (4, 2, 3)]
    for a, b in itertools.product(shapes, repeat=2):
        try:
            want = torch.broadcast_shapes(a, b) == torch.Size(b)
        except RuntimeError:
            want = False
        assert V._broadcasts_to(torch.Size(a), torch.Size(b)) == want, (a, b)

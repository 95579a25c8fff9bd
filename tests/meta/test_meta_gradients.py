"""Meta-gradients agree with central finite differences in float64 (relative error < 1e-4):

- MGRL (``examples/mgrl.py``): the meta-objective after a differentiable actor-critic update
  whose functional loss estimates the advantage with GAE, w.r.t. ``gamma`` and ``lmbda``;
- LPG (``examples/lpg.py``): the meta-objective after ``vmap``-ed per-task updates driven by
  the LSTM's ``Psi``, w.r.t. the LSTM parameters;
- the tensor kernels and every loss of the table: the GAE inside the loss w.r.t. a 0-d
  ``gamma``, where TorchRL 0.14.1's vectorized kernel is wrong (pinned).
"""

from __future__ import annotations

import os
import sys

import pytest
import torch
from torchrl.objectives.value.functional import generalized_advantage_estimate as torchrl_loop_gae
from torchrl.objectives.value.functional import vec_generalized_advantage_estimate as torchrl_vec_gae

from torchrl_functional.functional import generalized_advantage_estimate

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples"))
import lpg  # noqa: E402
import mgrl  # noqa: E402
from envs import TabularMDP, delayed_reward, stack_tasks  # noqa: E402

RTOL = 1e-4
EPS = 1e-6


def _central_difference(f, x: torch.Tensor, direction: torch.Tensor, eps: float = EPS) -> float:
    """(f(x + eps d) - f(x - eps d)) / 2 eps (with autograd on: inner updates need it)."""
    return float((f(x + eps * direction) - f(x - eps * direction)).detach() / (2 * eps))


def _assert_close_rel(got: float, want: float, what: str) -> None:
    assert abs(want) > 1e-8, f"{what}: degenerate case, the finite difference is {want}"
    rel = abs(got - want) / abs(want)
    assert rel < RTOL, f"{what}: meta-gradient {got:.10g}, finite difference {want:.10g}, relative error {rel:.2e}"


# --------------------------------------------------------------------------- MGRL


def _mgrl_setup(cfg: mgrl.MGRLConfig, seed: int = 0):
    torch.manual_seed(seed)
    task = delayed_reward(cfg.delay, cfg.r_now, cfg.r_later, max_steps=cfg.horizon)
    env = TabularMDP(task, batch_size=[cfg.n_envs], seed=seed)
    agent = mgrl.Agent(env.n_states, env.n_actions).double()
    g = torch.Generator().manual_seed(seed)
    params = {k: 0.5 * torch.randn(v.shape, generator=g, dtype=torch.float64) for k, v in agent.named_parameters()}
    batch = mgrl.collect(env, agent, params, cfg.horizon)
    next_batch = mgrl.collect(env, agent, params, cfg.horizon)
    return agent, params, batch, next_batch


# Adam's first step is nearly sign(g): meta-gradients are ~1e-7, so a larger step keeps the
# finite difference above float64 round-off (its truncation error stays below 1e-8 relative)
@pytest.mark.parametrize("inner_loss, optimizer, eps", [("a2c", "sgd", EPS), ("ppo", "sgd", EPS), ("a2c", "adam", 1e-4)])
def test_mgrl_meta_gradient_wrt_gamma_and_lmbda(inner_loss: str, optimizer: str, eps: float):
    """One differentiable update (with several, the meta-gradient is truncated by design: the
    critic values inside the later GAE are detached, as in TorchRL, and Adam's moments are
    carried as constants; finite differences would see those paths)."""
    cfg = mgrl.MGRLConfig(n_envs=4, horizon=10, inner_loss=inner_loss, inner_optimizer=optimizer,
                          inner_steps=1, inner_lr=0.3, gamma=0.7, lmbda=0.8)
    agent, params, batch, next_batch = _mgrl_setup(cfg)
    eta = mgrl.meta_params(cfg, torch.float64)

    def f(name):
        def at(x):
            value, _ = mgrl.meta_loss({**eta, name: x}, agent, params, batch, next_batch, cfg)
            return value
        return at

    loss, _ = mgrl.meta_loss(eta, agent, params, batch, next_batch, cfg)
    grads = torch.autograd.grad(loss, [eta["gamma"], eta["lmbda"]])
    for name, g in zip(("gamma", "lmbda"), grads):
        x = eta[name].detach()
        _assert_close_rel(float(g), _central_difference(f(name), x, torch.ones_like(x), eps), f"d meta / d {name}")


# --------------------------------------------------------------------------- LPG


def test_lpg_meta_gradient_wrt_lstm_parameters():
    cfg = lpg.LPGConfig(n_tasks=3, n_envs=3, horizon=6, hidden=4)
    torch.manual_seed(0)
    env = TabularMDP(stack_tasks(lpg.make_tasks(cfg.n_tasks), cfg.n_envs), seed=0)
    base, params = lpg.init_agents(cfg.n_tasks, torch.float64)
    g = torch.Generator().manual_seed(1)
    params = {k: 0.5 * torch.randn(v.shape, generator=g, dtype=torch.float64) for k, v in params.items()}
    batch = lpg.collect(env, base, params, cfg.horizon)
    next_batch = lpg.collect(env, base, params, cfg.horizon)
    meta_net = lpg.LPGNet(cfg.hidden).double()
    phi = {k: v.detach() for k, v in meta_net.named_parameters()}

    def f(flat: torch.Tensor) -> torch.Tensor:
        return lpg.meta_loss(meta_net, _unflatten(flat, phi), base, params, batch, next_batch, cfg)

    flat = torch.cat([v.reshape(-1) for v in phi.values()]).requires_grad_(True)
    (grad,) = torch.autograd.grad(f(flat), flat)
    assert grad.abs().sum() > 0
    # every parameter tensor of the LSTM and the head: its largest gradient coordinate
    offset = 0
    for name, v in phi.items():
        i = offset + int(grad[offset:offset + v.numel()].abs().argmax())
        e = torch.zeros_like(flat)
        e[i] = 1
        _assert_close_rel(float(grad[i]), _central_difference(f, flat.detach(), e), f"d meta / d {name}[{i - offset}]")
        offset += v.numel()
    # and random directions through all of them at once
    for k in range(3):
        d = torch.randn(flat.shape, generator=g, dtype=torch.float64)
        _assert_close_rel(float(grad @ d), _central_difference(f, flat.detach(), d), f"direction {k}")


def _unflatten(flat: torch.Tensor, like: dict) -> dict:
    out, offset = {}, 0
    for name, v in like.items():
        out[name] = flat[offset:offset + v.numel()].view_as(v)
        offset += v.numel()
    return out


# --------------------------------------------------------------------------- GAE w.r.t. a 0-d gamma


def _gae_inputs():
    g = torch.Generator().manual_seed(0)
    shape = (3, 8, 1)
    value = torch.randn(shape, generator=g, dtype=torch.float64)
    next_value = torch.randn(shape, generator=g, dtype=torch.float64)
    reward = torch.randn(shape, generator=g, dtype=torch.float64)
    done = torch.zeros(shape, dtype=torch.bool)
    done[0, 3] = done[1, 5] = True
    terminated = done.clone()
    return value, next_value, reward, done, terminated


@pytest.mark.parametrize("impl", ["ours", "torchrl_loop", "torchrl_vec"])
def test_gae_gradient_wrt_0d_gamma(impl: str):
    """Ours and TorchRL's loop kernel agree with finite differences; TorchRL 0.14.1's
    vectorized kernel returns a wrong gradient for a 0-d tensor gamma (pinned)."""
    kernel = {"ours": generalized_advantage_estimate, "torchrl_loop": torchrl_loop_gae,
              "torchrl_vec": torchrl_vec_gae}[impl]
    value, next_value, reward, done, terminated = _gae_inputs()

    def f(gamma):
        adv, _ = kernel(gamma, torch.tensor(0.9, dtype=torch.float64), value, next_value, reward, done, terminated)
        return (adv * torch.linspace(-1, 1, adv.numel(), dtype=torch.float64).view_as(adv)).sum()

    gamma = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(f(gamma), gamma)
    fd = _central_difference(f, gamma.detach(), torch.ones_like(gamma))
    if impl == "torchrl_vec":
        assert abs(float(grad) - fd) / abs(fd) > 1e-2, "TorchRL's vectorized GAE gradient is now correct"
    else:
        _assert_close_rel(float(grad), fd, impl)


def test_torchrl_td_estimator_classes_cut_a_tensor_gamma():
    """TorchRL 0.14.1's TD(0)/TD(1)/TD(lambda) classes copy ``gamma`` with ``torch.tensor``:
    their estimates do not depend on a ``gamma`` that requires grad (pinned). Ours keep it
    (the ``td0`` layouts and ``td1``/``td_lambda`` hyperparameters of the registry, ``tests/specs/``)."""
    import warnings

    from tensordict import TensorDict
    from torchrl.objectives.value import TD0Estimator, TD1Estimator, TDLambdaEstimator

    value, next_value, reward, done, terminated = _gae_inputs()
    td = TensorDict({"state_value": value, "next": {"state_value": next_value, "reward": reward, "done": done,
                                                     "terminated": terminated}}, batch_size=value.shape[:-1])
    gamma = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    for cls, kwargs in ((TD0Estimator, {}), (TD1Estimator, {}), (TDLambdaEstimator, {"lmbda": 0.9})):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            estimator = cls(gamma=gamma, value_network=None, **kwargs)
        out = estimator(td.clone())
        assert not out["advantage"].requires_grad, cls.__name__


def test_meta_gradient_compiles_fullgraph_and_matches_finite_differences():
    """The whole MGRL meta-step as one torch.func function -- ``grad`` w.r.t. ``gamma``/``lmbda``
    of a policy-gradient objective of fast weights made by an inner ``grad`` of the example's
    inner loss (its default functional loss, GAE inside) -- compiles with ``fullgraph=True`` and
    gives the finite-difference meta-gradient."""
    from torch.distributions import Categorical
    from torch.func import functional_call, grad

    cfg = mgrl.MGRLConfig(n_envs=4, horizon=8)
    agent, params, batch, next_batch = _mgrl_setup(cfg)
    advantage, mask = mgrl.reference_advantage(next_batch, cfg.reference_gamma, cfg.meta_tail)

    def inner(p, gamma, lmbda):
        return mgrl.inner_loss(agent, p, batch, gamma, lmbda, cfg)

    def outer(gamma, lmbda):
        g = grad(inner)(params, gamma, lmbda)
        fast = {k: v - 0.3 * g[k] for k, v in params.items()}
        logits, _ = functional_call(agent, fast, (next_batch["observation"],))
        log_prob = Categorical(logits=logits).log_prob(next_batch["action"])
        return torch.where(mask, -log_prob * advantage.squeeze(-1), 0.0).sum() / mask.sum()

    torch._dynamo.reset()
    compiled = torch.compile(grad(outer, argnums=(0, 1)), fullgraph=True, backend="aot_eager")
    gamma, lmbda = torch.tensor(0.8, dtype=torch.float64), torch.tensor(0.9, dtype=torch.float64)
    got = compiled(gamma, lmbda)
    eager = grad(outer, argnums=(0, 1))(gamma, lmbda)
    for g, e in zip(got, eager):
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-12)
    _assert_close_rel(float(got[0]), _central_difference(lambda x: outer(x, lmbda), gamma, torch.ones_like(gamma)), "gamma")
    _assert_close_rel(float(got[1]), _central_difference(lambda x: outer(gamma, x), lmbda, torch.ones_like(lmbda)), "lmbda")

"""Short CI versions of the meta-learning examples, and checks of their pieces:
the tabular TorchRL environments against hand-computed rollouts, and the differentiable
inner optimizers against ``torch.optim``."""

from __future__ import annotations

import os
import sys

import pytest
import torch
from tensordict import TensorDict
from torchrl.envs.utils import check_env_specs

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples"))
import lpg  # noqa: E402
import mgrl  # noqa: E402
from envs import TabularMDP, bandit, corridor, delayed_reward, stack_tasks  # noqa: E402

# --------------------------------------------------------------------------- environments


def _constant_policy(action: int):
    def policy(td):
        td["action"] = torch.full(td.batch_size, action, dtype=torch.long)
        return td
    return policy


def test_delayed_reward_env_pays_later_as_documented():
    env = TabularMDP(delayed_reward(delay=3, r_now=0.1, r_later=0.3, max_steps=6), batch_size=[2])
    check_env_specs(env)
    wait = env.rollout(6, _constant_policy(1), break_when_any_done=False)
    now = env.rollout(6, _constant_policy(0), break_when_any_done=False)
    torch.testing.assert_close(wait["next", "reward"][0, :, 0], torch.tensor([0, 0, 0, 0.3, 0.3, 0.3]))
    torch.testing.assert_close(now["next", "reward"][0, :, 0], torch.full((6,), 0.1))
    # truncated (not terminated) at max_steps
    assert wait["next", "truncated"][:, -1].all() and not wait["next", "terminated"].any()
    assert not wait["next", "done"][:, :-1].any()
    # gamma* is where waiting and taking now are worth the same
    gamma = (0.1 / 0.3) ** (1 / 3)
    assert gamma**3 * 0.3 == pytest.approx(0.1)


def test_corridor_and_bandit_rewards_and_partial_reset():
    tasks = [corridor(5, 3, goal_right=True), corridor(5, 3, goal_right=False),
             bandit([0.1, 0.4, 0.9], n_states=5, reward_noise=0.0)]
    env = TabularMDP(stack_tasks(tasks, 2))
    check_env_specs(env)
    right = env.rollout(6, _constant_policy(1), break_when_any_done=False)
    r = right["next", "reward"][..., 0]
    done = right["next", "done"][..., 0]
    # start in the middle (state 2): two steps to leave at the right end, then a reset
    torch.testing.assert_close(r[0, 0], torch.tensor([0, 0, 1.0, 0, 0, 1.0]))  # goal on the right
    torch.testing.assert_close(r[1, 0], torch.tensor([0, 0, 0.1, 0, 0, 0.1]))  # distractor
    assert done[0, 0].tolist() == [False, False, True, False, False, True]
    torch.testing.assert_close(r[2, 0], torch.full((6,), 0.4))  # bandit arm 1, every step ends
    assert done[2].all()
    assert right["observation"][0, 0].argmax(-1).tolist() == [2, 3, 4, 2, 3, 4]


def test_bad_task_tables_and_options_are_rejected():
    with pytest.raises(ValueError, match="share the number of states and actions"):
        stack_tasks([bandit([0.1, 0.2]), bandit([0.1, 0.2, 0.3])], 2)
    with pytest.raises(ValueError, match="unknown inner optimizer"):
        mgrl.InnerOptimizer("rmsprop", lr=0.1)
    cfg = mgrl.MGRLConfig(inner_loss="dqn", n_envs=2, horizon=4)
    env = TabularMDP(delayed_reward(max_steps=4), batch_size=[2])
    agent = mgrl.Agent(env.n_states, env.n_actions)
    params = dict(agent.named_parameters())
    batch = mgrl.collect(env, agent, params, 4)
    with pytest.raises(ValueError, match="inner_loss"):
        mgrl.inner_loss(agent, params, batch, torch.tensor(0.9), torch.tensor(0.9), cfg)


# --------------------------------------------------------------------------- inner optimizers


def test_inner_adam_equals_torch_optim_adam():
    g = torch.Generator().manual_seed(0)
    params = {"w": torch.randn(4, 3, generator=g, dtype=torch.float64)}
    ref = torch.nn.Parameter(params["w"].clone())
    torch_adam = torch.optim.Adam([ref], lr=0.1)
    ours = mgrl.InnerOptimizer("adam", lr=0.1)
    for _ in range(3):
        grad = torch.randn(4, 3, generator=g, dtype=torch.float64)
        params = ours.step(params, {"w": grad})
        ref.grad = grad.clone()
        torch_adam.step()
        torch.testing.assert_close(params["w"], ref.detach(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_inner_optimizer_equals_torchopt(kind: str):
    """TorchOpt (optional) gives the same differentiable step and meta-gradient."""
    pytest.importorskip("torchopt")
    g = torch.Generator().manual_seed(0)
    w = torch.randn(5, generator=g, dtype=torch.float64)
    eta = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    results = []
    for impl in (kind, "torchopt-" + kind):
        opt = mgrl.InnerOptimizer(impl, lr=0.1)
        params = {"w": w.clone().requires_grad_(True)}
        for _ in range(2):
            (grad,) = torch.autograd.grad((eta * params["w"] ** 2).sum(), params["w"], create_graph=True)
            params = opt.step(params, {"w": grad})
        (meta,) = torch.autograd.grad(params["w"].sum(), eta)
        results.append((params["w"].detach(), meta))
    # TorchOpt 0.7.3's Adam differs from torch.optim.Adam by ~1e-6 relative from its second step
    tol = {"rtol": 1e-4, "atol": 1e-7} if kind == "adam" else {}
    torch.testing.assert_close(results[0][0], results[1][0], **tol)
    torch.testing.assert_close(results[0][1], results[1][1], **tol)


# --------------------------------------------------------------------------- CI versions


def test_mgrl_moves_gamma_towards_the_better_discount():
    """Short MGRL run: gamma starts at 0.5, below gamma* (~0.76) where waiting for the larger
    reward starts to pay, and the meta-gradient raises it past gamma* (the full run then
    learns to wait; see the README, "Meta-gradients")."""
    cfg = mgrl.MGRLConfig(n_envs=16, iterations=60, seed=0)
    history = mgrl.train(cfg, log=None)
    assert history["gamma"][-1] > cfg.gamma_star > cfg.gamma
    assert all(b >= a - 0.02 for a, b in zip(history["gamma"], history["gamma"][1:]))  # it goes up


def test_mgrl_main_writes_a_plot(tmp_path):
    mgrl.main(["--iterations", "3", "--n-envs", "4", "--out", str(tmp_path), "--threads", "1"])
    assert (tmp_path / "mgrl.png").stat().st_size > 1000


def test_lpg_meta_training_improves_the_rule():
    """Short LPG run on a fixed seed: fresh agents trained only with the LSTM's Psi reach a
    higher mean reward per step after meta-training than with the initial (random) rule."""
    cfg = lpg.LPGConfig(n_tasks=4, n_envs=8, iterations=80, eval_every=80, eval_updates=16, seed=0)
    history = lpg.train(cfg, log=None)
    assert history["iteration"] == [0, 80]
    initial, learned = history["eval"]
    assert learned > initial + 0.05, (initial, learned)


def test_lpg_agents_are_per_task_and_vmapped_update_equals_a_loop():
    """The vmapped per-task update equals updating each task's agent on its own."""
    cfg = lpg.LPGConfig(n_tasks=3, n_envs=2, horizon=5, hidden=4)
    torch.manual_seed(0)
    env = TabularMDP(stack_tasks(lpg.make_tasks(cfg.n_tasks), cfg.n_envs))
    base, params = lpg.init_agents(cfg.n_tasks)
    g = torch.Generator().manual_seed(1)
    params = {k: torch.randn(v.shape, generator=g) for k, v in params.items()}
    batch = lpg.collect(env, base, params, cfg.horizon)
    net = lpg.LPGNet(cfg.hidden)
    fast = lpg.inner_update(net, None, base, params, batch, cfg)
    for i in range(cfg.n_tasks):
        one = {k: v[i:i + 1] for k, v in params.items()}
        fast_i = lpg.inner_update(net, None, base, one, batch[i:i + 1], cfg)
        for k in fast:
            torch.testing.assert_close(fast[k][i], fast_i[k][0], rtol=1e-5, atol=1e-6)
        # and it moved: Psi drives a real update
        assert not torch.allclose(fast["actor.weight"][i], params["actor.weight"][i])


def test_lpg_main_writes_a_plot(tmp_path):
    lpg.main(["--iterations", "2", "--n-tasks", "2", "--n-envs", "2", "--eval-every", "2",
              "--eval-updates", "2", "--out", str(tmp_path), "--threads", "1"])
    assert (tmp_path / "lpg.png").stat().st_size > 1000


def test_lpg_features_see_psi_inputs_only_as_constants():
    cfg = lpg.LPGConfig(n_tasks=2, n_envs=2, horizon=4)
    env = TabularMDP(stack_tasks(lpg.make_tasks(2), 2))
    base, params = lpg.init_agents(2)
    batch = lpg.collect(env, base, params, cfg.horizon)
    params = {k: v.requires_grad_(True) for k, v in params.items()}
    logits, value = lpg.agent_outputs(base, params, batch["observation"])
    _, next_value = lpg.agent_outputs(base, params, batch["next", "observation"])
    x = lpg.features(batch, logits, value, next_value)
    assert x.shape == (2, 2, cfg.horizon, lpg.LPGNet.n_features)
    assert not x.requires_grad
    assert isinstance(batch, TensorDict)

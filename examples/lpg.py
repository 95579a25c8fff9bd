"""Learned Policy Gradient: an LSTM, shared by many tasks, learns the advantage-like signal.

Oh et al. 2020, "Discovering Reinforcement Learning Algorithms" (arXiv 2007.08794).

A meta-network ``Psi_phi`` (an LSTM run backwards in time) maps a trajectory's rewards, done
flags, policy probabilities and critic values to a per-step signal ``Psi_t``. Each of ``n``
tasks has its *own* agent (policy and critic parameters, not shared); the agents are stacked
with ``torch.func.stack_module_state`` and updated together with ``vmap`` over the task
dimension. The agents' update is the functional ``a2c_loss`` fed ``Psi_t`` as its
``"advantage"`` entry: the loss uses it as given, with its graph, so the meta-gradient reaches
the LSTM through the agents' updated parameters:

    theta_i'(phi) = theta_i - alpha * grad_theta a2c_loss(theta_i; advantage = Psi_phi(tau_i))
    phi          <- phi - beta * grad_phi mean_i L_meta(theta_i'(phi); fresh data of task i)

``L_meta`` is a policy-gradient objective with a reference Monte-Carlo advantage (the true
objective: the return). Tasks (see ``envs.py``): 3-armed bandits with permuted arm means and
5-state corridors with the goal at either end, all batched in one TorchRL environment.

The initial LSTM is a random rule: agents trained with it learn little. After meta-training,
fresh agents trained *only* with ``Psi`` (no return, no advantage estimator) reach a higher
mean reward per step. Run (under a minute on one core; writes ``runs/lpg/lpg.png``)::

    PYTHONPATH=. python examples/lpg.py
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import time
from dataclasses import dataclass, field

from _cli import (
    add_output_flag,
    add_threads_flag,
    non_negative_float,
    non_negative_int,
    open_unit_float,
    positive_float,
    positive_int,
)

N_STATES, N_ACTIONS = 5, 3


def _flag(default, type, help: str):
    """A config field that is also a command-line flag (``--field-name``)."""
    return field(default=default, metadata={"type": type, "help": help})


@dataclass
class LPGConfig:
    """Hyperparameters of the example (every field is a command-line flag)."""

    n_tasks: int = _flag(8, positive_int, "tasks, each with its own agent: even ones 3-armed bandits with "
                                          "rotated arm means, odd ones corridors with the goal on alternating sides")
    n_envs: int = _flag(16, positive_int, "parallel environments per task")
    horizon: int = _flag(16, positive_int, "steps per batch")
    hidden: int = _flag(16, positive_int, "LSTM width of the meta-network")
    inner_lr: float = _flag(0.5, positive_float, "SGD learning rate of the agents' update with Psi")
    meta_lr: float = _flag(3e-3, positive_float, "Adam learning rate of the meta-network")
    lifetime: int = _flag(20, positive_int, "agent updates before an agent is re-initialised")
    critic_gamma: float = _flag(0.9, open_unit_float, "discount of the critic's (fixed) value target, an "
                                                      "input of the LSTM")
    reference_gamma: float = _flag(0.9, open_unit_float, "discount of the meta-objective's Monte-Carlo advantage")
    critic_coeff: float = _flag(0.5, non_negative_float, "critic loss weight of the agents' loss")
    iterations: int = _flag(400, positive_int, "meta-updates (about 20 s on one core)")
    eval_updates: int = _flag(20, positive_int, "agent updates when evaluating a rule on fresh agents")
    eval_every: int = _flag(50, positive_int, "meta-updates between evaluations")
    seed: int = _flag(0, non_negative_int, "random seed")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lpg.py",
        description="Learned Policy Gradient (LPG): an LSTM shared by many tasks learns the advantage-like "
                    "signal Psi that trains the agents.",
        epilog="Writes <out>/lpg.png. Paper: Oh et al. 2020 (arXiv 2007.08794).")
    for f in dataclasses.fields(LPGConfig):
        parser.add_argument("--" + f.name.replace("_", "-"), type=f.metadata["type"], default=f.default,
                            help=f.metadata["help"] + " (default: %(default)s)")
    add_output_flag(parser, "lpg", "the plot")
    add_threads_flag(parser)
    return parser


def parse_args(argv=None) -> tuple[LPGConfig, argparse.Namespace]:
    args = build_parser().parse_args(argv)
    return LPGConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(LPGConfig)}), args


if __name__ == "__main__":
    parse_args()  # --help and usage errors before the heavy imports below (a second, not ten)

import torch
from envs import TabularMDP, bandit, corridor, stack_tasks
from tensordict import TensorDict
from torch import Tensor, nn
from torch.distributions import Categorical
from torch.func import functional_call, grad, stack_module_state, vmap

from torchrl_functional.functional import a2c_loss, td_lambda_return_estimate

Params = dict[str, Tensor]


def make_tasks(n_tasks: int) -> list:
    """Bandits with rotated arm means and corridors with the goal on alternating sides."""
    means = [0.1, 0.4, 0.9]
    tasks = []
    for i in range(n_tasks):
        if i % 2 == 0:
            k = (i // 2) % 3
            tasks.append(bandit(means[k:] + means[:k], n_states=N_STATES, reward_noise=0.1))
        else:
            tasks.append(corridor(N_STATES, N_ACTIONS, goal_right=(i // 2) % 2 == 0, max_steps=8))
    return tasks


class Agent(nn.Module):
    """Tabular policy logits and state value on one-hot states (one per task)."""

    def __init__(self) -> None:
        super().__init__()
        self.actor = nn.Linear(N_STATES, N_ACTIONS, bias=False)
        self.critic = nn.Linear(N_STATES, 1, bias=False)
        nn.init.zeros_(self.actor.weight)
        nn.init.zeros_(self.critic.weight)

    def forward(self, observation: Tensor) -> tuple[Tensor, Tensor]:
        return self.actor(observation), self.critic(observation)


class LPGNet(nn.Module):
    """The meta-network: per-step features ``[*B, T, 6]`` -> ``Psi`` ``[*B, T, 1]``, read
    backwards in time (``Psi_t`` sees steps ``t..T-1``, like a return)."""

    n_features = 6

    def __init__(self, hidden: int = 16) -> None:
        super().__init__()
        self.lstm = nn.LSTM(self.n_features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, features: Tensor) -> Tensor:
        batch = features.shape[:-2]
        x = features.reshape(-1, *features.shape[-2:]).flip(-2)
        h, _ = self.lstm(x)
        return self.head(h).flip(-2).reshape(*batch, features.shape[-2], 1)


# --------------------------------------------------------------------------- agents


def init_agents(n: int, dtype=torch.float32) -> tuple[Agent, Params]:
    """A stateless base agent (for ``functional_call``) and ``n`` stacked agents."""
    agents = [Agent().to(dtype) for _ in range(n)]
    params, _ = stack_module_state(agents)
    base = copy.deepcopy(agents[0]).to("meta")
    return base, {k: v.detach() for k, v in params.items()}


def agent_outputs(base: Agent, params: Params, observation: Tensor) -> tuple[Tensor, Tensor]:
    """Logits and values of every task's agent: ``params`` ``[n_tasks, ...]``, observations
    ``[n_tasks, *B, S]``."""
    return vmap(lambda p, o: functional_call(base, p, (o,)))(params, observation)


@torch.no_grad()
def collect(env: TabularMDP, base: Agent, params: Params, horizon: int) -> TensorDict:
    """A batch ``[n_tasks, n_envs, horizon]`` from every task's agent."""
    dtype = next(iter(params.values())).dtype

    def policy(td):
        logits, _ = agent_outputs(base, params, td["observation"].to(dtype))
        dist = Categorical(logits=logits)
        td["action"] = dist.sample()
        td["action_log_prob"] = dist.log_prob(td["action"])
        return td

    batch = env.rollout(horizon, policy, break_when_any_done=False)
    return batch.apply(lambda x: x.to(dtype) if x.is_floating_point() else x)


def reward_per_step(batch: TensorDict) -> Tensor:
    """Mean reward per step of each task, ``[n_tasks]``."""
    return batch["next", "reward"].flatten(1).mean(1)


# --------------------------------------------------------------------------- the learned rule


def features(batch: TensorDict, logits: Tensor, value: Tensor, next_value: Tensor) -> Tensor:
    """LSTM inputs per step: reward, done, terminated, pi(a|s), V(s), V(s') (all constants:
    the meta-gradient reaches the LSTM through the agents' updates only)."""
    prob = Categorical(logits=logits.detach()).log_prob(batch["action"]).exp().unsqueeze(-1)
    return torch.cat(
        [
            batch["next", "reward"],
            batch["next", "done"].to(value.dtype),
            batch["next", "terminated"].to(value.dtype),
            prob,
            value.detach(),
            next_value.detach(),
        ],
        -1,
    )


def critic_target(batch: TensorDict, next_value: Tensor, gamma: float) -> Tensor:
    """The critic's fixed-rule target: TD(lambda=0.9) return with discount ``gamma``."""
    return td_lambda_return_estimate(
        gamma, 0.9, next_value.detach(), batch["next", "reward"], batch["next", "done"],
        batch["next", "terminated"],
    )


def task_loss(params: Params, base: Agent, batch: TensorDict, psi: Tensor, value_target: Tensor,
              critic_coeff: float) -> Tensor:
    """One task's agent loss: A2C with ``Psi`` as the advantage (used as given, graph kept)."""
    logits, value = functional_call(base, params, (batch["observation"],))
    td = TensorDict(
        {
            "actor_output": {"logits": logits},
            "action": batch["action"],
            "advantage": psi,
            "value_target": value_target,
            "state_value": value,
        },
        batch_size=batch.batch_size,
    )
    out = a2c_loss(td, Categorical, entropy_bonus=False, critic_coeff=critic_coeff, loss_critic_type="l2")
    return out["loss_objective"] + out["loss_critic"]


def inner_update(meta_net: LPGNet, meta_params: Params | None, base: Agent, params: Params,
                 batch: TensorDict, cfg: LPGConfig) -> Params:
    """Every task's agent takes one SGD step on its LPG loss (``vmap`` over tasks of
    ``torch.func.grad``); the result depends on the LSTM parameters."""
    logits, value = agent_outputs(base, params, batch["observation"])
    _, next_value = agent_outputs(base, params, batch["next", "observation"])
    x = features(batch, logits, value, next_value)
    psi = meta_net(x) if meta_params is None else functional_call(meta_net, meta_params, (x,))
    target = critic_target(batch, next_value, cfg.critic_gamma)
    grads = vmap(grad(task_loss), in_dims=(0, None, 0, 0, 0, None))(
        params, base, batch, psi, target, cfg.critic_coeff
    )
    return {k: p - cfg.inner_lr * grads[k] for k, p in params.items()}


def reference_advantage(batch: TensorDict, gamma: float) -> tuple[Tensor, Tensor]:
    """Monte-Carlo return-to-go with discount ``gamma``, standardised per task, and the mask
    of steps whose episode ends inside the batch (only those have a complete return)."""
    reward, done = batch["next", "reward"], batch["next", "done"]
    ret = torch.zeros_like(reward[..., -1, :])
    returns = []
    for t in reversed(range(reward.shape[-2])):
        ret = reward[..., t, :] + gamma * (~done[..., t, :]) * ret
        returns.append(ret)
    returns = torch.stack(returns[::-1], -2)
    mask = done.squeeze(-1).flip(-1).to(torch.int8).cummax(-1).values.flip(-1).bool()
    m = mask.unsqueeze(-1).to(returns.dtype)
    dims = tuple(range(1, returns.ndim))
    count = m.sum(dims, keepdim=True).clamp_min(1)
    mean = (returns * m).sum(dims, keepdim=True) / count
    std = (((returns - mean) ** 2 * m).sum(dims, keepdim=True) / count).sqrt().clamp_min(1e-3)
    return (returns - mean) / std, mask


def meta_objective(base: Agent, params: Params, batch: TensorDict, cfg: LPGConfig) -> Tensor:
    """Mean over tasks of a policy-gradient objective with the reference advantage, evaluated
    at the updated agents on data they collected (ratios are 1: the gradient is the PG)."""
    advantage, mask = reference_advantage(batch, cfg.reference_gamma)

    def one(p, b, adv, msk):
        logits, _ = functional_call(base, p, (b["observation"],))
        td = TensorDict(
            {"actor_output": {"logits": logits}, "action": b["action"], "advantage": adv,
             ("collector", "mask"): msk},
            batch_size=b.batch_size,
        )
        return a2c_loss(td, Categorical, entropy_bonus=False, critic_coeff=None)["loss_objective"]

    return vmap(one)(params, batch, advantage, mask).mean()


def meta_loss(meta_net: LPGNet, meta_params: Params, base: Agent, params: Params, batch: TensorDict,
              next_batch: TensorDict, cfg: LPGConfig) -> Tensor:
    """The meta-objective as a function of the LSTM parameters, for fixed batches."""
    fast = inner_update(meta_net, meta_params, base, params, batch, cfg)
    return meta_objective(base, fast, next_batch, cfg)


# --------------------------------------------------------------------------- training


def evaluate_rule(meta_net: LPGNet, env: TabularMDP, cfg: LPGConfig, seed: int) -> float:
    """Train fresh agents with the rule for ``cfg.eval_updates`` updates; mean reward per
    step over tasks on the last quarter of the updates."""
    torch.manual_seed(seed)
    base, params = init_agents(cfg.n_tasks)
    rewards = []
    for _ in range(cfg.eval_updates):
        batch = collect(env, base, params, cfg.horizon)
        rewards.append(float(reward_per_step(batch).mean()))
        with torch.no_grad():  # torch.func.grad still differentiates the agent's loss
            params = inner_update(meta_net, None, base, params, batch, cfg)
    tail = max(1, cfg.eval_updates // 4)
    return sum(rewards[-tail:]) / tail


def train(cfg: LPGConfig, log=print) -> dict:
    """Meta-train the LSTM. Returns the history of evaluations and meta-losses."""
    torch.manual_seed(cfg.seed)
    env = TabularMDP(stack_tasks(make_tasks(cfg.n_tasks), cfg.n_envs), seed=cfg.seed)
    meta_net = LPGNet(cfg.hidden)
    opt = torch.optim.Adam(meta_net.parameters(), lr=cfg.meta_lr)
    base, params = init_agents(cfg.n_tasks)
    age = torch.arange(cfg.n_tasks) * cfg.lifetime // cfg.n_tasks  # staggered lifetimes
    history = {"iteration": [], "eval": [], "meta_loss": []}

    def evaluate(it):
        score = evaluate_rule(meta_net, env, cfg, seed=10_000 + cfg.seed)
        history["iteration"].append(it)
        history["eval"].append(score)
        if log is not None:
            log(f"iter {it:4d}  reward/step of fresh agents trained with the rule: {score:.3f}")
        torch.manual_seed(cfg.seed + it + 1)

    evaluate(0)
    batch = collect(env, base, params, cfg.horizon)
    for it in range(cfg.iterations):
        fast = inner_update(meta_net, None, base, params, batch, cfg)
        next_batch = collect(env, base, {k: v.detach() for k, v in fast.items()}, cfg.horizon)
        loss = meta_objective(base, fast, next_batch, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history["meta_loss"].append(loss.item())
        params = {k: v.detach() for k, v in fast.items()}
        age += 1
        expired = age >= cfg.lifetime
        if bool(expired.any()):  # re-initialise agents at the end of their lifetime
            params = {k: torch.where(expired.view(-1, *[1] * (v.ndim - 1)), torch.zeros_like(v), v)
                      for k, v in params.items()}
            age[expired] = 0
            next_batch = collect(env, base, params, cfg.horizon)
        batch = next_batch
        if (it + 1) % cfg.eval_every == 0 or it + 1 == cfg.iterations:
            evaluate(it + 1)
    history["final_rule"] = copy.deepcopy(meta_net)
    return history


def hand_designed_reference(env: TabularMDP, cfg: LPGConfig, seed: int) -> float:
    """The same evaluation with the advantage from the reference return instead of ``Psi``."""

    torch.manual_seed(seed)
    base, params = init_agents(cfg.n_tasks)
    rewards = []
    for _ in range(cfg.eval_updates):
        batch = collect(env, base, params, cfg.horizon)
        rewards.append(float(reward_per_step(batch).mean()))
        advantage, mask = reference_advantage(batch, cfg.reference_gamma)
        logits, value = agent_outputs(base, params, batch["observation"])
        _, next_value = agent_outputs(base, params, batch["next", "observation"])
        target = critic_target(batch, next_value, cfg.critic_gamma)
        grads = vmap(grad(task_loss), in_dims=(0, None, 0, 0, 0, None))(
            params, base, batch, advantage * mask.unsqueeze(-1), target, cfg.critic_coeff
        )
        params = {k: (p - cfg.inner_lr * grads[k]).detach() for k, p in params.items()}
    tail = max(1, cfg.eval_updates // 4)
    return sum(rewards[-tail:]) / tail


def plot(history: dict, reference: float, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax1.plot(history["iteration"], history["eval"], marker="o", label="fresh agents trained with Psi")
    ax1.axhline(reference, color="k", ls="--", lw=1, label="same, with the Monte-Carlo advantage")
    ax1.axhline(history["eval"][0], color="gray", ls=":", lw=1, label="initial (random) rule")
    ax1.set_xlabel("meta-iteration")
    ax1.set_ylabel("mean reward per step")
    ax1.legend(fontsize=8)
    ax1.set_title("LPG: bandits + corridors")
    loss = history["meta_loss"]
    window = 20
    ax2.plot([sum(loss[max(0, i - window):i + 1]) / len(loss[max(0, i - window):i + 1]) for i in range(len(loss))])
    ax2.set_xlabel("meta-iteration")
    ax2.set_title("meta-objective (20-iter mean)")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv=None) -> None:
    cfg, args = parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.time()
    history = train(cfg)
    env = TabularMDP(stack_tasks(make_tasks(cfg.n_tasks), cfg.n_envs), seed=cfg.seed + 1)
    reference = hand_designed_reference(env, cfg, seed=10_000 + cfg.seed)
    path = os.path.join(args.out, "lpg.png")
    plot(history, reference, path)
    print(f"reward/step of fresh agents: initial rule {history['eval'][0]:.3f} -> learned rule "
          f"{history['eval'][-1]:.3f} (Monte-Carlo advantage: {reference:.3f}); plot {path}; "
          f"{time.time() - start:.0f} s")


if __name__ == "__main__":
    main()

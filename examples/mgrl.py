"""Meta-gradient RL: learn the discount ``gamma`` (and ``lmbda``) online.

Xu, van Hasselt & Silver 2018, "Meta-Gradient Reinforcement Learning" (arXiv 1805.09801).

The agent's update is an actor-critic step whose advantage and value target are estimated
*inside* the functional loss (``a2c_loss`` or ``clip_ppo_loss``) by GAE with ``gamma`` and
``lmbda`` passed as tensors. The update is differentiable (fast weights, run through
``torch.func.functional_call``), so the meta-objective -- a policy-gradient objective with a
fixed reference discount, measured on *fresh* data collected by the updated agent -- can be
backpropagated through the update to ``gamma`` and ``lmbda``:

    theta'(eta) = theta - alpha * grad_theta L_inner(theta; gamma(eta), lmbda(eta))   # fast weights
    eta        <- eta - beta * grad_eta L_meta(theta'(eta); fresh data, reference discount)

Task: :func:`envs.delayed_reward` -- each step, a small reward now or a larger one ``delay``
steps later. With a discount below ``gamma* = (r_now / r_later) ** (1 / delay)`` the agent
learns to take the small reward; the (almost undiscounted) meta-objective wants the delayed
one, so the better discount is known in advance: above ``gamma*``. Starting from
``gamma = 0.5``, the meta-gradient raises ``gamma`` past ``gamma*`` and the reward per step
goes from ``r_now`` towards ``r_later``; an agent with ``gamma`` fixed at 0.5 stays at ``r_now``.

With ``--inner-steps > 1`` the meta-gradient is truncated as in the paper: the critic values
inside the later GAE are detached (TorchRL's semantics), and the ``adam`` optimizer carries
its moments across updates as constants. With one step it is exact (tested against finite
differences in ``tests/meta/test_meta_gradients.py``).

Run (under a minute on one core; writes ``runs/mgrl/mgrl.png``)::

    PYTHONPATH=. python examples/mgrl.py
    PYTHONPATH=. python examples/mgrl.py --inner-loss ppo --inner-optimizer adam --iterations 200
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import math
import os
import sys
import time
from dataclasses import dataclass, field

from _cli import (
    add_output_flag,
    add_threads_flag,
    boolean,
    non_negative_float,
    non_negative_int,
    open_unit_float,
    positive_float,
    positive_int,
)

INNER_LOSSES = ("a2c", "ppo")
INNER_OPTIMIZERS = ("sgd", "adam", "torchopt-sgd", "torchopt-adam")
# Default learning rate of the agent's update, per inner optimizer. SGD's 1.0 suits the tabular
# agent's small gradients; Adam normalises the step, so each update moves every logit by ~lr.
# Measured (400 iterations, seed 0): Adam at 0.03 and 0.1 learns to wait (reward/step 0.262),
# at 0.3 and 1.0 the agent settles on the small reward (0.100) and gamma stays near 0.56.
DEFAULT_INNER_LR = {"sgd": 1.0, "adam": 0.03, "torchopt-sgd": 1.0, "torchopt-adam": 0.03}
ADAM_INNER_LR_TOO_LARGE = 0.3


def _flag(default, type, help: str, **extra):
    """A config field that is also a command-line flag (``--field-name``)."""
    return field(default=default, metadata={"type": type, "help": help, **extra})


@dataclass
class MGRLConfig:
    """Hyperparameters of the example (every field is a command-line flag)."""

    delay: int = _flag(4, positive_int, "steps before the larger reward arrives; waiting pays for "
                                         "gamma > gamma* = (r_now / r_later) ** (1 / delay)")
    r_now: float = _flag(0.1, positive_float, "the small reward, paid at once")
    r_later: float = _flag(0.3, positive_float, "the larger reward, paid DELAY steps later (> r_now)")
    n_envs: int = _flag(32, positive_int, "environments per batch")
    horizon: int = _flag(32, positive_int, "steps per batch (one truncated episode per environment)")
    gamma: float = _flag(0.5, open_unit_float, "initial discount of the agent's update")
    lmbda: float = _flag(0.9, open_unit_float, "initial GAE lambda of the agent's update")
    learn_gamma: bool = _flag(True, boolean, "meta-learn gamma (true/false)")
    learn_lmbda: bool = _flag(True, boolean, "meta-learn lmbda (true/false)")
    meta_lr: float = _flag(0.05, positive_float, "Adam learning rate of logit(gamma) and logit(lmbda)")
    inner_lr: float | None = _flag(None, positive_float, "learning rate of the agent's differentiable "
                                   "update (default: " + ", ".join(f"{v:g} for {k}" for k, v in DEFAULT_INNER_LR.items()
                                                                   if not k.startswith("torchopt")) + ")")
    inner_loss: str = _flag("a2c", str, "the agent's functional loss: a2c_loss or clip_ppo_loss",
                            choices=INNER_LOSSES)
    inner_optimizer: str = _flag("sgd", str, "differentiable optimizer of the agent's update (torchopt-*: "
                                 "TorchOpt's functional optimizers, if installed)", choices=INNER_OPTIMIZERS)
    inner_steps: int = _flag(1, positive_int, "differentiable updates per batch (more than one truncates "
                                              "the meta-gradient as in the paper)")
    entropy_coeff: float = _flag(0.01, non_negative_float, "entropy bonus of the agent's loss")
    critic_coeff: float = _flag(0.5, non_negative_float, "critic loss weight of the agent's loss")
    reference_gamma: float = _flag(0.95, open_unit_float, "discount of the meta-objective")
    meta_tail: int = _flag(4, non_negative_int, "last steps of a batch left out of the meta-objective "
                                                "(their return is cut short)")
    iterations: int = _flag(400, positive_int, "meta-iterations (about 15 s per run on one core)")
    seed: int = _flag(0, non_negative_int, "random seed")

    @property
    def gamma_star(self) -> float:
        return (self.r_now / self.r_later) ** (1.0 / self.delay)

    @property
    def inner_learning_rate(self) -> float:
        """``inner_lr``, or the inner optimizer's default."""
        return DEFAULT_INNER_LR[self.inner_optimizer] if self.inner_lr is None else self.inner_lr


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mgrl.py", description="Meta-gradient RL (MGRL): learn the discount gamma and the GAE lambda "
                                    "online, on a task where waiting for a larger reward pays only above gamma*.",
        epilog="Writes <out>/mgrl.png. Paper: Xu, van Hasselt & Silver 2018 (arXiv 1805.09801).")
    for f in dataclasses.fields(MGRLConfig):
        meta = dict(f.metadata)
        kind, text = meta.pop("type"), meta.pop("help")
        default = "" if f.default is None else " (default: %(default)s)"
        metavar = "{true,false}" if kind is boolean else None
        parser.add_argument("--" + f.name.replace("_", "-"), type=kind, default=f.default, help=text + default,
                            metavar=metavar, **meta)
    add_output_flag(parser, "mgrl", "the plot")
    add_threads_flag(parser)
    parser.add_argument("--no-control", action="store_true", help="skip the fixed-gamma control run")
    return parser


def parse_args(argv=None) -> tuple[MGRLConfig, argparse.Namespace]:
    parser = build_parser()
    args = parser.parse_args(argv)
    cfg = MGRLConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(MGRLConfig)})
    if cfg.r_later <= cfg.r_now:
        parser.error(f"--r-later ({cfg.r_later}) must be larger than --r-now ({cfg.r_now})")
    if cfg.delay >= cfg.horizon:
        parser.error(f"--delay ({cfg.delay}) must be shorter than --horizon ({cfg.horizon})")
    if cfg.meta_tail >= cfg.horizon:
        parser.error(f"--meta-tail ({cfg.meta_tail}) must be shorter than --horizon ({cfg.horizon})")
    if cfg.inner_optimizer.startswith("torchopt-") and importlib.util.find_spec("torchopt") is None:
        parser.error(f"--inner-optimizer {cfg.inner_optimizer} needs TorchOpt (pip install torchopt)")
    if cfg.inner_optimizer.endswith("adam") and cfg.inner_learning_rate >= ADAM_INNER_LR_TOO_LARGE:
        print(f"warning: --inner-lr {cfg.inner_learning_rate:g} with Adam moves every logit by about that much "
              f"per update; from {ADAM_INNER_LR_TOO_LARGE:g} on the agent settles on the small reward "
              f"(default for Adam: {DEFAULT_INNER_LR['adam']:g})", file=sys.stderr)
    return cfg, args


if __name__ == "__main__":
    parse_args()  # --help and usage errors before the heavy imports below (a second, not ten)

import torch
from envs import TabularMDP, delayed_reward
from tensordict import TensorDict
from torch import Tensor, nn
from torch.distributions import Categorical
from torch.func import functional_call

from torchrl_functional.functional import a2c_loss, clip_ppo_loss

Params = dict[str, Tensor]


class Agent(nn.Module):
    """Tabular actor-critic on one-hot states: policy logits and a state value."""

    def __init__(self, n_states: int, n_actions: int) -> None:
        super().__init__()
        self.actor = nn.Linear(n_states, n_actions, bias=False)
        self.critic = nn.Linear(n_states, 1, bias=False)
        nn.init.zeros_(self.actor.weight)  # uniform initial policy
        nn.init.zeros_(self.critic.weight)

    def forward(self, observation: Tensor) -> tuple[Tensor, Tensor]:
        return self.actor(observation), self.critic(observation)


# --------------------------------------------------------------------------- data


@torch.no_grad()
def collect(env: TabularMDP, agent: Agent, params: Params, horizon: int) -> TensorDict:
    """A batch ``[n_envs, horizon]`` from the policy with ``params`` (from a reset)."""

    def policy(td):
        logits, _ = functional_call(agent, params, (td["observation"].to(_dtype(params)),))
        dist = Categorical(logits=logits)
        action = dist.sample()
        td["action"] = action
        td["action_log_prob"] = dist.log_prob(action)
        return td

    batch = env.rollout(horizon, policy, break_when_any_done=False)
    dtype = _dtype(params)
    return batch.apply(lambda x: x.to(dtype) if x.is_floating_point() else x)


def _dtype(params: Params) -> torch.dtype:
    return next(iter(params.values())).dtype


def reward_per_step(batch: TensorDict) -> float:
    """Mean reward per step of a batch."""
    return float(batch["next", "reward"].mean())


# --------------------------------------------------------------------------- losses


def inner_loss(agent: Agent, params: Params, batch: TensorDict, gamma: Tensor, lmbda: Tensor,
               cfg: MGRLConfig) -> Tensor:
    """The agent's loss: advantage and value target estimated inside the functional loss by
    GAE with the *tensor* ``gamma``/``lmbda`` (critic values detached, as in TorchRL)."""
    logits, value = functional_call(agent, params, (batch["observation"],))
    _, next_value = functional_call(agent, params, (batch["next", "observation"],))
    td = TensorDict(
        {
            "actor_output": {"logits": logits},
            "action": batch["action"],
            "action_log_prob": batch["action_log_prob"],
            "state_value": value,
            "next": {
                "reward": batch["next", "reward"],
                "done": batch["next", "done"],
                "terminated": batch["next", "terminated"],
                "state_value": next_value,
            },
        },
        batch_size=batch.batch_size,
    )
    kwargs = dict(gamma=gamma, lmbda=lmbda, entropy_coeff=cfg.entropy_coeff,
                  critic_coeff=cfg.critic_coeff, loss_critic_type="l2")
    if cfg.inner_loss == "a2c":
        out = a2c_loss(td, Categorical, **kwargs)
    elif cfg.inner_loss == "ppo":
        out = clip_ppo_loss(td, Categorical, clip_epsilon=0.2, **kwargs)
    else:
        raise ValueError(f"inner_loss must be 'a2c' or 'ppo', got {cfg.inner_loss!r}")
    return out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]


def reference_advantage(batch: TensorDict, reference_gamma: float, tail: int) -> tuple[Tensor, Tensor]:
    """Standardised Monte-Carlo return-to-go with the reference discount, and the mask of the
    steps it is used on (all but the last ``tail`` of the batch, whose return is cut short)."""
    reward = batch["next", "reward"]
    done = batch["next", "done"]
    ret = torch.zeros_like(reward[..., -1, :])
    returns = []
    for t in reversed(range(reward.shape[-2])):
        ret = reward[..., t, :] + reference_gamma * (~done[..., t, :]) * ret
        returns.append(ret)
    returns = torch.stack(returns[::-1], -2)
    mask = torch.zeros(done.shape[:-1], dtype=torch.bool)
    mask[..., : done.shape[-2] - tail] = True
    valid = returns[mask]
    advantage = (returns - valid.mean()) / valid.std().clamp_min(1e-6)
    return advantage, mask


def meta_objective(agent: Agent, params: Params, batch: TensorDict, cfg: MGRLConfig) -> Tensor:
    """Policy-gradient objective of the updated agent on fresh data, with the reference
    discount (no learned quantity in it: the meta-gradient only sees gamma through params)."""
    logits, _ = functional_call(agent, params, (batch["observation"],))
    advantage, mask = reference_advantage(batch, cfg.reference_gamma, cfg.meta_tail)
    td = TensorDict(
        {
            "actor_output": {"logits": logits},
            "action": batch["action"],
            "action_log_prob": batch["action_log_prob"],
            "advantage": advantage,
            ("collector", "mask"): mask,
        },
        batch_size=batch.batch_size,
    )
    return clip_ppo_loss(td, Categorical, entropy_bonus=False, critic_coeff=None)["loss_objective"]


# --------------------------------------------------------------------------- differentiable update


class InnerOptimizer:
    """A differentiable optimizer step on a dict of fast weights.

    ``"sgd"``: ``p - lr g``. ``"adam"``: Adam (Kingma & Ba 2015) whose moments are carried
    across updates as constants. ``"torchopt-sgd"``/``"torchopt-adam"``: TorchOpt's
    functional optimizers (optional dependency), same maths.
    """

    def __init__(self, kind: str, lr: float, betas=(0.9, 0.999), eps: float = 1e-8) -> None:
        self.kind, self.lr, self.betas, self.eps = kind, lr, betas, eps
        self.state: dict | None = None
        self._torchopt = None
        if kind.startswith("torchopt-"):
            import torchopt  # optional: pip install torchopt

            self._torchopt = (torchopt, torchopt.sgd(lr) if kind == "torchopt-sgd"
                              else torchopt.adam(lr, betas=betas, eps=eps, eps_root=0.0))
        elif kind not in ("sgd", "adam"):
            raise ValueError(f"unknown inner optimizer {kind!r}")

    def step(self, params: Params, grads: Params) -> Params:
        if self._torchopt is not None:
            torchopt, opt = self._torchopt
            if self.state is None:
                self.state = opt.init(params)
            updates, state = opt.update(grads, self.state, inplace=False)
            self.state = _detach_tree(state)
            return torchopt.apply_updates(params, updates, inplace=False)
        if self.kind == "sgd":
            return {k: p - self.lr * grads[k] for k, p in params.items()}
        if self.state is None:
            self.state = {"step": 0, "m": {k: torch.zeros_like(p) for k, p in params.items()},
                          "v": {k: torch.zeros_like(p) for k, p in params.items()}}
        b1, b2 = self.betas
        step = self.state["step"] + 1
        m = {k: b1 * self.state["m"][k] + (1 - b1) * g for k, g in grads.items()}
        v = {k: b2 * self.state["v"][k] + (1 - b2) * g * g for k, g in grads.items()}
        self.state = {"step": step, "m": {k: x.detach() for k, x in m.items()},
                      "v": {k: x.detach() for k, x in v.items()}}
        c1, c2 = 1 - b1 ** step, 1 - b2 ** step
        # sqrt of v + tiny: keeps the second derivative finite where a gradient is exactly 0
        return {k: p - self.lr * (m[k] / c1) / ((v[k] / c2 + 1e-30).sqrt() + self.eps)
                for k, p in params.items()}


def _detach_tree(tree):
    if isinstance(tree, Tensor):
        return tree.detach()
    if isinstance(tree, (tuple, list)):
        out = [_detach_tree(x) for x in tree]
        return type(tree)(*out) if hasattr(tree, "_fields") else type(tree)(out)
    if isinstance(tree, dict):
        return {k: _detach_tree(v) for k, v in tree.items()}
    return tree


def inner_update(agent: Agent, params: Params, batch: TensorDict, gamma: Tensor, lmbda: Tensor,
                 cfg: MGRLConfig, optimizer: InnerOptimizer) -> Params:
    """``cfg.inner_steps`` differentiable updates: fast weights that depend on gamma/lmbda."""
    params = {k: v if v.requires_grad else v.detach().requires_grad_(True) for k, v in params.items()}
    for _ in range(cfg.inner_steps):
        loss = inner_loss(agent, params, batch, gamma, lmbda, cfg)
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
        params = optimizer.step(params, dict(zip(params, grads)))
    return params


def meta_params(cfg: MGRLConfig, dtype=torch.float32) -> dict[str, Tensor]:
    """Unconstrained meta-parameters: ``gamma = sigmoid(eta_gamma)``, same for ``lmbda``."""
    return {
        "gamma": torch.tensor(math.log(cfg.gamma / (1 - cfg.gamma)), dtype=dtype, requires_grad=cfg.learn_gamma),
        "lmbda": torch.tensor(math.log(cfg.lmbda / (1 - cfg.lmbda)), dtype=dtype, requires_grad=cfg.learn_lmbda),
    }


def meta_loss(eta: dict[str, Tensor], agent: Agent, params: Params, batch: TensorDict,
              next_batch: TensorDict, cfg: MGRLConfig, optimizer: InnerOptimizer | None = None
              ) -> tuple[Tensor, Params]:
    """The meta-objective as a function of the meta-parameters, for fixed batches:
    ``L_meta(theta'(eta))`` with ``theta'`` the updated agent. Returns it and ``theta'``."""
    optimizer = optimizer or InnerOptimizer(cfg.inner_optimizer, cfg.inner_learning_rate)
    fast = inner_update(agent, params, batch, torch.sigmoid(eta["gamma"]), torch.sigmoid(eta["lmbda"]),
                        cfg, optimizer)
    return meta_objective(agent, fast, next_batch, cfg), fast


# --------------------------------------------------------------------------- training


def train(cfg: MGRLConfig, log=print) -> dict[str, list[float]]:
    """Meta-train gamma/lmbda while the agent learns. Returns the history per iteration."""
    torch.manual_seed(cfg.seed)
    task = delayed_reward(cfg.delay, cfg.r_now, cfg.r_later, max_steps=cfg.horizon)
    env = TabularMDP(task, batch_size=[cfg.n_envs], seed=cfg.seed)
    agent = Agent(env.n_states, env.n_actions)
    params = {k: v.detach() for k, v in agent.named_parameters()}
    eta = meta_params(cfg)
    trainable = [v for v in eta.values() if v.requires_grad]
    meta_opt = torch.optim.Adam(trainable, lr=cfg.meta_lr) if trainable else None
    optimizer = InnerOptimizer(cfg.inner_optimizer, cfg.inner_learning_rate)
    history: dict[str, list[float]] = {"gamma": [], "lmbda": [], "reward": []}
    batch = collect(env, agent, params, cfg.horizon)
    for it in range(cfg.iterations):
        fast = inner_update(agent, params, batch, torch.sigmoid(eta["gamma"]), torch.sigmoid(eta["lmbda"]),
                            cfg, optimizer)
        next_batch = collect(env, agent, {k: v.detach() for k, v in fast.items()}, cfg.horizon)
        if meta_opt is not None:
            loss = meta_objective(agent, fast, next_batch, cfg)
            meta_opt.zero_grad()
            loss.backward()
            meta_opt.step()
        params = {k: v.detach() for k, v in fast.items()}
        batch = next_batch
        history["gamma"].append(float(torch.sigmoid(eta["gamma"].detach())))
        history["lmbda"].append(float(torch.sigmoid(eta["lmbda"].detach())))
        history["reward"].append(reward_per_step(next_batch))
        if log is not None and (it % max(1, cfg.iterations // 10) == 0 or it == cfg.iterations - 1):
            log(f"iter {it:4d}  gamma {history['gamma'][-1]:.3f}  lmbda {history['lmbda'][-1]:.3f}  "
                f"reward/step {sum(history['reward'][-20:]) / len(history['reward'][-20:]):.3f}")
    return history


def plot(histories: dict[str, dict[str, list[float]]], cfg: MGRLConfig, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for label, h in histories.items():
        ax1.plot(h["gamma"], label=f"gamma ({label})")
        if label == "meta-gradient":
            ax1.plot(h["lmbda"], label="lmbda (meta-gradient)", alpha=0.7)
        window = 20
        smooth = [sum(h["reward"][max(0, i - window):i + 1]) / len(h["reward"][max(0, i - window):i + 1])
                  for i in range(len(h["reward"]))]
        ax2.plot(smooth, label=label)
    ax1.axhline(cfg.gamma_star, color="k", ls="--", lw=1, label="gamma* (waiting pays above)")
    ax1.set_xlabel("iteration")
    ax1.set_ylim(0, 1.02)
    ax1.legend(fontsize=8)
    ax1.set_title("meta-parameters")
    best = cfg.r_later * (cfg.horizon - cfg.delay) / cfg.horizon  # always wait: nothing pays at first
    ax2.axhline(best, color="k", ls=":", lw=1)
    ax2.axhline(cfg.r_now, color="k", ls=":", lw=1)
    ax2.set_xlabel("iteration")
    ax2.set_ylabel("reward per step (20-iter mean)")
    ax2.legend(fontsize=8)
    ax2.set_title(f"delayed reward, delay {cfg.delay}")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv=None) -> None:
    cfg, args = parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"delayed reward: {cfg.r_now} now or {cfg.r_later} after {cfg.delay} steps; "
          f"waiting pays for gamma > gamma* = {cfg.gamma_star:.3f}; inner update: {cfg.inner_loss} loss, "
          f"{cfg.inner_optimizer} with lr {cfg.inner_learning_rate:g}, {cfg.inner_steps} step(s)")
    start = time.time()
    histories = {"meta-gradient": train(cfg)}
    if not args.no_control:
        print(f"control: gamma fixed at {cfg.gamma}")
        histories[f"fixed gamma={cfg.gamma}"] = train(dataclasses.replace(cfg, learn_gamma=False, learn_lmbda=False))
    path = os.path.join(args.out, "mgrl.png")
    plot(histories, cfg, path)
    h = histories["meta-gradient"]
    print(f"gamma {cfg.gamma:.3f} -> {h['gamma'][-1]:.3f} (gamma* {cfg.gamma_star:.3f}); "
          f"lmbda {cfg.lmbda:.3f} -> {h['lmbda'][-1]:.3f}; "
          f"reward/step (last 20 iterations) {sum(h['reward'][-20:]) / 20:.3f}; plot {path}; "
          f"{time.time() - start:.0f} s")


if __name__ == "__main__":
    main()

"""PPO on gymnasium CartPole-v1 through TorchRL, with torchrl-functional's clipped PPO loss.

Three interchangeable learners, chosen with ``--loss``:

- ``functional`` (default): a hand-written update that runs the policy and value networks
  itself and calls :func:`torchrl_functional.functional.clip_ppo_loss` on their outputs;
  the advantage comes from the pure :func:`~torchrl_functional.functional.generalized_advantage_estimate`.
- ``module``: the drop-in :class:`torchrl_functional.modules.ClipPPOLoss` with TorchRL's ``GAE``.
- ``torchrl``: TorchRL's own ``torchrl.objectives.ClipPPOLoss`` with the same ``GAE``.

Everything else is plain TorchRL: ``GymEnv`` in a ``SerialEnv``, a ``Collector``, a
``TensorDictReplayBuffer`` sampling minibatches without replacement. With one seed the
three learners see the same data and the same minibatch order, so their curves coincide.

Run ``python examples/ppo_cartpole.py --help`` for the flags. Writes ``<out>/<loss>_seed<seed>.csv``
(one row per iteration) and ``<out>/<loss>_seed<seed>.png`` (the learning curve), and prints
the final evaluation return.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

START = time.perf_counter()  # the whole command's time is printed at the end

from _cli import add_output_flag, add_threads_flag, non_negative_int, positive_int, route_torchrl_logs

LOSSES = ("functional", "module", "torchrl")


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class PPOConfig:
    """PPO hyperparameters for CartPole-v1 (those of the RL Baselines3 Zoo)."""

    steps_per_env: int = 32  # frames per batch = num_envs * steps_per_env
    epochs: int = 20  # passes over each batch
    minibatch_size: int = 256
    gamma: float = 0.98
    lmbda: float = 0.8
    lr: float = 1e-3  # annealed linearly to 0
    clip_epsilon: float = 0.2
    entropy_coeff: float = 0.0
    critic_coeff: float = 0.5
    loss_critic_type: str = "l2"
    normalize_advantage: bool = True
    max_grad_norm: float = 0.5
    hidden: int = 64


# --------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ppo_cartpole.py",
        description="Train PPO on CartPole-v1 with torchrl-functional's clipped PPO loss (CPU).",
    )
    parser.add_argument("--loss", choices=LOSSES, default="functional",
                        help="functional: hand-written loop calling clip_ppo_loss; module: drop-in "
                             "torchrl_functional.modules.ClipPPOLoss; torchrl: torchrl.objectives.ClipPPOLoss "
                             "(default: %(default)s)")
    parser.add_argument("--frames", type=positive_int, default=100_000,
                        help="environment frames to collect, rounded up to whole batches (default: %(default)s)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--num-envs", type=positive_int, default=8,
                        help="CartPole copies stepped together (default: %(default)s)")
    parser.add_argument("--eval-every", type=positive_int, default=10_000,
                        help="frames between evaluations (default: %(default)s)")
    parser.add_argument("--eval-episodes", type=positive_int, default=5,
                        help="greedy-policy episodes per evaluation; the final one uses twice as many "
                             "(default: %(default)s)")
    add_threads_flag(parser)
    add_output_flag(parser, "ppo_cartpole", "the CSV log and the PNG curve (with --pai, PerforatedAI's files too)")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG learning curve")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--pai", action="store_true",
                        help="grow dendrites on the networks with the PerforatedAI adapter (extra 'pai')")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.pai:
        try:
            import torchrl_functional.pai  # noqa: F401
        except ImportError as err:
            parser.exit(2, f"{parser.prog}: error: --pai requires the PerforatedAI adapter "
                           f"(torchrl_functional.pai and the 'pai' extra: pip install "
                           f"'torchrl-functional[pai]'); it could not be imported: {err}\n")
        if args.loss != "functional":
            parser.exit(2, f"{parser.prog}: error: --pai runs the functional loss; use --loss functional "
                           "(for loss modules see PAIGroup.track_loss and examples/ppo_pai.py)\n")
    return args


if __name__ == "__main__":
    parse_args()  # --help and usage errors before the heavy imports below (a second, not ten)

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer
from torchrl.data.replay_buffers.samplers import SamplerWithoutReplacement
from torchrl.envs import (
    Compose,
    EnvBase,
    ExplorationType,
    GymEnv,
    RewardSum,
    SerialEnv,
    StepCounter,
    TransformedEnv,
    set_exploration_type,
)
from torchrl.modules import ProbabilisticActor, ValueOperator

from torchrl_functional.functional import clip_ppo_loss, generalized_advantage_estimate


def make_pai_group(args: argparse.Namespace, cfg: PPOConfig, policy_net: nn.Module, value_net: nn.Module,
                   iterations: int):
    """Dendrites on both networks with the PerforatedAI adapter: one PAI-managed Adam with a
    param group per network, dendrites added every ``iterations // 4`` scores (at most 3)."""
    from torchrl_functional.pai import NetworkSpec, PAIGroup, PAISettings

    group = PAIGroup(
        "ppo_cartpole",
        {"actor": NetworkSpec(policy_net, lr=cfg.lr), "critic": NetworkSpec(value_net, lr=cfg.lr)},
        directory=args.out / "pai",
        settings=PAISettings(switch_mode="fixed", fixed_switch_num=max(2, iterations // 4),
                             find_best_lr=False, max_dendrites=3),
        scheduler_kwargs={"patience": 10, "factor": 0.5},
        maximize=True,
        overwrite=True,
    )
    if group["actor"] is not policy_net or group["critic"] is not value_net:  # pragma: no cover
        raise RuntimeError("PerforatedAI replaced a network object; the example expects in-place changes")
    return group


# --------------------------------------------------------------------------- TorchRL pieces

def make_env(num_envs: int, seed: int) -> EnvBase:
    """``num_envs`` CartPole-v1 copies in a ``SerialEnv``, with episode returns and lengths."""

    def one() -> EnvBase:
        return GymEnv("CartPole-v1", categorical_action_encoding=True)

    env = TransformedEnv(SerialEnv(num_envs, one), Compose(StepCounter(), RewardSum()))
    env.set_seed(seed)
    return env


def mlp(n_in: int, n_out: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(n_in, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, n_out)
    )


def make_models(env: EnvBase, hidden: int) -> tuple[nn.Module, nn.Module, ProbabilisticActor, ValueOperator]:
    """Policy and value networks (plain ``nn.Module``) and their TorchRL wrappers.

    Returns ``(policy_net, value_net, actor, critic)``: ``policy_net(obs) -> logits [*B, 2]``,
    ``value_net(obs) -> V(s) [*B, 1]``; ``actor`` samples ``"action"`` and writes
    ``"action_log_prob"``, ``critic`` writes ``"state_value"``.
    """
    n_obs = env.observation_spec["observation"].shape[-1]
    n_act = env.action_spec.space.n
    policy_net = mlp(n_obs, n_act, hidden)
    value_net = mlp(n_obs, 1, hidden)
    actor = ProbabilisticActor(
        TensorDictModule(policy_net, in_keys=["observation"], out_keys=["logits"]),
        in_keys=["logits"],
        distribution_class=torch.distributions.Categorical,
        return_log_prob=True,
        spec=env.full_action_spec_unbatched["action"],
    )
    critic = ValueOperator(value_net, in_keys=["observation"])
    return policy_net, value_net, actor, critic


@torch.no_grad()
def evaluate(actor: nn.Module, env: EnvBase, episodes: int) -> list[float]:
    """Returns of ``episodes`` greedy-policy episodes (one env, capped at 500 steps)."""
    returns = []
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        for _ in range(episodes):
            rollout = env.rollout(500, actor, break_when_any_done=True)
            returns.append(rollout["next", "reward"].sum().item())
    return returns


# --------------------------------------------------------------------------- the three learners

Update = Callable[[TensorDictBase], TensorDict]


def minibatch_size_for(frames_per_batch: int, cfg: PPOConfig, num_envs: int, log=print) -> int:
    """``cfg.minibatch_size``, or the whole batch (said once) when the batch is smaller."""
    if frames_per_batch >= cfg.minibatch_size:
        return cfg.minibatch_size
    log(f"note: a batch is {frames_per_batch} frames ({num_envs} envs x {cfg.steps_per_env} steps), fewer "
        f"than the minibatch size {cfg.minibatch_size}: each epoch takes the whole batch as one minibatch")
    return frames_per_batch


def functional_advantage(value_net: nn.Module, data: TensorDictBase, cfg: PPOConfig) -> None:
    """Writes ``"advantage"`` and ``"value_target"`` ``[E, T, 1]`` into ``data`` with the pure GAE kernel."""
    with torch.no_grad():  # the network sees [N, F] batches (PerforatedAI layers need a fixed rank)
        obs, next_obs = data["observation"], data["next", "observation"]
        value = value_net(obs.reshape(-1, obs.shape[-1])).reshape(*obs.shape[:-1], 1)
        next_value = value_net(next_obs.reshape(-1, obs.shape[-1])).reshape(*obs.shape[:-1], 1)
    advantage, value_target = generalized_advantage_estimate(
        cfg.gamma, cfg.lmbda, value, next_value,
        data["next", "reward"], data["next", "done"], data["next", "terminated"],
    )
    data.set("advantage", advantage)
    data.set("value_target", value_target)


def ppo_losses(policy_net: nn.Module, value_net: nn.Module, batch: TensorDictBase, cfg: PPOConfig) -> TensorDict:
    """The intended style: run the networks yourself, then call the pure loss on their outputs.

    ``batch`` holds ``"observation"`` ``[B, 4]``, ``"action"`` ``[B]``, the behaviour
    ``"action_log_prob"`` ``[B]``, ``"advantage"`` and ``"value_target"`` ``[B, 1]``.
    """
    td = batch.select("action", "action_log_prob", "advantage", "value_target")
    td["actor_output"] = TensorDict(logits=policy_net(batch["observation"]), batch_size=batch.batch_size)
    td["state_value"] = value_net(batch["observation"])
    return clip_ppo_loss(
        td, torch.distributions.Categorical,
        clip_epsilon=cfg.clip_epsilon, entropy_coeff=cfg.entropy_coeff,
        critic_coeff=cfg.critic_coeff, loss_critic_type=cfg.loss_critic_type,
        normalize_advantage=cfg.normalize_advantage,
    )


def make_learner(kind: str, policy_net: nn.Module, value_net: nn.Module, actor: nn.Module,
                 critic: nn.Module, cfg: PPOConfig) -> tuple[Callable[[TensorDictBase], None], Update]:
    """``(advantage, losses)``: fills ``advantage``/``value_target`` in a batch, and the loss terms."""
    if kind == "functional":
        return (lambda data: functional_advantage(value_net, data, cfg)), (lambda batch: ppo_losses(policy_net, value_net, batch, cfg))
    if kind == "module":
        from torchrl_functional.modules import ClipPPOLoss
    elif kind == "torchrl":
        from torchrl.objectives import ClipPPOLoss
    else:
        raise ValueError(f"unknown loss {kind!r}; expected one of {LOSSES}")
    from torchrl.objectives.value import GAE

    loss_module = ClipPPOLoss(
        actor, critic, clip_epsilon=cfg.clip_epsilon, entropy_coeff=cfg.entropy_coeff,
        critic_coeff=cfg.critic_coeff, loss_critic_type=cfg.loss_critic_type,
        normalize_advantage=cfg.normalize_advantage,
    )
    gae = GAE(gamma=cfg.gamma, lmbda=cfg.lmbda, value_network=critic, average_gae=False)

    def advantage(data: TensorDictBase) -> None:
        with torch.no_grad():
            gae(data)

    return advantage, loss_module


# --------------------------------------------------------------------------- training


@dataclass
class Result:
    frames: int
    seconds: float
    final_eval_mean: float
    final_eval_std: float
    initial_eval_mean: float
    csv_path: Path
    png_path: Path | None
    restructures: int = 0


CSV_FIELDS = ("iteration", "frames", "seconds", "lr", "train_return", "eval_return",
              "loss_objective", "loss_critic", "loss_entropy", "clip_fraction", "kl_approx")


def train(args: argparse.Namespace, cfg: PPOConfig | None = None) -> Result:
    cfg = cfg or PPOConfig()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    env = make_env(args.num_envs, args.seed)
    if args.pai:  # PAI's layers take batched inputs only: evaluate in a batch of one env
        eval_env = TransformedEnv(
            SerialEnv(1, lambda: GymEnv("CartPole-v1", categorical_action_encoding=True)), StepCounter()
        )
    else:
        eval_env = TransformedEnv(GymEnv("CartPole-v1", categorical_action_encoding=True), StepCounter())
    eval_env.set_seed(args.seed + 10_000)
    policy_net, value_net, actor, critic = make_models(env, cfg.hidden)
    advantage, losses = make_learner(args.loss, policy_net, value_net, actor, critic, cfg)
    params = [*policy_net.parameters(), *value_net.parameters()]
    optim = torch.optim.Adam(params, lr=cfg.lr)

    frames_per_batch = args.num_envs * cfg.steps_per_env
    minibatch_size = minibatch_size_for(frames_per_batch, cfg, args.num_envs)
    iterations = math.ceil(args.frames / frames_per_batch)
    pai = make_pai_group(args, cfg, policy_net, value_net, iterations) if args.pai else None
    total_frames = iterations * frames_per_batch
    updates_per_batch = cfg.epochs * math.ceil(frames_per_batch / minibatch_size)
    total_updates = iterations * updates_per_batch
    collector = Collector(env, actor, frames_per_batch=frames_per_batch, total_frames=total_frames,
                          auto_register_policy_transforms=False)
    buffer = TensorDictReplayBuffer(
        storage=LazyTensorStorage(frames_per_batch),
        sampler=SamplerWithoutReplacement(),
        batch_size=minibatch_size,
    )

    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"{args.loss}_seed{args.seed}"
    csv_path = args.out / f"{stem}.csv"
    rows: list[dict] = []

    from tqdm import tqdm

    initial = evaluate(actor, eval_env, args.eval_episodes)
    rows.append({"iteration": 0, "frames": 0, "seconds": 0.0, "lr": cfg.lr,
                 "eval_return": sum(initial) / len(initial)})
    start = time.perf_counter()
    frames, updates, next_eval, restructures = 0, 0, args.eval_every, 0
    last_train, last_eval = float("nan"), rows[0]["eval_return"]
    pbar = tqdm(total=total_frames, unit="frames", disable=args.quiet, dynamic_ncols=True)
    for it, data in enumerate(collector, start=1):
        frames += data.numel()
        finished = data["next", "episode_reward"][data["next", "done"]]
        advantage(data)
        buffer.extend(data.reshape(-1))
        stats = []
        for _ in range(cfg.epochs):
            for batch in buffer:
                if pai is None:
                    lr = cfg.lr * (1.0 - updates / total_updates)
                    for group in optim.param_groups:
                        group["lr"] = lr
                else:  # PAI's scheduler owns the learning rates; its optimizer is rebuilt on restructures
                    optim, params = pai.optimizer, list(pai.model.parameters())
                    lr = optim.param_groups[0]["lr"]
                out = losses(batch)
                loss = out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]
                optim.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                optim.step()
                updates += 1
                stats.append(out.select(*CSV_FIELDS[6:]).detach())
        collector.update_policy_weights_()
        if pai is not None:
            score = finished.mean().item() if finished.numel() else last_train
            result = pai.add_score(0.0 if score != score else score)  # may add dendrites in place
            if result.restructured:
                restructures += 1
                tqdm.write(f"iteration {it}: PerforatedAI added dendrites, {result.total_params} parameters")

        row = {"iteration": it, "frames": frames, "seconds": time.perf_counter() - start, "lr": lr}
        row.update({k: v.item() for k, v in torch.stack(stats).mean(0).items()})
        if finished.numel():
            last_train = row["train_return"] = finished.mean().item()
        if frames >= next_eval or frames >= total_frames:
            episodes = args.eval_episodes * (2 if frames >= total_frames else 1)
            returns = evaluate(actor, eval_env, episodes)
            last_eval = row["eval_return"] = sum(returns) / len(returns)
            next_eval += args.eval_every
        rows.append(row)
        pbar.update(data.numel())
        pbar.set_postfix(train_return=f"{last_train:.1f}", eval_return=f"{last_eval:.1f}", refresh=False)
    pbar.close()
    seconds = time.perf_counter() - start
    collector.shutdown()  # closes env too
    eval_env.close()

    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    png_path = None
    if not args.no_plot:
        png_path = args.out / f"{stem}.png"
        plot_learning_curves({f"{args.loss} (seed {args.seed})": rows}, png_path,
                             title=f"PPO on CartPole-v1, {args.loss} loss")
    final = torch.tensor(returns)
    if pai is not None:
        print(f"PerforatedAI: {restructures} restructure(s), "
              f"{sum(p.numel() for p in pai.model.parameters() if p.requires_grad)} trainable parameters; "
              f"files under {args.out / 'pai'}")
    return Result(frames=frames, seconds=seconds, final_eval_mean=final.mean().item(),
                  final_eval_std=final.std(unbiased=False).item(),
                  initial_eval_mean=rows[0]["eval_return"], csv_path=csv_path, png_path=png_path,
                  restructures=restructures)


# --------------------------------------------------------------------------- plots


def read_csv(path: Path) -> list[dict]:
    with Path(path).open() as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def plot_learning_curves(runs: dict[str, list[dict]], path: Path, title: str = "PPO on CartPole-v1") -> None:
    """One panel per measure (evaluation return, training-episode return) against frames."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    styles = [dict(lw=2.4, alpha=0.6), dict(lw=1.2, ls="--"), dict(lw=1.0, ls=":")]
    for i, (label, rows) in enumerate(runs.items()):
        style = styles[i % len(styles)]
        for ax, key in zip(axes, ("eval_return", "train_return")):
            pts = [(r["frames"], r[key]) for r in rows if key in r and not math.isnan(r[key])]
            if pts:
                ax.plot(*zip(*pts), label=label, **style)
    axes[0].set_title("evaluation (greedy policy)")
    axes[1].set_title("training episodes")
    axes[0].set_ylabel("episode return")
    for ax in axes:
        ax.set_xlabel("environment frames")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --------------------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    route_torchrl_logs()
    cfg = PPOConfig()
    print(f"PPO on CartPole-v1: loss={args.loss} frames={args.frames} seed={args.seed} "
          f"num_envs={args.num_envs} threads={args.threads}")
    print("config:", ", ".join(f"{k}={v}" for k, v in asdict(cfg).items()))
    result = train(args, cfg)
    print(f"frames: {result.frames}  training time: {result.seconds:.1f} s  "
          f"({result.frames / result.seconds:.0f} frames/s)")
    print(f"evaluation return before training: {result.initial_eval_mean:.1f}")
    print(f"final evaluation return: {result.final_eval_mean:.1f} +/- {result.final_eval_std:.1f} "
          f"({2 * args.eval_episodes} greedy episodes)")
    print(f"log: {result.csv_path}" + (f"  curve: {result.png_path}" if result.png_path else ""))
    print(f"whole command: {time.perf_counter() - START:.0f} s (start-up, evaluations and plot included), "
          f"{args.threads} torch thread(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

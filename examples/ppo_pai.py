"""PPO on CartPole-v1 with PerforatedAI dendrites on the actor and the critic.

Schulman et al. 2017 (PPO) with the functional clipped loss
(:func:`torchrl_functional.functional.clip_ppo_loss`) and GAE kernel, a gymnasium task
through TorchRL (``GymEnv`` in a ``SerialEnv``, ``Collector``), and a
:class:`~torchrl_functional.pai.PAIGroup` that owns PerforatedAI: one PAI-managed Adam
with a param group per network (actor lr 2e-3, critic lr 5e-3), dendrites added every
``--switch-every`` iterations (the mean episode return is the score), optimizers rebuilt
after each restructure. Writes under ``--out`` (default ``runs/ppo_pai``): PAI's files
(``ppo_cartpole/``), ``ppo_pai.png`` (return and parameter count over training) and a
checkpoint.

    python examples/ppo_pai.py            # 75 iterations, 3 dendrite additions
    python examples/ppo_pai.py --short    # CI smoke run: 6 small iterations
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

SHORT = dict(iterations=6, switch_every=3, envs=4, steps=48, epochs=2, minibatch=96, hidden=32)
FULL = dict(iterations=75, switch_every=25, envs=8, steps=64, epochs=4, minibatch=128, hidden=64)


def positive_int(text: str) -> int:
    """``argparse`` type: an integer > 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """``argparse`` type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ppo_pai.py",
        description="PPO on CartPole-v1 with PerforatedAI dendrites on the actor and the critic.",
    )
    p.add_argument("--short", action="store_true",
                   help=f"CI smoke run: the smaller defaults {SHORT} (explicit flags still win)")
    p.add_argument("--iterations", type=positive_int,
                   help=f"collection + update rounds, one PAI score each (default {FULL['iterations']})")
    p.add_argument("--switch-every", type=positive_int,
                   help=f"PAI scores between two dendrite additions (default {FULL['switch_every']})")
    p.add_argument("--envs", type=positive_int, help=f"CartPoles stepped together (default {FULL['envs']})")
    p.add_argument("--steps", type=positive_int, help=f"steps per environment per iteration (default {FULL['steps']})")
    p.add_argument("--epochs", type=positive_int, help=f"passes over each batch (default {FULL['epochs']})")
    p.add_argument("--minibatch", type=positive_int, help=f"transitions per update (default {FULL['minibatch']})")
    p.add_argument("--hidden", type=positive_int, help=f"width of the two hidden layers (default {FULL['hidden']})")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default %(default)s)")
    p.add_argument("--threads", type=positive_int, default=1, help="torch intra-op threads (default %(default)s)")
    p.add_argument("--out", type=Path, default=Path("runs/ppo_pai"),
                   help="output folder, reused from one run to the next (default %(default)s)")
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    for key, value in (SHORT if args.short else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    import torch
    from tensordict import TensorDict
    from tensordict.nn import TensorDictModule
    from torch import nn
    from torchrl.collectors import Collector
    from torchrl.envs import GymEnv, RewardSum, SerialEnv, TransformedEnv
    from torchrl.modules import OneHotCategorical, ProbabilisticActor
    from tqdm import tqdm

    from torchrl_functional.functional import clip_ppo_loss, generalized_advantage_estimate
    from torchrl_functional.pai import NetworkSpec, PAIGroup, PAISettings

    def mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
        return nn.Sequential(nn.Linear(n_in, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                             nn.Linear(hidden, n_out))

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)

    env = TransformedEnv(SerialEnv(args.envs, lambda: GymEnv("CartPole-v1")), RewardSum())
    env.set_seed(args.seed)
    n_obs = env.observation_spec["observation"].shape[-1]
    n_act = env.action_spec.shape[-1]

    group = PAIGroup(
        "ppo_cartpole",
        {
            "actor": NetworkSpec(mlp(n_obs, args.hidden, n_act), lr=2e-3),
            "critic": NetworkSpec(mlp(n_obs, args.hidden, 1), lr=5e-3),
        },
        directory=args.out,
        settings=PAISettings(switch_mode="fixed", fixed_switch_num=args.switch_every, find_best_lr=False, max_dendrites=3),
        scheduler_kwargs={"patience": 10, "factor": 0.5},
        maximize=True,
        overwrite=True,
    )
    actor, critic = group["actor"], group["critic"]
    policy = ProbabilisticActor(
        TensorDictModule(actor, in_keys=["observation"], out_keys=["logits"]),
        in_keys=["logits"],
        distribution_class=OneHotCategorical,
        return_log_prob=True,
    )
    frames = args.envs * args.steps
    collector = Collector(
        env, policy, frames_per_batch=frames, total_frames=frames * args.iterations,
        auto_register_policy_transforms=False,
    )

    history = {"iteration": [], "return": [], "params": [], "restructured": [], "grown": []}
    last_return = 0.0
    start = time.perf_counter()
    bar = tqdm(total=args.iterations, desc="PPO+PAI", file=sys.stderr, mininterval=1.0)
    for it, data in enumerate(collector):
        torch.set_num_threads(args.threads)  # TorchRL's SerialEnv raises it when it restarts its workers
        # GAE on [envs, T] with the functional kernel; the networks see [N, F] batches only
        with torch.no_grad():
            flat = data.reshape(-1)
            value = critic(flat["observation"]).view(*data.shape, 1)
            next_value = critic(flat["next", "observation"]).view(*data.shape, 1)
            advantage, value_target = generalized_advantage_estimate(
                0.99, 0.95, value, next_value, data["next", "reward"],
                data["next", "done"], data["next", "terminated"],
            )
        batch = flat.select("observation", "action", "action_log_prob")
        batch["advantage"] = advantage.reshape(-1, 1)
        batch["value_target"] = value_target.reshape(-1, 1)
        for _ in range(args.epochs):
            for idx in torch.randperm(frames).split(args.minibatch):
                mb = batch[idx]
                td = TensorDict(
                    {
                        **mb.to_dict(),
                        "actor_output": {"logits": actor(mb["observation"])},
                        "state_value": critic(mb["observation"]),
                    },
                    batch_size=[len(idx)],
                )
                out = clip_ppo_loss(
                    td, OneHotCategorical, clip_epsilon=0.2, entropy_coeff=0.01, critic_coeff=0.5,
                    loss_critic_type="l2", normalize_advantage=True,
                )
                loss = out["loss_objective"] + out["loss_entropy"] + out["loss_critic"]
                group.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(group.parameters(), 1.0)
                group.step()
        finished = data["next", "episode_reward"][data["next", "done"]]
        if finished.numel():
            last_return = finished.mean().item()
        result = group.add_score(last_return)  # PAI's scheduler step, maybe new dendrites
        history["iteration"].append(it + 1)
        history["return"].append(last_return)
        history["params"].append(result.total_params)
        history["restructured"].append(result.restructured)
        history["grown"].append(result.dendrites_added > 0)
        if result.restructured:
            # the collector's policy wraps the same actor object: nothing to rebuild
            what = "dendrites added" if result.dendrites_added > 0 else "no dendrites added"
            tqdm.write(
                f"iteration {it + 1}: PAI restructured ({what}), {result.num_dendrites} dendrite set(s), "
                f"{result.total_params} parameters, lrs {result.lrs}", file=sys.stderr,
            )
        bar.set_postfix(ret=f"{last_return:.0f}", params=result.total_params, lr=f"{result.lrs['actor']:.1e}")
        bar.update(1)
        if result.training_complete:
            tqdm.write(f"iteration {it + 1}: PAI reports training complete", file=sys.stderr)
            break
    bar.close()
    collector.shutdown()
    elapsed = time.perf_counter() - start

    checkpoint = group.save_checkpoint(args.out / "checkpoint.pt")
    group.close()
    figure = plot(history, args.out / "ppo_pai.png")
    summary = {
        "iterations": len(history["iteration"]),
        "restructures": sum(history["restructured"]),
        "dendrite_additions": sum(history["grown"]),
        "final_return": history["return"][-1],
        "best_return": max(history["return"]),
        "params_start": history["params"][0],
        "params_end": history["params"][-1],
        "seconds": elapsed,
        "figure": str(figure),
        "checkpoint": str(checkpoint),
    }
    print(
        f"{summary['iterations']} iterations in {elapsed:.0f} s, {summary['restructures']} restructure(s) "
        f"({summary['dendrite_additions']} adding dendrites), "
        f"return {summary['final_return']:.1f} (best {summary['best_return']:.1f}), parameters "
        f"{summary['params_start']} -> {summary['params_end']}; wrote {figure} and {checkpoint}"
    )
    return summary


def plot(history: dict, path: Path) -> Path:
    """Return and parameter count over the iterations, restructures dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    ax1.plot(history["iteration"], history["return"], color="tab:blue")
    ax1.set_ylabel("mean episode return")
    ax2.step(history["iteration"], history["params"], where="post", color="tab:green")
    ax2.set_ylabel("parameters (actor + critic)")
    ax2.set_xlabel("iteration")
    for it, restructured in zip(history["iteration"], history["restructured"]):
        if restructured:
            for ax in (ax1, ax2):
                ax.axvline(it, color="tab:red", linestyle="--", linewidth=0.8)
    ax1.set_title("PPO on CartPole-v1 with PerforatedAI dendrites (dashed: restructure)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


if __name__ == "__main__":
    main()

"""SAC on Pendulum-v1 with PerforatedAI dendrites on the actor, both Q networks and their targets.

Haarnoja et al. 2018 (SAC v2, arXiv 1812.05905) with the functional loss
(:func:`torchrl_functional.functional.sac_loss`). TorchRL's ``SACLoss`` trains its own
stacked copies of the Q network, which PAI's dendrites cannot reach; here every network is
a network of a :class:`~torchrl_functional.pai.PAIGroup` ("actor", "q1", "q2": one
PAI-managed Adam, a param group each), the target Q networks are the group's
:class:`~torchrl_functional.pai.TargetNetwork` objects (they follow the Q networks'
dendrites), and each loss trains its own networks with ``backward(inputs=...)``. The PAI
score is the mean return of deterministic evaluation episodes after every ``--epoch``
environment steps; dendrites are added every ``--switch-every`` scores.

Writes under ``--out`` (default ``runs/sac_pai``): PAI's files (``sac_pendulum/``),
``sac_pai.csv`` (one row per epoch), ``sac_pai.png`` (returns and parameter count) and
``checkpoint.pt`` (the group, its optimizers and target networks).

    python examples/sac_pai.py            # 10 epochs of 1000 steps, 2 dendrite additions
    python examples/sac_pai.py --short    # CI smoke run: 3 small epochs, 1 dendrite addition
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ppo_pai import non_negative_int, positive_int

SHORT = dict(steps=600, epoch=200, switch_every=2, batch_size=64, hidden=32, random_steps=200, eval_episodes=1)
FULL = dict(steps=10000, epoch=1000, switch_every=4, batch_size=128, hidden=64, random_steps=1000, eval_episodes=2)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sac_pai.py",
        description="SAC on Pendulum-v1 with PerforatedAI dendrites on the actor, both Q networks and their targets.",
    )
    p.add_argument("--short", action="store_true",
                   help=f"CI smoke run: the smaller defaults {SHORT} (explicit flags still win)")
    p.add_argument("--steps", type=positive_int, help=f"environment steps in total (default {FULL['steps']})")
    p.add_argument("--epoch", type=positive_int,
                   help=f"environment steps between two PAI scores (default {FULL['epoch']})")
    p.add_argument("--switch-every", type=positive_int,
                   help=f"PAI scores between two dendrite additions (default {FULL['switch_every']})")
    p.add_argument("--max-dendrites", type=positive_int, default=2,
                   help="dendrite additions before PAI declares training complete (default %(default)s)")
    p.add_argument("--batch-size", type=positive_int, help=f"transitions per update (default {FULL['batch_size']})")
    p.add_argument("--hidden", type=positive_int, help=f"width of the two hidden layers (default {FULL['hidden']})")
    p.add_argument("--random-steps", type=non_negative_int,
                   help=f"uniformly random actions before the first update (default {FULL['random_steps']})")
    p.add_argument("--eval-episodes", type=positive_int,
                   help=f"deterministic episodes per PAI score (default {FULL['eval_episodes']})")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default %(default)s)")
    p.add_argument("--threads", type=positive_int, default=1, help="torch intra-op threads (default %(default)s)")
    p.add_argument("--out", type=Path, default=Path("runs/sac_pai"),
                   help="output folder, reused from one run to the next (default %(default)s)")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    for key, value in (SHORT if args.short else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.epoch > args.steps:
        parser.error(f"--epoch ({args.epoch}) must not exceed --steps ({args.steps})")
    return args


def make_networks(n_obs: int, n_act: int, hidden: int):
    """The actor's MLP (``[B, obs] -> [B, 2 act]``) and two Q networks (``[B, obs], [B, act] -> [B, 1]``)."""
    import torch
    from torch import nn

    def mlp(n_in: int, n_out: int) -> nn.Sequential:
        return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                             nn.Linear(hidden, n_out))

    class QNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = mlp(n_obs + n_act, 1)

        def forward(self, observation: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
            return self.net(torch.cat([observation, action], -1))

    return mlp(n_obs, 2 * n_act), QNet(), QNet()


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    import torch
    from tensordict import TensorDict
    from tensordict.nn import NormalParamExtractor, TensorDictModule
    from torch import nn
    from torchrl.collectors import Collector
    from torchrl.data import LazyTensorStorage, ReplayBuffer
    from torchrl.envs import GymEnv, RewardSum, SerialEnv, TransformedEnv
    from torchrl.envs.utils import ExplorationType, set_exploration_type
    from torchrl.modules import ProbabilisticActor, TanhNormal
    from tqdm import tqdm

    from torchrl_functional.functional import sac_loss
    from torchrl_functional.pai import NetworkSpec, PAIGroup, PAISettings

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)

    def make_env(seed: int):  # a batch of one: PAI's layers take [B, F] inputs
        env = TransformedEnv(SerialEnv(1, lambda: GymEnv("Pendulum-v1")), RewardSum())
        env.set_seed(seed)
        return env

    env, eval_env = make_env(args.seed), make_env(args.seed + 10_000)
    n_obs = env.observation_spec["observation"].shape[-1]
    spec = env.action_spec
    n_act = spec.shape[-1]
    actor_net, q1, q2 = make_networks(n_obs, n_act, args.hidden)
    group = PAIGroup(
        "sac_pendulum",
        {"actor": NetworkSpec(actor_net, lr=3e-4), "q1": NetworkSpec(q1, lr=1e-3), "q2": NetworkSpec(q2, lr=1e-3)},
        directory=args.out,
        scheduler=None,  # SAC trains at constant learning rates; PAI restores them at restructures
        settings=PAISettings(switch_mode="fixed", fixed_switch_num=args.switch_every, find_best_lr=False,
                             max_dendrites=args.max_dendrites),
        overwrite=True,
    )
    targets = [group.target("q1"), group.target("q2")]
    policy = ProbabilisticActor(
        TensorDictModule(nn.Sequential(actor_net, NormalParamExtractor()), in_keys=["observation"],
                         out_keys=["loc", "scale"]),
        in_keys=["loc", "scale"], spec=spec, distribution_class=TanhNormal,
        distribution_kwargs={"low": spec.space.low[0], "high": spec.space.high[0]}, return_log_prob=True,
    )
    log_alpha = nn.Parameter(torch.zeros(()))  # the temperature is not a network: its own Adam
    alpha_opt = torch.optim.Adam([log_alpha], lr=3e-4)
    buffer = ReplayBuffer(storage=LazyTensorStorage(args.steps), batch_size=args.batch_size)
    collector = Collector(env, policy, frames_per_batch=args.epoch, total_frames=args.steps,
                          init_random_frames=args.random_steps, auto_register_policy_transforms=False)

    def update(batch) -> None:
        obs, next_obs, n = batch["observation"], batch["next", "observation"], batch.numel()
        # one actor pass for s and s' (a~ reparameterised at s, a' at s'), one pass per Q
        # network for (s, a) and (s, a~): fewer calls of the layers with dendrites
        with set_exploration_type(ExplorationType.RANDOM):  # rsample, as TorchRL's SACLoss
            pi = policy(TensorDict({"observation": torch.cat([obs, next_obs])}, [2 * n]))
        action, next_action = pi["action"].split(n)
        log_prob, next_log_prob = pi["action_log_prob"].split(n)  # sac_loss detaches log pi(a'|s')
        with torch.no_grad():
            q_next = torch.stack([t(next_obs, next_action) for t in targets])
        both = [group[k](torch.cat([obs, obs]), torch.cat([batch["action"], action])).split(n) for k in ("q1", "q2")]
        inputs = TensorDict({
            "state_action_value": torch.stack([q for q, _ in both]),
            "state_action_value_actor": torch.stack([q for _, q in both]), "log_prob": log_prob,
            "next": {"state_action_value": q_next, "log_prob": next_log_prob,
                     **{k: batch["next", k] for k in ("reward", "done", "terminated")}},
        }, [])
        out = sac_loss(inputs, log_alpha=log_alpha, target_entropy=-float(n_act), gamma=0.99, loss_function="l2")
        group.zero_grad()
        alpha_opt.zero_grad()
        # each loss trains its own networks; gradients still flow through the others
        out["loss_actor"].backward(inputs=group.parameters("actor"), retain_graph=True)
        out["loss_qvalue"].backward(inputs=group.parameters("q1", "q2"))
        out["loss_alpha"].backward(inputs=[log_alpha])
        group.step()
        alpha_opt.step()
        for target in targets:
            target.update(0.005)

    def evaluate() -> float:
        returns = []
        with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
            for _ in range(args.eval_episodes):
                rollout = eval_env.rollout(200, policy)
                returns.append(rollout["next", "episode_reward"][..., -1, :].mean().item())
        return sum(returns) / len(returns)

    rows, steps, restructures, grown = [], 0, 0, 0
    start = time.perf_counter()
    bar = tqdm(total=args.steps, desc="SAC+PAI", unit="steps", file=sys.stderr, mininterval=1.0, disable=args.quiet)
    for epoch, data in enumerate(collector, start=1):
        steps += data.numel()
        torch.set_num_threads(args.threads)  # TorchRL's SerialEnv raises it when it restarts its workers
        buffer.extend(data.reshape(-1))
        finished = data["next", "episode_reward"][data["next", "done"]]
        if steps > args.random_steps:
            for _ in range(data.numel()):  # one update per environment step
                update(buffer.sample())
            collector.update_policy_weights_()
        score = evaluate()
        result = group.add_score(score)  # may add dendrites: optimizers, targets rebuilt
        restructures += result.restructured
        grown += result.dendrites_added > 0
        rows.append({"epoch": epoch, "steps": steps, "seconds": round(time.perf_counter() - start, 1),
                     "eval_return": score, "train_return": finished.mean().item() if finished.numel() else None,
                     "params": result.total_params, "restructured": int(result.restructured),
                     "dendrites": result.num_dendrites, "alpha": log_alpha.exp().item()})
        if result.restructured:
            what = "dendrites added" if result.dendrites_added > 0 else "no dendrites added"
            tqdm.write(f"epoch {epoch}: PAI restructured ({what}), {result.num_dendrites} dendrite set(s), "
                       f"{result.total_params} parameters", file=sys.stderr)
        bar.set_postfix(eval=f"{score:.0f}", params=result.total_params, refresh=False)
        bar.update(data.numel())
        if result.training_complete:
            tqdm.write(f"epoch {epoch}: PAI reports training complete (best model loaded)", file=sys.stderr)
            break
    bar.close()
    collector.shutdown()
    elapsed = time.perf_counter() - start
    final = evaluate()  # the networks as they are now (PAI's best model after completion)
    checkpoint = group.save_checkpoint(args.out / "checkpoint.pt")
    group.close()
    eval_env.close()

    csv_path = args.out / "sac_pai.csv"
    with csv_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    figure = None if args.no_plot else plot(rows, args.out / "sac_pai.png")
    summary = {
        "steps": steps, "seconds": elapsed, "restructures": restructures, "dendrite_additions": grown,
        "first_return": rows[0]["eval_return"], "best_return": max(r["eval_return"] for r in rows),
        "final_return": final, "params_start": rows[0]["params"], "params_end": rows[-1]["params"],
        "csv": str(csv_path), "figure": None if figure is None else str(figure), "checkpoint": str(checkpoint),
    }
    print(
        f"{steps} steps in {elapsed:.0f} s, {restructures} restructure(s) ({grown} adding dendrites), "
        f"eval return {summary['first_return']:.0f} -> {final:.0f} (best {summary['best_return']:.0f}), "
        f"parameters {summary['params_start']} -> {summary['params_end']}; wrote {csv_path}"
        + ("" if figure is None else f", {figure}") + f" and {checkpoint}"
    )
    return summary


def plot(rows: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["steps"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    ax1.plot(steps, [r["eval_return"] for r in rows], marker="o", color="tab:blue", label="evaluation")
    train = [(r["steps"], r["train_return"]) for r in rows if r["train_return"] is not None]
    ax1.plot(*zip(*train), color="tab:gray", alpha=0.6, label="training episodes") if train else None
    ax1.set_ylabel("episode return")
    ax1.legend(loc="lower right")
    ax2.step(steps, [r["params"] for r in rows], where="post", color="tab:green")
    ax2.set_ylabel("parameters (actor + 2 Q)")
    ax2.set_xlabel("environment steps")
    for r in rows:
        if r["restructured"]:
            for ax in (ax1, ax2):
                ax.axvline(r["steps"], color="tab:red", linestyle="--", linewidth=0.8)
    ax1.set_title("SAC on Pendulum-v1 with PerforatedAI dendrites (dashed: restructure)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


if __name__ == "__main__":
    main()

"""PPO on CartPole-v1 with the learner under ``torch.distributed`` ``DistributedDataParallel``.

Each process (rank) steps its own CartPole copies with its own seed, computes its advantages,
and runs the functional clipped PPO loss on its own minibatches; DDP averages the gradients
over ranks in ``backward``, so every rank applies the same update and the parameters stay
identical. One DDP step on ``world_size`` local batches of equal size equals one
single-process step on their concatenation (with ``normalize_advantage`` off; with it on,
each rank standardises its own minibatch, as most multi-GPU PPO code does).

One machine, two processes, CPU (gloo)::

    torchrun --nproc_per_node=2 examples/ppo_ddp.py --frames 100000

Several machines: run the same command on each with ``--nnodes=N --node_rank=i
--master_addr=<address of node 0> --master_port=29500``. Run directly (``python
examples/ppo_ddp.py``) it is a world of one process.
"""

from __future__ import annotations

import argparse
import math
import os
import socket
import sys
import time
from collections.abc import Sequence

from _cli import add_output_flag, add_threads_flag, non_negative_int, positive_int, route_torchrl_logs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ppo_ddp.py",
        description="PPO on CartPole-v1, learner under DistributedDataParallel (launch with torchrun).",
    )
    parser.add_argument("--frames", type=positive_int, default=100_000,
                        help="frames collected by all ranks together, rounded up to whole batches "
                             "(default: %(default)s)")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="seed of the initial parameters; rank r collects with seed + 1000 r "
                             "(default: %(default)s)")
    parser.add_argument("--num-envs", type=positive_int, default=8,
                        help="CartPole copies per rank (default: %(default)s)")
    parser.add_argument("--eval-episodes", type=positive_int, default=10,
                        help="greedy episodes of the final evaluation on rank 0 (default: %(default)s)")
    add_threads_flag(parser)
    add_output_flag(parser, "ppo_ddp", "--save-rank-states")
    parser.add_argument("--save-rank-states", action="store_true",
                        help="every rank saves its final parameters and a summary of the data it "
                             "collected to <out>/rank<r>.pt (to check that ranks agree)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


if __name__ == "__main__":
    build_parser().parse_args()  # --help and usage errors before the heavy imports below

import torch
import torch.distributed as dist
from ppo_cartpole import (
    PPOConfig,
    evaluate,
    functional_advantage,
    make_env,
    make_models,
    minibatch_size_for,
    ppo_losses,
)
from tensordict import TensorDict, TensorDictBase
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer
from torchrl.data.replay_buffers.samplers import SamplerWithoutReplacement
from torchrl.envs import GymEnv

LOSS_TERMS = ("loss_objective", "loss_critic", "loss_entropy")


class PPOLearner(nn.Module):
    """Policy and value networks with the functional clipped PPO loss as ``forward``.

    ``forward(batch)`` runs both networks on ``batch["observation"]`` and returns the loss
    TensorDict of :func:`torchrl_functional.functional.clip_ppo_loss`; wrapping this module in
    ``DistributedDataParallel`` is all it takes to average gradients over ranks.
    """

    def __init__(self, policy_net: nn.Module, value_net: nn.Module, cfg: PPOConfig) -> None:
        super().__init__()
        self.policy_net = policy_net
        self.value_net = value_net
        self.cfg = cfg

    def forward(self, batch: TensorDictBase) -> TensorDict:
        return ppo_losses(self.policy_net, self.value_net, batch, self.cfg)


def ppo_step(model: nn.Module, optim: torch.optim.Optimizer, batch: TensorDictBase, cfg: PPOConfig) -> TensorDict:
    """One gradient step on ``batch``; with ``model`` a DDP module, gradients are averaged over ranks."""
    out = model(batch)
    loss = sum(out[k] for k in LOSS_TERMS)
    optim.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.max_grad_norm is not None:
        nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
    optim.step()
    return out.detach()


def init_distributed() -> tuple[int, int]:
    """Joins the process group torchrun describes (``RANK``, ``WORLD_SIZE``, ``MASTER_*``),
    or makes a world of one on loopback when started directly."""
    if "RANK" not in os.environ:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    else:
        dist.init_process_group("gloo")
    return dist.get_rank(), dist.get_world_size()


def train(args: argparse.Namespace, cfg: PPOConfig | None = None) -> dict:
    cfg = cfg or PPOConfig()
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(args.threads)

    torch.manual_seed(args.seed)  # same initial parameters everywhere (DDP broadcasts rank 0's anyway)
    env = make_env(args.num_envs, args.seed + 1000 * rank)
    policy_net, value_net, actor, _ = make_models(env, cfg.hidden)
    learner = DDP(PPOLearner(policy_net, value_net, cfg))
    optim = torch.optim.Adam(learner.parameters(), lr=cfg.lr)
    torch.manual_seed(args.seed + 1000 * rank)  # each rank samples its own actions and minibatches

    frames_per_batch = args.num_envs * cfg.steps_per_env
    minibatch_size = minibatch_size_for(frames_per_batch, cfg, args.num_envs,
                                        log=print if rank == 0 else (lambda _: None))
    iterations = math.ceil(args.frames / (world * frames_per_batch))
    updates_per_batch = cfg.epochs * math.ceil(frames_per_batch / minibatch_size)
    total_updates = iterations * updates_per_batch
    collector = Collector(env, actor, frames_per_batch=frames_per_batch,
                          total_frames=iterations * frames_per_batch, auto_register_policy_transforms=False)
    buffer = TensorDictReplayBuffer(storage=LazyTensorStorage(frames_per_batch),
                                    sampler=SamplerWithoutReplacement(), batch_size=minibatch_size)

    from tqdm import tqdm

    pbar = tqdm(total=iterations * frames_per_batch * world, unit="frames",
                disable=args.quiet or rank != 0, dynamic_ncols=True)
    start = time.perf_counter()
    updates, local_frames, obs_sum = 0, 0, 0.0
    for data in collector:
        local_frames += data.numel()
        obs_sum += data["observation"].sum().item()
        functional_advantage(value_net, data, cfg)
        buffer.extend(data.reshape(-1))
        for _ in range(cfg.epochs):
            for batch in buffer:
                for group in optim.param_groups:
                    group["lr"] = cfg.lr * (1.0 - updates / total_updates)
                ppo_step(learner, optim, batch, cfg)
                updates += 1
        collector.update_policy_weights_()
        # mean return of the episodes every rank finished in this batch
        finished = data["next", "episode_reward"][data["next", "done"]]
        summary = torch.tensor([finished.sum().item(), finished.numel()], dtype=torch.float64)
        dist.all_reduce(summary)
        pbar.update(data.numel() * world)
        if summary[1] > 0:
            pbar.set_postfix(train_return=f"{summary[0].item() / summary[1].item():.1f}", refresh=False)
    pbar.close()
    seconds = time.perf_counter() - start
    collector.shutdown()

    result = {"rank": rank, "world_size": world, "frames": local_frames * world, "seconds": seconds}
    # parameters must agree bit for bit across ranks
    flat = torch.cat([p.detach().reshape(-1) for p in learner.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    result["identical_parameters"] = all(torch.equal(g, flat) for g in gathered)
    if rank == 0:
        eval_env = GymEnv("CartPole-v1", categorical_action_encoding=True)
        eval_env.set_seed(args.seed + 10_000)
        returns = torch.tensor(evaluate(actor, eval_env, args.eval_episodes))
        eval_env.close()
        result["eval_mean"] = returns.mean().item()
        result["eval_std"] = returns.std(unbiased=False).item()
    if args.save_rank_states:
        args.out.mkdir(parents=True, exist_ok=True)
        torch.save({"state_dict": learner.module.state_dict(), "frames": local_frames, "obs_sum": obs_sum,
                    "world_size": world}, args.out / f"rank{rank}.pt")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    route_torchrl_logs()
    rank, world = init_distributed()
    try:
        result = train(args)
    finally:
        dist.destroy_process_group()
    if rank == 0:
        print(f"world size {world}: {result['frames']} frames in {result['seconds']:.1f} s "
              f"({result['frames'] / result['seconds']:.0f} frames/s)")
        print(f"parameters identical on all ranks: {result['identical_parameters']}")
        print(f"final evaluation return: {result['eval_mean']:.1f} +/- {result['eval_std']:.1f} "
              f"({args.eval_episodes} greedy episodes)")
    return 0 if result["identical_parameters"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""One rank of the DDP-step test, launched by ``torch.distributed.run`` (see test_ppo_ddp.py).

Each rank builds the learner of examples/ppo_ddp.py, takes one ``ppo_step`` under
``DistributedDataParallel`` on its own batch (``make_batch(rank)``), and saves the
gradients and parameters it ends with to ``<out>/rank<r>.pt``.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

from ppo_cartpole import PPOConfig, mlp  # noqa: E402
from ppo_ddp import PPOLearner  # noqa: E402
from tensordict import TensorDict  # noqa: E402

# advantage normalisation is per rank by design; the equality holds for the unnormalised loss
CFG = dataclasses.replace(PPOConfig(), normalize_advantage=False, entropy_coeff=0.01, hidden=32)
BATCH = 48
LR = 0.05


def make_learner() -> PPOLearner:
    torch.manual_seed(1234)
    return PPOLearner(mlp(4, 2, CFG.hidden), mlp(4, 1, CFG.hidden), CFG)


def make_batch(rank: int, learner: PPOLearner) -> TensorDict:
    """A rank's batch: random observations, actions, a behaviour policy near the current one."""
    g = torch.Generator().manual_seed(100 + rank)
    obs = torch.randn(BATCH, 4, generator=g)
    action = torch.randint(0, 2, (BATCH,), generator=g)
    with torch.no_grad():
        behaviour_logits = learner.policy_net(obs) + 0.3 * torch.randn(BATCH, 2, generator=g)
    log_prob = torch.log_softmax(behaviour_logits, -1).gather(-1, action[:, None]).squeeze(-1)
    return TensorDict(
        observation=obs,
        action=action,
        action_log_prob=log_prob,
        advantage=torch.randn(BATCH, 1, generator=g),
        value_target=torch.randn(BATCH, 1, generator=g),
        batch_size=[BATCH],
    )


def main(out: Path) -> None:
    import torch.distributed as dist
    from ppo_ddp import init_distributed, ppo_step
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.set_num_threads(1)
    rank, world = init_distributed()
    learner = make_learner()
    batch = make_batch(rank, learner)
    if rank == 1:  # DDP must broadcast rank 0's parameters at construction
        with torch.no_grad():
            for p in learner.parameters():
                p.add_(1.0)
    model = DDP(learner)
    optim = torch.optim.SGD(model.parameters(), lr=LR)
    ppo_step(model, optim, batch, CFG)
    torch.save(
        {"grads": [p.grad.clone() for p in learner.parameters()], "state_dict": learner.state_dict(),
         "world_size": world},
        out / f"rank{rank}.pt",
    )
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))

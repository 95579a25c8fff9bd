"""Quick start: a few PPO updates with the functional loss on a synthetic batch.

Run with ``python examples/quickstart.py``. Builds a small Gaussian actor and a critic,
makes one collector-like batch, and takes a few Adam steps on ``clip_ppo_loss``, the
way a custom training loop would; then checks that TorchRL's ``ClipPPOLoss`` gives the
same numbers on the same networks.
"""

from __future__ import annotations

import argparse

from _cli import add_threads_flag, non_negative_int, positive_int


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="quickstart.py",
        description="A few PPO updates with the functional loss on a synthetic batch, then the drop-in "
                    "ClipPPOLoss checked against TorchRL's on the same networks. Writes nothing.")
    parser.add_argument("--steps", type=positive_int, default=5, help="optimizer steps (default: %(default)s)")
    parser.add_argument("--batch", type=positive_int, default=256,
                        help="samples in the synthetic batch, at least 2 (default: %(default)s)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default: %(default)s)")
    add_threads_flag(parser)
    args = parser.parse_args(argv)
    if args.batch < 2:
        parser.error(f"argument --batch: must be at least 2, got {args.batch}")
    return args


if __name__ == "__main__":
    parse_args()  # --help and usage errors before the heavy imports below (a second, not ten)

import torch
from tensordict import TensorDict
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch import nn
from torchrl.modules import ProbabilisticActor, TanhNormal, ValueOperator
from torchrl.objectives import ClipPPOLoss as TorchRLClipPPOLoss

from torchrl_functional import clip_ppo_loss
from torchrl_functional.modules import ClipPPOLoss


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    obs_dim, act_dim = 8, 2

    policy = TensorDictModule(
        nn.Sequential(nn.Linear(obs_dim, 64), nn.Tanh(), nn.Linear(64, 2 * act_dim), NormalParamExtractor()),
        in_keys=["observation"], out_keys=["loc", "scale"],
    )
    actor = ProbabilisticActor(policy, in_keys=["loc", "scale"], distribution_class=TanhNormal,
                               return_log_prob=True)
    critic = ValueOperator(nn.Sequential(nn.Linear(obs_dim, 64), nn.Tanh(), nn.Linear(64, 1)),
                           in_keys=["observation"])

    # a collector-like batch: the behaviour policy's actions and log-probs, advantages, returns
    with torch.no_grad():
        data = actor(TensorDict({"observation": torch.randn(args.batch, obs_dim)}, [args.batch]))
    data["advantage"] = torch.randn(args.batch, 1)
    data["value_target"] = torch.randn(args.batch, 1)

    optim = torch.optim.Adam(list(actor.parameters()) + list(critic.parameters()), lr=3e-3)
    for step in range(args.steps):
        # the impure part: run the networks however you like ...
        inputs = data.select("action", "action_log_prob", "advantage", "value_target")
        inputs["actor_output"] = policy(data.select("observation")).select("loc", "scale")
        inputs["state_value"] = critic(data.select("observation"))["state_value"]
        # ... then the pure loss: no parameters, no state, hyperparameters may be tensors
        losses = clip_ppo_loss(inputs, TanhNormal, clip_epsilon=0.2, entropy_coeff=0.01)
        total = losses["loss_objective"] + losses["loss_critic"] + losses["loss_entropy"]
        optim.zero_grad()
        total.backward()
        optim.step()
        print(
            f"step {step}: loss_objective={losses['loss_objective'].item():+.4f} "
            f"loss_critic={losses['loss_critic'].item():.4f} entropy={losses['entropy'].item():.3f} "
            f"clip_fraction={losses['clip_fraction'].item():.3f} kl_approx={losses['kl_approx'].item():+.4f}"
        )

    # the drop-in module gives TorchRL's numbers on the same networks and seed
    ours, theirs = ClipPPOLoss(actor, critic), TorchRLClipPPOLoss(actor, critic)
    torch.manual_seed(1)
    a = ours(data.clone())
    torch.manual_seed(1)
    b = theirs(data.clone())
    diff = max((a[k] - b[k]).abs().max().item() for k in b.keys())
    print(f"drop-in ClipPPOLoss vs torchrl.objectives.ClipPPOLoss: max |difference| over {len(b.keys())} outputs = {diff:.2e}")


if __name__ == "__main__":
    main()

"""Quick start: a few PPO updates with the functional loss on a synthetic batch.

Run with ``python examples/quickstart.py``. Builds a small Gaussian actor and a critic,
makes one collector-like batch, and takes a few Adam steps on ``clip_ppo_loss``, the
way a custom training loop would; then checks that TorchRL's ``ClipPPOLoss`` gives the
same numbers on the same networks.
"""

from __future__ import annotations

import argparse

import torch
from tensordict import TensorDict
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch import nn
from torchrl.modules import ProbabilisticActor, TanhNormal, ValueOperator
from torchrl.objectives import ClipPPOLoss as TorchRLClipPPOLoss

from torchrl_functional import clip_ppo_loss
from torchrl_functional.modules import ClipPPOLoss


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="optimizer steps (default 5)")
    parser.add_argument("--batch", type=int, default=256, help="batch size (default 256)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch < 2:
        parser.error("--steps must be >= 1 and --batch >= 2")
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

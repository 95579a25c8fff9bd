"""Clip PPO forward+backward: networks alone, hand-written math, TorchRL, ours.

Variants, all on the same networks (obs 17 -> 64 -> 64, tanh) and the same batch:

- ``networks``: actor and critic forward on plain tensors + backward (the floor for any loss);
- ``handwritten``: the PPO math written with plain tensors, CleanRL style (with CleanRL's
  per-minibatch logs: approximate KL and clip fraction, without gradient);
- ``torchrl``: ``torchrl.objectives.ClipPPOLoss``;
- ``module``: our drop-in ``torchrl_functional.modules.ClipPPOLoss``;
- ``functional``: networks run by hand + ``torchrl_functional.clip_ppo_loss``;
- ``lean``: the same with ``diagnostics=False`` (losses only, no TorchRL logging outputs);
- ``compiled`` (``--compile``): the functional step under ``torch.compile``.

Usage: ``python -m benchmarks.bench_ppo [--threads N] [--batches 64 4096] [--smoke]``.
"""

from __future__ import annotations

import argparse
import math
import sys

import torch
import torch.nn.functional as F
from tensordict import TensorDict
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch import nn
from torchrl.modules import IndependentNormal, ProbabilisticActor, TanhNormal, ValueOperator
from torchrl.objectives import ClipPPOLoss as TorchRLClipPPOLoss

from benchmarks.common import format_table, interleaved_medians
from torchrl_functional import clip_ppo_loss
from torchrl_functional.modules import ClipPPOLoss

OBS, HIDDEN, ACT, N_DISCRETE = 17, 64, 6, 6
DISTS = ("tanh_normal", "normal", "categorical")


def mlp(out: int) -> nn.Module:
    return nn.Sequential(nn.Linear(OBS, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, out))


class Setup:
    """Networks, TorchRL-style modules around them, and one batch."""

    def __init__(self, dist: str, batch: int, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.dist = dist
        continuous = dist != "categorical"
        if continuous:
            self.actor_net = nn.Sequential(mlp(2 * ACT), NormalParamExtractor())
            self.dist_class = TanhNormal if dist == "tanh_normal" else IndependentNormal
            dist_keys = ["loc", "scale"]
        else:
            self.actor_net = mlp(N_DISCRETE)
            self.dist_class = torch.distributions.Categorical
            dist_keys = ["logits"]
        self.critic_net = mlp(1)
        self.dist_keys = dist_keys
        self.actor = ProbabilisticActor(
            TensorDictModule(self.actor_net, ["observation"], dist_keys),
            in_keys=dist_keys, distribution_class=self.dist_class, return_log_prob=True,
        )
        self.critic = ValueOperator(self.critic_net, in_keys=["observation"])
        self.params = list(self.actor_net.parameters()) + list(self.critic_net.parameters())
        obs = torch.randn(batch, OBS)
        with torch.no_grad():
            data = self.actor(TensorDict({"observation": obs}, [batch]))
        data["action_log_prob"] = data["action_log_prob"] + 0.1 * torch.randn(batch)
        data["advantage"] = torch.randn(batch, 1)
        data["value_target"] = torch.randn(batch, 1)
        self.data = data.select("observation", "action", "action_log_prob", "advantage", "value_target")
        self.obs = obs
        self.action = data["action"]
        self.old_log_prob = data["action_log_prob"]
        self.adv = data["advantage"]
        self.target = data["value_target"]
        self.torchrl_loss = TorchRLClipPPOLoss(self.actor, self.critic)
        self.our_loss = ClipPPOLoss(self.actor, self.critic)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    # ---------------------------------------------------------------- variants
    def networks(self) -> None:
        self.zero_grad()
        out = self.actor_net(self.obs)
        total = self.critic_net(self.obs).sum()
        total = total + (sum(o.sum() for o in out) if isinstance(out, tuple) else out.sum())
        total.backward()

    def _dist(self):
        out = self.actor_net(self.obs)
        if self.dist == "categorical":
            return torch.distributions.Categorical(logits=out)
        return self.dist_class(*out)

    def handwritten(self) -> None:
        """CleanRL-style: the PPO math on plain tensors."""
        self.zero_grad()
        dist = self._dist()
        log_prob = dist.log_prob(self.action)
        if self.dist == "tanh_normal":
            _, lp = dist.rsample_and_log_prob((1,))
            entropy = -lp.mean(0)
        else:
            entropy = dist.entropy()
        log_ratio = (log_prob - self.old_log_prob).unsqueeze(-1)
        ratio = log_ratio.exp()
        eps = 0.2
        with torch.no_grad():  # CleanRL logs these every minibatch
            approx_kl = ((ratio - 1) - log_ratio).mean()
            clipfrac = ((ratio - 1.0).abs() > eps).float().mean()
        del approx_kl, clipfrac
        pg = -torch.minimum(ratio * self.adv, ratio.clamp(1 - eps, 1 + eps) * self.adv).mean()
        value = self.critic_net(self.obs)
        v_loss = F.smooth_l1_loss(value, self.target)
        loss = pg + v_loss - 0.01 * entropy.mean()
        loss.backward()

    def torchrl(self) -> None:
        self.zero_grad()
        out = self.torchrl_loss(self.data)
        (out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]).backward()

    def module(self) -> None:
        self.zero_grad()
        out = self.our_loss(self.data)
        (out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]).backward()

    def functional_inputs(self) -> TensorDict:
        out = self.actor_net(self.obs)
        params = dict(zip(self.dist_keys, out)) if isinstance(out, tuple) else {"logits": out}
        td = self.data.select("action", "action_log_prob", "advantage", "value_target")
        td["actor_output"] = TensorDict(params, td.batch_size)
        td["state_value"] = self.critic_net(self.obs)
        return td

    def functional(self) -> None:
        self.zero_grad()
        out = clip_ppo_loss(self.functional_inputs(), self.dist_class)
        (out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]).backward()

    def lean(self) -> None:
        self.zero_grad()
        out = clip_ppo_loss(self.functional_inputs(), self.dist_class, diagnostics=False)
        (out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]).backward()


def run(batches: list[int], dists: tuple[str, ...], repeats: int, inner: int, compile_: bool) -> list[dict]:
    rows = []
    for batch in batches:
        for dist in dists:
            s = Setup(dist, batch)
            variants = {
                "networks": s.networks,
                "handwritten": s.handwritten,
                "torchrl": s.torchrl,
                "module": s.module,
                "functional": s.functional,
                "lean": s.lean,
            }
            if compile_:
                step = torch.compile(lambda td, cls=s.dist_class: clip_ppo_loss(td, cls))

                def compiled(s=s, step=step):
                    s.zero_grad()
                    out = step(s.functional_inputs())
                    (out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]).backward()

                variants["compiled"] = compiled
            t = interleaved_medians(variants, repeats=repeats, inner=inner)
            row = {"dist": dist, "batch": batch, **{k: v * 1e3 for k, v in t.items()}}
            net = t["networks"]
            row["torchrl/module"] = t["torchrl"] / t["module"]
            row["torchrl/functional"] = t["torchrl"] / t["functional"]
            row["overhead module/torchrl"] = (t["module"] - net) / max(t["torchrl"] - net, 1e-12)
            row["overhead module/hand"] = (t["module"] - net) / max(t["handwritten"] - net, 1e-12)
            row["overhead functional/hand"] = (t["functional"] - net) / max(t["handwritten"] - net, 1e-12)
            row["overhead lean/hand"] = (t["lean"] - net) / max(t["handwritten"] - net, 1e-12)
            if compile_:
                row["compiled/hand"] = t["compiled"] / t["handwritten"]
            rows.append(row)
            print(f"  done {dist} batch={batch}", file=sys.stderr)
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description="Clip PPO forward+backward benchmark")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 4096])
    parser.add_argument("--dists", nargs="+", default=list(DISTS), choices=DISTS)
    parser.add_argument("--repeats", type=int, default=31)
    parser.add_argument("--inner", type=int, default=10)
    parser.add_argument("--no-compile", dest="compile", action="store_false",
                        help="skip the torch.compile variant (it is skipped in --smoke too)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, few repeats (CI)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.smoke:
        args.batches, args.repeats, args.inner, args.compile = [8], 3, 1, False
    rows = run(args.batches, tuple(args.dists), args.repeats, args.inner, args.compile)
    headers = list(rows[0])
    print(f"Clip PPO forward+backward, ms per call (median of {args.repeats} interleaved repeats x {args.inner} calls), "
          f"{args.threads} thread(s)")
    print(format_table(headers, [[r[h] for h in headers] for r in rows]))
    for r in rows:
        assert all(math.isfinite(v) for v in r.values() if isinstance(v, float)), r
    return rows


if __name__ == "__main__":
    main()

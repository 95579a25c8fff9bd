"""Networks, settings and training steps shared by the PAI tests (and by the resume worker,
which runs the same code in a fresh process)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchrl.objectives.common import LossModule

from tests.builders import OBS, make_data, make_nets
from tests.modules.by_spec import accepts, on_policy_specs
from tests.specs import SPECS
from torchrl_functional.functional import SACKeys, TD3Keys
from torchrl_functional.pai import NetworkSpec, PAIGroup, PAISettings

#: the losses the PAI tests train, from the registry: PPO with a clipped surrogate (the single-agent
#: on-policy loss taking ``clip_epsilon``), SAC (version 2, continuous) and TD3 (by their keys)
CLIP_PPO = next(s for s in on_policy_specs() if accepts(s.torchrl, "clip_epsilon"))
SAC = next(s for s in SPECS if s.keys is SACKeys)
TD3 = next(s for s in SPECS if s.keys is TD3Keys)


def mlp(sizes: list[int], seed: int) -> nn.Sequential:
    """Tanh MLP with weights fixed by ``seed``."""
    g = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layer = nn.Linear(a, b)
        with torch.no_grad():
            layer.weight.copy_(torch.randn(b, a, generator=g) * 0.5)
            layer.bias.copy_(torch.randn(b, generator=g) * 0.1)
        layers.append(layer)
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


def fixed(num: int = 3, **kwargs) -> PAISettings:
    """PAI adds dendrites every ``num`` scores (no learning-rate search in between)."""
    return PAISettings(switch_mode="fixed", fixed_switch_num=num, find_best_lr=False, **kwargs)


def regression_step(group: PAIGroup, x: torch.Tensor, names: list[str] | None = None) -> float:
    """One step of the shared optimizer on ``sum_n mean(net_n(x)^2)`` (other optimizers too)."""
    names = names or group.names
    loss = sum(group[n](x).pow(2).mean() for n in names)
    group.zero_grad()
    loss.backward()
    group.step()
    return loss.item()


def trainable_params(module: nn.Module) -> set[int]:
    """ids of the parameters an optimizer should hold: trainable, not PAI's layer templates."""
    return {
        id(p) for name, p in module.named_parameters()
        if p.requires_grad and ".parent_module." not in f".{name}."
    }


# ---------------------------------------------------------------- save / resume scenario
RESUME_SCORES = [0.0, 1.0, 2.0, 3.0, 2.5]  # a restructure at the 3rd score, a plateau at the 5th
CONTINUE_SCORES = [4.0, 5.0, 6.0]  # the 6th score restructures again (after the load)


def resume_group(out_dir: Path, seed: int) -> tuple[PAIGroup, LossModule]:
    """Actor + critic (shared Adam), a Case 2 SGD net with a target, a Case 3 RMSprop net."""
    nets = make_nets("normal", seed=seed)
    group = PAIGroup(
        "resume",
        {
            "actor": NetworkSpec(nets.actor, lr=1e-2),
            "critic": NetworkSpec(nets.critic, lr=3e-2),
            "meta": NetworkSpec(mlp([OBS, 4, 1], seed + 1), lr=1e-2, optimizer=torch.optim.SGD,
                                optimizer_kwargs={"momentum": 0.9}),
            "aux": NetworkSpec(mlp([OBS, 3], seed + 2), lr=5e-3, optimizer=torch.optim.RMSprop,
                               follow_pai_lr=False),
        },
        directory=out_dir,
        settings=fixed(3),
        scheduler_kwargs={"patience": 0, "factor": 0.5},
    )
    group.target("meta")
    loss = group.track_loss(CLIP_PPO.module(group["actor"], group["critic"]))
    return group, loss


def resume_train(group: PAIGroup, loss: LossModule, steps: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    for i in range(steps):
        data = make_data("normal", (16,), seed=1000 * seed + i)
        x = torch.randn(16, OBS, generator=gen)
        out = loss(data)
        total = out["loss_objective"] + out["loss_entropy"] + out["loss_critic"]
        total = total + group["meta"](x).pow(2).mean() + group["aux"](x).pow(2).mean()
        total = total + (group["meta"](x) - group.target("meta")(x)).pow(2).mean()
        group.zero_grad()
        total.backward()
        group.step()
        group.target("meta").update(0.1)


def resume_prefix(group: PAIGroup, loss: LossModule) -> None:
    """Training before the checkpoint."""
    for i, score in enumerate(RESUME_SCORES):
        resume_train(group, loss, 2, seed=i)
        group.add_score(score)
    resume_train(group, loss, 1, seed=99)


def resume_continue(group: PAIGroup, loss: LossModule) -> dict:
    """Training after the checkpoint; returns everything to compare across processes."""
    results = []
    for i, score in enumerate(CONTINUE_SCORES):
        resume_train(group, loss, 2, seed=50 + i)
        r = group.add_score(score)
        results.append([float(r.restructured), float(r.total_params), *[float(v) for v in r.lrs.values()]])
    resume_train(group, loss, 1, seed=77)
    return {
        "model": {k: v.detach().clone() for k, v in group.model.state_dict().items() if k != "tracker_string"},
        "target": dict(group.target("meta").params),
        "results": torch.tensor(results, dtype=torch.float64),
        "num_dendrites": group.num_dendrites,
    }

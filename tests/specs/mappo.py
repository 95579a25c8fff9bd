"""Specs of the multi-agent PPO losses: ``mappo_loss`` and ``ippo_loss`` (with and without a
value normaliser)."""

from __future__ import annotations

import copy
import functools

import torch
from tensordict import TensorDict
from torchrl.modules import PopArtValueNorm, RunningValueNorm
from torchrl.objectives.multiagent import mappo as trl_mappo

from tests.modules.multiagent_nets import KEYS, nets
from torchrl_functional import modules
from torchrl_functional.functional import PPOKeys, ValueNormalizer, ippo_loss, mappo_loss

from ._inputs import BATCH, N_ACTIONS, categorical
from ._modules import _quiet
from ._spec import Hyper, Layout, LossSpec, ModuleCase
from .ppo import DISCOUNT, GRAD_OUTPUTS, ON_POLICY_BENCH

N_AGENTS, OBS = 3, 4
ACTOR = (("actor_output", "logits"), "state_value")


def marl_td(seed: int, dtype: torch.dtype = torch.float32, *, advantage: bool = False,
            per_agent_reward: bool = False) -> TensorDict:
    """A ``[B, T]`` batch whose policy, action, log-probs and values are per agent
    (``[B, T, N, ...]``) and whose rewards and done flags are the team's (``[B, T, 1]``)."""
    g = torch.Generator().manual_seed(seed)
    shape = torch.Size(BATCH)

    def randn(*s: int) -> torch.Tensor:
        return torch.randn(*s, generator=g, dtype=torch.float64).to(dtype)

    agents = (*shape, N_AGENTS)
    logits = randn(*agents, N_ACTIONS)
    action = torch.randint(N_ACTIONS, agents, generator=g)
    log_prob = categorical(logits).log_prob(action) + 0.3 * randn(*agents)
    flags = (*agents, 1) if per_agent_reward else (*shape, 1)
    done = torch.zeros(flags, dtype=torch.bool)
    done[0, 2] = True
    done[:, -1] = True
    terminated = done.clone()
    terminated[1, -1] = False
    data = {"actor_output": TensorDict({"logits": logits}, shape), "action": action, "action_log_prob": log_prob,
            "state_value": randn(*agents, 1)}
    if advantage:
        data["advantage"] = randn(*agents, 1)
        data["value_target"] = 5 * randn(*agents, 1) + 2
    else:
        data["next"] = {"reward": 5 * randn(*flags) + 1, "done": done, "terminated": terminated,
                        "state_value": randn(*agents, 1)}
    return TensorDict(data, batch_size=shape)


def _popart_stats() -> TensorDict:
    norm = ValueNormalizer("popart", beta=0.9)
    stats = norm.init(1)
    for x in (torch.tensor([[0.5], [-0.3]]), torch.tensor([[0.2], [-0.4]])):
        stats = norm.update(stats, x)
    return stats


# explained variance off: on 2 trajectories its float32 eps (TorchRL's formula) dominates some
# normalised variances, so a float64 entry would change it beyond the fuzz tolerance
POPART = {"value_norm": ValueNormalizer("popart", beta=0.9), "value_norm_stats": _popart_stats(),
          "log_explained_variance": False}


def layouts() -> tuple[Layout, ...]:
    return (
        Layout("magae", marl_td, {"dist_class": categorical}, ACTOR, compile=True),
        Layout("magae_popart", marl_td, {"dist_class": categorical, **POPART}, ACTOR),
        Layout("given_popart", functools.partial(marl_td, advantage=True), {"dist_class": categorical, **POPART},
               ACTOR),
        Layout("per_agent_reward", functools.partial(marl_td, per_agent_reward=True),
               {"dist_class": categorical, "value_norm": ValueNormalizer("running"),
                "value_norm_stats": ValueNormalizer("running").init(1)}, ACTOR, fuzz=False),
    )


def hypers() -> tuple[Hyper, ...]:
    return (
        # with a value normaliser the critic's target is detached (TorchRL): gamma/lmbda reach the advantage only
        Hyper("gamma", 0.9, invalid=DISCOUNT, entry=True, objective=("loss_objective",),
              layouts=("magae", "magae_popart", "per_agent_reward")),
        Hyper("lmbda", 0.8, invalid=DISCOUNT, entry=True, objective=("loss_objective",),
              layouts=("magae", "magae_popart", "per_agent_reward")),
        Hyper("entropy_coeff", 0.05, entry=True),
        Hyper("critic_coeff", 0.5, invalid=(-1.0,), entry=True),
        Hyper("clip_epsilon", 0.2, invalid=(-0.1, 1.5), entry=True),
    )


# ----------------------------------------------------------------------------- drop-in cases

def _nets(centralized: bool):
    return nets(5, centralized, share_critic=True)


def module_case(case_id: str, cls_name: str, norm, kwargs: dict | None = None, batch: tuple[int, int] = (2, 5),
                functional_call: bool = False) -> ModuleCase:
    kwargs = kwargs or {}
    centralized = cls_name == "MAPPOLoss"

    def build():
        actor, critic = _nets(centralized)
        pair = []
        for cls in (getattr(trl_mappo, cls_name), getattr(modules, cls_name)):
            loss = _quiet(lambda cls=cls: cls(copy.deepcopy(actor), copy.deepcopy(critic),
                                              value_norm=None if norm is None else norm(), **kwargs))
            loss.set_keys(**KEYS)
            pair.append(loss)
        return tuple(pair)

    def data(seed: int) -> TensorDict:
        actor, _ = _nets(centralized)
        g = torch.Generator().manual_seed(seed)
        b, t = batch
        done = torch.zeros(b, t, 1, dtype=torch.bool)
        done[:, -1] = True
        td = TensorDict({
            "agents": TensorDict({"observation": torch.randn(b, t, N_AGENTS, OBS, generator=g)}, [b, t, N_AGENTS]),
            "next": TensorDict({
                "agents": TensorDict({"observation": torch.randn(b, t, N_AGENTS, OBS, generator=g)}, [b, t, N_AGENTS]),
                "reward": 10 * torch.randn(b, t, 1, generator=g), "done": done, "terminated": done.clone(),
            }, [b, t]),
        }, [b, t])
        with torch.no_grad():
            sampled = actor(td.clone())
        td["agents", "action"] = sampled["agents", "action"]
        td["agents", "action_log_prob"] = sampled["agents", "action_log_prob"]
        return td

    def rebatch(new_batch: tuple[int, ...]) -> ModuleCase:
        return module_case(case_id, cls_name, norm, kwargs, tuple(new_batch), functional_call)

    return ModuleCase(case_id, build, data, functional_call=functional_call, rebatch=rebatch)


def module_cases(cls_name: str):
    def cases():
        return [
            module_case("popart", cls_name, functools.partial(PopArtValueNorm, shape=1, beta=0.9),
                        functional_call=True),
            module_case("plain", cls_name, None),
            module_case("running_clip_value", cls_name, RunningValueNorm, {"clip_value": 0.2}),
        ]

    return cases


SPECS = [
    LossSpec(
        name, fn, PPOKeys, layouts(), hypers(), getattr(modules, cls), getattr(trl_mappo, cls), module_cases(cls),
        random=("generator",), grad_outputs=GRAD_OUTPUTS, bench_batch=ON_POLICY_BENCH,
    )
    for name, fn, cls in (("mappo_loss", mappo_loss, "MAPPOLoss"), ("ippo_loss", ippo_loss, "IPPOLoss"))
]

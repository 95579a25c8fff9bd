"""Multi-agent ``[B, T, N]`` data and networks (shared-parameter actor, centralised or
per-agent critic) for the drop-in tests of the multi-agent PPO family, and a stand-in that
fails when a TorchRL function is reached."""

from __future__ import annotations

import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torchrl.modules import MultiAgentMLP, ProbabilisticActor
from torchrl.modules.distributions import NormalParamExtractor, TanhNormal

N, OBS, ACT = 3, 4, 2
KEYS = {"value": ("agents", "state_value"), "action": ("agents", "action"),
        "sample_log_prob": ("agents", "action_log_prob")}


def nets(seed: int, centralized: bool, share_critic: bool | None = None):
    """A shared-parameter TanhNormal actor and a critic (centralised or per agent; its
    parameters shared across agents by default when it is not centralised)."""
    torch.manual_seed(seed)
    backbone = torch.nn.Sequential(
        MultiAgentMLP(n_agent_inputs=OBS, n_agent_outputs=2 * ACT, n_agents=N, centralized=False,
                      share_params=True, depth=1, num_cells=8),
        NormalParamExtractor(),
    )
    actor = ProbabilisticActor(
        TensorDictModule(backbone, in_keys=[("agents", "observation")], out_keys=[("agents", "loc"), ("agents", "scale")]),
        in_keys={"loc": ("agents", "loc"), "scale": ("agents", "scale")}, out_keys=[("agents", "action")],
        distribution_class=TanhNormal, return_log_prob=True, log_prob_key=("agents", "action_log_prob"),
    )
    critic = TensorDictModule(
        MultiAgentMLP(n_agent_inputs=OBS, n_agent_outputs=1, n_agents=N, centralized=centralized,
                      share_params=not centralized if share_critic is None else share_critic, depth=1, num_cells=8),
        in_keys=[("agents", "observation")], out_keys=[("agents", "state_value")],
    )
    return actor, critic


def data(actor, B=2, T=5, seed=0, per_agent_reward=False, scale=1.0, advantage=False):
    g = torch.Generator().manual_seed(seed)
    r_shape = (B, T, N, 1) if per_agent_reward else (B, T, 1)
    done = torch.zeros(*r_shape, dtype=torch.bool)
    done[:, -1] = True
    done[0, 1] = True
    td = TensorDict({
        "agents": TensorDict({"observation": torch.randn(B, T, N, OBS, generator=g)}, [B, T, N]),
        "next": TensorDict({
            "agents": TensorDict({"observation": torch.randn(B, T, N, OBS, generator=g)}, [B, T, N]),
            "reward": torch.randn(*r_shape, generator=g) * scale,
            "done": done, "terminated": done.clone(),
        }, [B, T]),
    }, [B, T])
    with torch.no_grad():
        sampled = actor(td.clone())
    td["agents", "action"] = sampled["agents", "action"]
    td["agents", "action_log_prob"] = sampled["agents", "action_log_prob"]
    if advantage:
        td["agents", "advantage"] = torch.randn(B, T, N, 1, generator=g)
        td["agents", "value_target"] = torch.randn(B, T, N, 1, generator=g) * scale
        td.set_("agents", td["agents"])
    return td


class Reached(AssertionError):
    pass


def raiser(name):
    def boom(*args, **kwargs):
        raise Reached(name)

    return boom

"""Spec of ``distributional_dqn_loss`` (TorchRL's ``DistributionalDQNLoss``)."""

from __future__ import annotations

import torch
from tensordict import TensorDict
from torch import nn
from torchrl import objectives as torchrl_objectives

from torchrl_functional import modules
from torchrl_functional.functional import DistributionalDQNKeys, distributional_dqn_loss

from ._modules import off_policy_case
from ._spec import Hyper, Layout, LossSpec

DISCOUNT = (-0.1, 1.5, float("nan"))
B, ATOMS, N = 6, 5, 3
SUPPORT = torch.linspace(-2.0, 2.0, ATOMS)


def inputs(seed: int, dtype: torch.dtype = torch.float32, *, one_hot: bool = False, nstep: bool = False) -> TensorDict:
    """Replayed transitions with the online log-probabilities at ``s`` and the target's at ``s'``
    ``[B, A, N]``, the replayed action and the online network's bootstrap action at ``s'``."""
    g = torch.Generator().manual_seed(seed)

    def log_p() -> torch.Tensor:
        return torch.randn(B, ATOMS, N, generator=g, dtype=torch.float64).log_softmax(-2).to(dtype)

    def action() -> torch.Tensor:
        a = torch.randint(N, (B,), generator=g)
        return nn.functional.one_hot(a, N) if one_hot else a

    done = torch.zeros(B, 1, dtype=torch.bool)
    done[1] = done[2] = True
    terminated = done.clone()
    terminated[2] = False
    td = TensorDict({
        "action_value": log_p(), "action": action(),
        "next": {"action_value": log_p(), "action": action(), "done": done, "terminated": terminated,
                 "reward": torch.randn(B, 1, generator=g, dtype=torch.float64).to(dtype)},
    }, [])
    if nstep:
        td["steps_to_next_obs"] = torch.randint(1, 4, (B,), generator=g)
    return td


def distributional_actor(seed: int = 1, one_hot: bool = False):
    from torchrl.data import Categorical, Composite, OneHot
    from torchrl.modules import MLP, DistributionalQValueActor

    torch.manual_seed(seed)
    space = "one_hot" if one_hot else "categorical"
    spec = OneHot(N) if one_hot else Categorical(N)
    return DistributionalQValueActor(
        spec=Composite({"action": spec, "action_value": None}, shape=[]), module=MLP(4, (ATOMS, N), num_cells=[16]),
        support=SUPPORT.clone(), action_space=space,
    )


def _cases():
    theirs, ours = torchrl_objectives.DistributionalDQNLoss, modules.DistributionalDQNLoss
    return [
        off_policy_case("base", theirs, ours, lambda: (distributional_actor(),), kwargs={"gamma": 0.9},
                        discrete="categorical", functional_call=True),
        off_policy_case("one_hot_sum", theirs, ours, lambda: (distributional_actor(one_hot=True),),
                        kwargs={"gamma": 0.8, "reduction": "sum"}, discrete="one_hot", weights=True),
        off_policy_case("none_online_target", theirs, ours, lambda: (distributional_actor(),),
                        kwargs={"gamma": 0.9, "reduction": "none", "delay_value": False}, discrete="categorical"),
    ]


SPECS = [
    LossSpec(
        "distributional_dqn_loss", distributional_dqn_loss, DistributionalDQNKeys,
        (
            Layout("categorical", inputs, {"support": SUPPORT}, ("action_value",), compile=True),
            Layout("one_hot", lambda s, d: inputs(s, d, one_hot=True),
                   {"support": SUPPORT, "action_space": "one_hot"}, ("action_value",)),
        ),
        (Hyper("gamma", 0.9, invalid=DISCOUNT, entry=True),),
        modules.DistributionalDQNLoss, torchrl_objectives.DistributionalDQNLoss, _cases,
        grad_outputs=("loss",),
    ),
]

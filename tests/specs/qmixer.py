"""Spec of ``qmixer_loss`` (TorchRL's ``QMixerLoss``)."""

from __future__ import annotations

import functools

import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl import objectives as torchrl_objectives
from torchrl.objectives import ValueEstimators

from torchrl_functional import modules
from torchrl_functional.functional import QMixerKeys, qmixer_loss

from ._spec import Hyper, Layout, LossSpec, ModuleCase

DISCOUNT = (-0.1, 1.5, float("nan"))
B, N_AGENTS, OBS, N_ACT, STATE = 6, 3, 4, 3, 5


def inputs(seed: int, dtype: torch.dtype = torch.float32) -> TensorDict:
    """Replayed transitions with the mixed values ``Q_tot(s, a)`` and ``Q_tot_target(s', a*)`` ``[B, 1]``."""
    g = torch.Generator().manual_seed(seed)

    def randn(*s: int) -> torch.Tensor:
        return torch.randn(*s, generator=g, dtype=torch.float64).to(dtype)

    done = torch.zeros(B, 1, dtype=torch.bool)
    done[1] = done[2] = True
    terminated = done.clone()
    terminated[2] = False
    return TensorDict({
        "chosen_action_value": randn(B, 1),
        "next": {"chosen_action_value": randn(B, 1), "reward": randn(B, 1), "done": done, "terminated": terminated},
    }, [])


def nets(seed: int = 1, one_hot: bool = False, vdn: bool = False):
    """The agents' shared Q-network (a ``QValueActor`` on ``("agents", ...)`` keys) and a mixer."""
    from torchrl.data import Categorical, OneHot
    from torchrl.modules import QValueModule, SafeSequential
    from torchrl.modules.models import QMixer, VDNMixer

    torch.manual_seed(seed)
    net = TensorDictModule(nn.Sequential(nn.Linear(OBS, 16), nn.Tanh(), nn.Linear(16, N_ACT)),
                           in_keys=[("agents", "observation")], out_keys=[("agents", "action_value")])
    actor = SafeSequential(net, QValueModule(
        action_value_key=("agents", "action_value"), spec=OneHot(N_ACT) if one_hot else Categorical(N_ACT),
        out_keys=[("agents", "action"), ("agents", "action_value"), ("agents", "chosen_action_value")],
        action_space=None,
    ))
    if vdn:
        mixer = TensorDictModule(VDNMixer(n_agents=N_AGENTS, device="cpu"),
                                 in_keys=[("agents", "chosen_action_value")], out_keys=["chosen_action_value"])
    else:
        mixer = TensorDictModule(QMixer(state_shape=(STATE,), mixing_embed_dim=8, n_agents=N_AGENTS, device="cpu"),
                                 in_keys=[("agents", "chosen_action_value"), "state"], out_keys=["chosen_action_value"])
    return actor, mixer


def data(batch: tuple[int, ...], seed: int, one_hot: bool = False) -> TensorDict:
    g = torch.Generator().manual_seed(seed + 100)
    shape = torch.Size(batch)
    a = torch.randint(N_ACT, (*shape, N_AGENTS), generator=g)
    action = nn.functional.one_hot(a, N_ACT) if one_hot else a
    done = torch.rand(*shape, 1, generator=g) < 0.2

    def agents(obs=True, act=False):
        out = {"observation": torch.randn(*shape, N_AGENTS, OBS, generator=g)}
        if act:
            out["action"] = action
        return TensorDict(out, [*shape, N_AGENTS])

    td = TensorDict({
        "agents": agents(act=True), "state": torch.randn(*shape, STATE, generator=g),
        "next": {"agents": agents(), "state": torch.randn(*shape, STATE, generator=g),
                 "reward": torch.randn(*shape, 1, generator=g), "done": done,
                 "terminated": done & (torch.rand(*shape, 1, generator=g) < 0.6)},
    }, shape)
    if len(shape) > 1:
        td.names = [None] * (len(shape) - 1) + ["time"]
    return td


def module_case(case_id: str, *, one_hot: bool = False, vdn: bool = False, kwargs: dict | None = None,
                estimator=None, batch: tuple[int, ...] = (12,), functional_call: bool = False) -> ModuleCase:
    def build():
        from tests.modules import offpolicy_parity_common as P

        return P.build(torchrl_objectives.QMixerLoss, modules.QMixerLoss, nets(one_hot=one_hot, vdn=vdn),
                       {"delay_value": True, **(kwargs or {})}, estimator=estimator)

    return ModuleCase(
        case_id, build, functools.partial(data, batch, one_hot=one_hot), functional_call=functional_call,
        rebatch=lambda new: module_case(case_id, one_hot=one_hot, vdn=vdn, kwargs=kwargs, estimator=estimator,
                                        batch=new, functional_call=functional_call),
    )


def _cases():
    return [
        module_case("qmix", functional_call=True),
        module_case("vdn_one_hot_l1", one_hot=True, vdn=True, kwargs={"loss_function": "l1"}),
        module_case("td_lambda_BT", kwargs={"delay_value": False}, estimator=ValueEstimators.TDLambda, batch=(3, 5)),
    ]


SPECS = [
    LossSpec(
        "qmixer_loss", qmixer_loss, QMixerKeys,
        (
            Layout("td0", inputs, {}, ("chosen_action_value",), compile=True),
            Layout("td_lambda", inputs, {"value_estimator": "td_lambda"}, ("chosen_action_value",)),
        ),
        (
            Hyper("gamma", 0.9, invalid=DISCOUNT, entry=True),
            Hyper("lmbda", 0.7, invalid=DISCOUNT, entry=True, layouts=("td_lambda",)),
        ),
        modules.QMixerLoss, torchrl_objectives.QMixerLoss, _cases,
        grad_outputs=("loss",),
    ),
]

"""Multi-agent layouts for the off-policy drop-in modules, against TorchRL 0.14.1: a ``[B]``
replay batch whose per-agent entries live under ``"agents"`` (batch ``[B, N_AGENTS]``), the
networks reading and writing nested ``("agents", ...)`` keys, the losses told so with
``set_keys``. Values, every parameter gradient and the written priority (see
``offpolicy_parity_common.compare``). Each family's test file runs :func:`marl_parity` over
:data:`MODES` for its classes (SAC with a value network and continuous CQL are left out: TorchRL
0.14.1's own classes fail on per-agent entries, reshaping the per-sample critic loss to the root
batch, and dropping nested observations from the penalty's repeated states)."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch import nn
from torchrl.data import Bounded, Categorical
from torchrl.modules import ProbabilisticActor, QValueActor, TanhNormal, ValueOperator
from torchrl.objectives import ValueEstimators

from tests.modules.offpolicy_parity_common import ACT, HID, NACT, OBS, _init, _QNet, build, compare

B, N_AGENTS = 4, 3
A = "agents"


def _k(name):
    return (A, name)


def det_actor():
    net = nn.Sequential(nn.Linear(OBS, HID), nn.Tanh(), nn.Linear(HID, ACT), nn.Tanh())
    return TensorDictModule(_init(net, 0), in_keys=[_k("observation")], out_keys=[_k("action")])


def stoch_actor():
    net = nn.Sequential(nn.Linear(OBS, HID), nn.Tanh(), nn.Linear(HID, 2 * ACT), NormalParamExtractor())
    module = TensorDictModule(_init(net, 0), in_keys=[_k("observation")], out_keys=[_k("loc"), _k("scale")])
    spec = Bounded(-torch.ones(ACT), torch.ones(ACT), (ACT,))
    return ProbabilisticActor(module, in_keys={"loc": _k("loc"), "scale": _k("scale")}, out_keys=[_k("action")],
                              spec=spec, distribution_class=TanhNormal, return_log_prob=True,
                              log_prob_key=_k("action_log_prob"))


def discrete_actor():
    net = nn.Sequential(nn.Linear(OBS, HID), nn.Tanh(), nn.Linear(HID, NACT))
    module = TensorDictModule(_init(net, 0), in_keys=[_k("observation")], out_keys=[_k("logits")])
    return ProbabilisticActor(module, in_keys={"logits": _k("logits")}, out_keys=[_k("action")],
                              distribution_class=torch.distributions.Categorical, spec=Categorical(NACT),
                              return_log_prob=True, log_prob_key=_k("action_log_prob"))


def qvalue():
    return ValueOperator(_init(_QNet(), 1), in_keys=[_k("observation"), _k("action")],
                         out_keys=[_k("state_action_value")])


def vvalue():
    net = nn.Sequential(nn.Linear(OBS, HID), nn.Tanh(), nn.Linear(HID, 1))
    return ValueOperator(_init(net, 2), in_keys=[_k("observation")], out_keys=[_k("state_value")])


def discrete_q(out="action_value"):
    net = nn.Sequential(nn.Linear(OBS, HID), nn.Tanh(), nn.Linear(HID, NACT))
    return TensorDictModule(_init(net, 1), in_keys=[_k("observation")], out_keys=[_k(out)])


def dqn_actor():
    net = nn.Sequential(nn.Linear(OBS, HID), nn.Tanh(), nn.Linear(HID, NACT))
    return QValueActor(_init(net, 1), in_keys=[_k("observation")], spec=Categorical(NACT),
                       action_value_key=_k("action_value"), action_key=_k("action"),
                       chosen_action_value_key=_k("chosen_action_value"))


def marl_data(discrete=False, seed=0):
    """``[B]`` replay data, per-agent entries ``[B, N]`` under ``"agents"`` (TorchRL's MARL layout)."""
    g = torch.Generator().manual_seed(seed + 200)
    shape = (B, N_AGENTS)
    if discrete:
        action = torch.randint(NACT, shape, generator=g)
    else:
        action = torch.rand(*shape, ACT, generator=g) * 1.8 - 0.9
    done = torch.rand(*shape, 1, generator=g) < 0.25
    terminated = done & (torch.rand(*shape, 1, generator=g) < 0.6)
    agents = TensorDict({"observation": torch.randn(*shape, OBS, generator=g), "action": action}, shape)
    next_agents = TensorDict({"observation": torch.randn(*shape, OBS, generator=g),
                              "reward": torch.randn(*shape, 1, generator=g), "done": done,
                              "terminated": terminated}, shape)
    return TensorDict({A: agents, "next": TensorDict({A: next_agents}, [B])}, [B])


TRANSITION = {"reward": _k("reward"), "done": _k("done"), "terminated": _k("terminated")}
ACTION = {"action": _k("action")}
MODES = [
    ("mean", {}, None),
    ("none", {"reduction": "none"}, None),
    ("td_lambda", {}, ValueEstimators.TDLambda),
]

#: the modes as test parameters
MODE_PARAMS = pytest.mark.parametrize("mode, kwargs, estimator", MODES, ids=[m[0] for m in MODES])


def marl_parity(ref_cls, our_cls, nets, base_kwargs, keys, discrete, mode, kwargs, estimator, *,
                scalar_output_mode=False):
    """TorchRL's class and ours on the multi-agent batch; ``scalar_output_mode``: the class
    needs ``scalar_output_mode="exclude"`` with ``reduction="none"``."""
    kwargs = {**base_kwargs, **kwargs}
    if mode == "none" and scalar_output_mode:
        kwargs["scalar_output_mode"] = "exclude"
    ref, mine = build(ref_cls, our_cls, nets(), kwargs, {**TRANSITION, **keys}, estimator)
    compare(ref, mine, marl_data(discrete), atol=2e-6)

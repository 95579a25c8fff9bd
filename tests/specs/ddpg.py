"""Spec of ``ddpg_loss`` (TorchRL's ``DDPGLoss``)."""

from __future__ import annotations

from torchrl import objectives as torchrl_objectives

from torchrl_functional import modules
from torchrl_functional.functional import DDPGKeys, ddpg_loss

from ._inputs import off_policy
from ._modules import off_policy_case
from ._spec import Hyper, Layout, LossSpec
from .dqn import DISCOUNT


def _cases():
    from tests.modules import offpolicy_parity_common as P

    return [
        off_policy_case("base", torchrl_objectives.DDPGLoss, modules.DDPGLoss,
                        lambda: (P.det_actor(), P.qvalue()), functional_call=True),
    ]


SPECS = [
    LossSpec(
        "ddpg_loss", ddpg_loss, DDPGKeys,
        (Layout("td0", off_policy("ddpg"), {}, ("state_action_value", "state_action_value_actor"), compile=True),),
        (Hyper("gamma", 0.9, invalid=DISCOUNT, entry=True),),
        modules.DDPGLoss, torchrl_objectives.DDPGLoss, _cases,
        grad_outputs=("loss_actor", "loss_value"),
        tags=frozenset({"replay"}),
    ),
]

"""Spec of ``td3_loss`` (TorchRL's ``TD3Loss``)."""

from __future__ import annotations

import torch
from torchrl import objectives as torchrl_objectives

from torchrl_functional import modules
from torchrl_functional.functional import TD3Keys, td3_loss

from ._inputs import off_policy
from ._modules import off_policy_case
from ._spec import Hyper, Layout, LossSpec
from .dqn import DISCOUNT


def _cases():
    from tests.modules import offpolicy_parity_common as P

    bounds = (-torch.ones(P.ACT) * 0.8, torch.ones(P.ACT) * 0.8)
    return [
        off_policy_case("base", torchrl_objectives.TD3Loss, modules.TD3Loss,
                        lambda: (P.det_actor(), P.qvalue()), kwargs={"bounds": bounds}, functional_call=True),
    ]


SPECS = [
    LossSpec(
        "td3_loss", td3_loss, TD3Keys,
        (Layout("td0", off_policy("td3"), {}, ("state_action_value", "state_action_value_actor"), compile=True),),
        (Hyper("gamma", 0.9, invalid=DISCOUNT, entry=True),),
        modules.TD3Loss, torchrl_objectives.TD3Loss, _cases,
        grad_outputs=("loss_actor", "loss_qvalue"),
        tags=frozenset({"replay"}),
    ),
]

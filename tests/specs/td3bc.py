"""Spec of ``td3bc_loss`` (TorchRL's ``TD3BCLoss``)."""

from __future__ import annotations

import torch
from torchrl import objectives as torchrl_objectives

from torchrl_functional import modules
from torchrl_functional.functional import TD3BCKeys, td3bc_loss

from ._inputs import off_policy
from ._modules import off_policy_case
from ._spec import Hyper, Layout, LossSpec
from .dqn import DISCOUNT


def _cases():
    from tests.modules import offpolicy_parity_common as P

    bounds = (-torch.ones(P.ACT) * 0.8, torch.ones(P.ACT) * 0.8)
    return [
        off_policy_case("base", torchrl_objectives.TD3BCLoss, modules.TD3BCLoss,
                        lambda: (P.det_actor(), P.qvalue()), kwargs={"bounds": bounds, "alpha": 1.5},
                        functional_call=True),
        off_policy_case("mask-weights", torchrl_objectives.TD3BCLoss, modules.TD3BCLoss,
                        lambda: (P.det_actor(), P.qvalue()), kwargs={"bounds": bounds, "num_qvalue_nets": 3},
                        mask=True, weights=True),
    ]


SPECS = [
    LossSpec(
        "td3bc_loss", td3bc_loss, TD3BCKeys,
        (Layout("td0", off_policy("td3bc"), {}, ("state_action_value", "state_action_value_actor", "action_actor"),
                compile=True),),
        (Hyper("gamma", 0.9, invalid=DISCOUNT, entry=True), Hyper("alpha", 2.0, invalid=(float("nan"), -1.0))),
        modules.TD3BCLoss, torchrl_objectives.TD3BCLoss, _cases,
        grad_outputs=("loss_actor", "loss_qvalue", "lmbd"),
    ),
]

"""Spec of ``a2c_loss`` (TorchRL's ``A2CLoss``)."""

from __future__ import annotations

from torchrl import objectives as torchrl_objectives

from torchrl_functional import modules
from torchrl_functional.functional import A2CKeys, a2c_loss

from ._spec import LossSpec
from .ppo import MULTI_AGENT, ON_POLICY_BENCH, common_hypers, layouts, module_cases

SPECS = [
    LossSpec(
        "a2c_loss", a2c_loss, A2CKeys, layouts(False, MULTI_AGENT), common_hypers(),
        modules.A2CLoss, torchrl_objectives.A2CLoss, module_cases(torchrl_objectives.A2CLoss, modules.A2CLoss),
        random=("generator",), grad_outputs=("loss_objective", "loss_critic", "loss_entropy"),
        bench_batch=ON_POLICY_BENCH, tags=frozenset({"on_policy"}),
    ),
]

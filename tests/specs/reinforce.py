"""Spec of ``reinforce_loss`` (TorchRL's ``ReinforceLoss``)."""

from __future__ import annotations

from torchrl import objectives as torchrl_objectives

from torchrl_functional import modules
from torchrl_functional.functional import ReinforceKeys, reinforce_loss

from ._spec import Hyper, LossSpec
from .ppo import DISCOUNT, ON_POLICY_BENCH, layouts, module_cases

# REINFORCE detaches the advantage in loss_actor: the discount's gradient is defined
# through the critic's target only
SPECS = [
    LossSpec(
        "reinforce_loss", reinforce_loss, ReinforceKeys, layouts(),
        (
            Hyper("gamma", 0.9, invalid=DISCOUNT, entry=True, layouts=("gae", "td0"), objective=("loss_value",)),
            Hyper("lmbda", 0.8, invalid=DISCOUNT, entry=True, layouts=("gae",), objective=("loss_value",)),
        ),
        modules.ReinforceLoss, torchrl_objectives.ReinforceLoss,
        module_cases(torchrl_objectives.ReinforceLoss, modules.ReinforceLoss),
        grad_outputs=("loss_actor", "loss_value"), bench_batch=ON_POLICY_BENCH, tags=frozenset({"on_policy"}),
    ),
]

"""Specs of ``iql_loss`` and ``discrete_iql_loss`` (TorchRL's ``IQLLoss``, ``DiscreteIQLLoss``)."""

from __future__ import annotations

from torchrl import objectives as torchrl_objectives

from torchrl_functional import modules
from torchrl_functional.functional import IQLKeys, discrete_iql_loss, iql_loss

from ._inputs import off_policy
from ._modules import off_policy_case
from ._spec import Hyper, Layout, LossSpec
from .dqn import DISCOUNT

HYPERS = (
    Hyper("gamma", 0.9, invalid=DISCOUNT, entry=True),
    Hyper("expectile", 0.7, invalid=(-0.1, 1.5)),
    Hyper("temperature", 3.0, invalid=(-1.0,)),
)


def _iql_cases():
    from tests.modules import offpolicy_parity_common as P

    return [
        off_policy_case("base", torchrl_objectives.IQLLoss, modules.IQLLoss,
                        lambda: (P.stoch_actor(), P.qvalue(), P.vvalue()), functional_call=True),
    ]


def _discrete_iql_cases():
    from tests.modules import offpolicy_parity_common as P

    return [
        off_policy_case("base", torchrl_objectives.DiscreteIQLLoss, modules.DiscreteIQLLoss,
                        lambda: (P.discrete_actor(), P.discrete_q(out_key="state_action_value"), P.vvalue()),
                        kwargs={"action_space": "categorical"}, discrete="categorical", functional_call=True),
    ]


GRAD = ("state_action_value", "state_value", "log_prob")
SPECS = [
    LossSpec(
        "iql_loss", iql_loss, IQLKeys, (Layout("td0", off_policy("iql"), {}, GRAD, compile=True),), HYPERS,
        modules.IQLLoss, torchrl_objectives.IQLLoss, _iql_cases,
        grad_outputs=("loss_actor", "loss_qvalue", "loss_value"),
        tags=frozenset({"replay"}),
        mask_differs=("loss_qvalue",),  # TorchRL drops the mask from the critic term
    ),
    LossSpec(
        "discrete_iql_loss", discrete_iql_loss, IQLKeys,
        (Layout("td0", off_policy("discrete_iql"), {}, GRAD, compile=True),), HYPERS,
        modules.DiscreteIQLLoss, torchrl_objectives.DiscreteIQLLoss, _discrete_iql_cases,
        grad_outputs=("loss_actor", "loss_qvalue", "loss_value"),
        tags=frozenset({"replay"}),
    ),
]

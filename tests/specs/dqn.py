"""Spec of ``dqn_loss`` (TorchRL's ``DQNLoss``)."""

from __future__ import annotations

from torchrl import objectives as torchrl_objectives

from torchrl_functional import modules
from torchrl_functional.functional import DQNKeys, dqn_loss

from ._inputs import off_policy
from ._modules import off_policy_case
from ._spec import Hyper, Layout, LossSpec

DISCOUNT = (-0.1, 1.5, float("nan"))


def _cases():
    from tests.modules import offpolicy_parity_common as P

    theirs, ours = torchrl_objectives.DQNLoss, modules.DQNLoss
    return [
        off_policy_case(
            "base", theirs, ours, lambda: (P.dqn_actor(),), kwargs={"action_space": "categorical", "delay_value": True},
            discrete="categorical", functional_call=True,
        ),
        off_policy_case("double", theirs, ours, lambda: (P.dqn_actor(one_hot=True),),
                        kwargs={"action_space": "one_hot", "double_dqn": True}, discrete="one_hot"),
    ]


SPECS = [
    LossSpec(
        "dqn_loss", dqn_loss, DQNKeys,
        (
            Layout("td0", off_policy("dqn"), {}, ("action_value",), compile=True),
            Layout("td_lambda", off_policy("dqn"), {"value_estimator": "td_lambda"}, ("action_value",)),
        ),
        (
            Hyper("gamma", 0.9, invalid=DISCOUNT, entry=True),
            Hyper("lmbda", 0.7, invalid=DISCOUNT, entry=True, layouts=("td_lambda",)),
        ),
        modules.DQNLoss, torchrl_objectives.DQNLoss, _cases,
        grad_outputs=("loss",),
        tags=frozenset({"replay"}),
    ),
]

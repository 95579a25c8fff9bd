"""Spec of ``redq_loss`` (TorchRL's ``REDQLoss``)."""

from __future__ import annotations

from torchrl import objectives as torchrl_objectives

from torchrl_functional import modules
from torchrl_functional.functional import REDQKeys, redq_loss

from ._inputs import off_policy
from ._modules import off_policy_case
from ._spec import Hyper, Layout, LossSpec
from .dqn import DISCOUNT

# alpha enters the critic target and the actor term detached: its gradient is defined through
# loss_alpha only
LOG_ALPHA = Hyper("log_alpha", -0.5, invalid=(float("nan"),), objective=("loss_alpha",))


def _cases():
    from tests.modules import offpolicy_parity_common as P

    return [
        off_policy_case("base", torchrl_objectives.REDQLoss, modules.REDQLoss,
                        lambda: (P.stoch_actor(), P.qvalue()), kwargs={"num_qvalue_nets": 4, "sub_sample_len": 2},
                        functional_call=True),
        off_policy_case("mask-none", torchrl_objectives.REDQLoss, modules.REDQLoss,
                        lambda: (P.stoch_actor(), P.qvalue()),
                        kwargs={"num_qvalue_nets": 3, "reduction": "none", "scalar_output_mode": "exclude"}, mask=True),
    ]


SPECS = [
    LossSpec(
        "redq_loss", redq_loss, REDQKeys,
        (Layout("td0", off_policy("redq"), {"target_entropy": -1.5}, ("state_action_value", "state_action_value_actor", "log_prob"),
                compile=True),),
        (Hyper("gamma", 0.9, invalid=DISCOUNT, entry=True), LOG_ALPHA),
        modules.REDQLoss, torchrl_objectives.REDQLoss, _cases,
        random=("generator", "critic_subset"), grad_outputs=("loss_actor", "loss_qvalue", "loss_alpha"),
    ),
]

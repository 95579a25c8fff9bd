"""Spec of ``crossq_loss`` (TorchRL's ``CrossQLoss``)."""

from __future__ import annotations

from torchrl import objectives as torchrl_objectives

from torchrl_functional import modules
from torchrl_functional.functional import CrossQKeys, crossq_loss

from ._inputs import off_policy
from ._modules import off_policy_case
from ._spec import Hyper, Layout, LossSpec
from .dqn import DISCOUNT
from .sac import LOG_ALPHA


def _cases():
    from tests.modules import offpolicy_parity_common as P

    return [
        off_policy_case("base", torchrl_objectives.CrossQLoss, modules.CrossQLoss,
                        lambda: (P.stoch_actor(), P.qvalue()), kwargs={"num_qvalue_nets": 3}, functional_call=True),
        off_policy_case("mask-none", torchrl_objectives.CrossQLoss, modules.CrossQLoss,
                        lambda: (P.stoch_actor(), P.qvalue()),
                        kwargs={"reduction": "none", "scalar_output_mode": "non_tensor"}, mask=True),
    ]


SPECS = [
    LossSpec(
        "crossq_loss", crossq_loss, CrossQKeys,
        # SAC's entries: Q_i(s', a') comes from the online critics' joint forward
        (Layout("td0", off_policy("sac"), {}, ("state_action_value", "state_action_value_actor", "log_prob"),
                compile=True),),
        (Hyper("gamma", 0.9, invalid=DISCOUNT, entry=True), LOG_ALPHA),
        modules.CrossQLoss, torchrl_objectives.CrossQLoss, _cases,
        grad_outputs=("loss_actor", "loss_qvalue", "loss_alpha"),
    ),
]

"""Specs of ``sac_loss`` and ``discrete_sac_loss`` (TorchRL's ``SACLoss``, ``DiscreteSACLoss``)."""

from __future__ import annotations

from torchrl import objectives as torchrl_objectives

from torchrl_functional import modules
from torchrl_functional.functional import DiscreteSACKeys, SACKeys, SACV1Keys, discrete_sac_loss, sac_loss, sac_v1_loss

from ._inputs import off_policy
from ._modules import off_policy_case
from ._spec import Hyper, Layout, LossSpec
from .dqn import DISCOUNT

# alpha = exp(log_alpha) enters the critic target and the actor term detached (SAC's
# stop-gradients): its gradient is defined through loss_alpha only
LOG_ALPHA = Hyper("log_alpha", -0.5, invalid=(float("nan"),), objective=("loss_alpha",))


def _sac_cases():
    from tests.modules import offpolicy_parity_common as P

    return [
        off_policy_case("base", torchrl_objectives.SACLoss, modules.SACLoss,
                        lambda: (P.stoch_actor(), P.qvalue()), kwargs={"num_qvalue_nets": 3}, functional_call=True),
    ]


def _discrete_sac_cases():
    from tests.modules import offpolicy_parity_common as P

    return [
        off_policy_case("base", torchrl_objectives.DiscreteSACLoss, modules.DiscreteSACLoss,
                        lambda: (P.discrete_actor(), P.discrete_q()),
                        kwargs={"action_space": "categorical", "num_actions": P.NACT}, discrete="categorical",
                        functional_call=True),
    ]


SPECS = [
    LossSpec(
        "sac_loss", sac_loss, SACKeys,
        (Layout("td0", off_policy("sac"), {}, ("state_action_value", "state_action_value_actor", "log_prob"),
                compile=True),),
        (Hyper("gamma", 0.9, invalid=DISCOUNT, entry=True), LOG_ALPHA),
        modules.SACLoss, torchrl_objectives.SACLoss, _sac_cases,
        grad_outputs=("loss_actor", "loss_qvalue", "loss_alpha"),
        tags=frozenset({"replay"}),
    ),
    LossSpec(
        "discrete_sac_loss", discrete_sac_loss, DiscreteSACKeys,
        (Layout("td0", off_policy("discrete_sac"), {}, ("action_value", "logits"), compile=True),),
        (Hyper("gamma", 0.9, invalid=DISCOUNT, entry=True), LOG_ALPHA),
        modules.DiscreteSACLoss, torchrl_objectives.DiscreteSACLoss, _discrete_sac_cases,
        grad_outputs=("loss_actor", "loss_qvalue", "loss_alpha"),
        tags=frozenset({"replay"}),
    ),
]


def _sac_v1_cases():
    from tests.modules import offpolicy_parity_common as P

    return [
        off_policy_case("v1", torchrl_objectives.SACLoss, modules.SACLoss,
                        lambda: (P.stoch_actor(), P.qvalue(), P.vvalue()), functional_call=True),
    ]


SPECS.append(
    LossSpec(
        "sac_v1_loss", sac_v1_loss, SACV1Keys,
        (Layout("td0", off_policy("sac_v1"), {}, ("state_action_value", "state_value", "log_prob"), compile=True),),
        (Hyper("gamma", 0.9, invalid=DISCOUNT, entry=True), LOG_ALPHA),
        # SACLoss(value_network=...) is TorchRL's SAC v1
        modules.SACLoss, torchrl_objectives.SACLoss, _sac_v1_cases,
        grad_outputs=("loss_actor", "loss_qvalue", "loss_value", "loss_alpha"),
    )
)

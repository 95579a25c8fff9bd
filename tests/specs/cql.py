"""Specs of ``cql_loss`` and ``discrete_cql_loss`` (TorchRL's ``CQLLoss``, ``DiscreteCQLLoss``)."""

from __future__ import annotations

from torchrl import objectives as torchrl_objectives

from torchrl_functional import modules
from torchrl_functional.functional import CQLKeys, DiscreteCQLKeys, cql_loss, discrete_cql_loss

from ._inputs import off_policy
from ._modules import off_policy_case
from ._spec import Hyper, Layout, LossSpec
from .dqn import DISCOUNT
from .sac import LOG_ALPHA


def _cql_cases():
    from tests.modules import offpolicy_parity_common as P

    return [
        off_policy_case("base", torchrl_objectives.CQLLoss, modules.CQLLoss,
                        lambda: (P.stoch_actor(), P.qvalue()), functional_call=True, atol=2e-6),
    ]


def _discrete_cql_cases():
    from tests.modules import offpolicy_parity_common as P

    return [
        off_policy_case("base", torchrl_objectives.DiscreteCQLLoss, modules.DiscreteCQLLoss,
                        lambda: (P.dqn_actor(),), kwargs={"action_space": "categorical"}, discrete="categorical",
                        functional_call=True),
    ]


SPECS = [
    LossSpec(
        "cql_loss", cql_loss, CQLKeys,
        (Layout("td0", off_policy("cql"), {}, ("state_action_value", "cql_random_value", "log_prob", "bc_log_prob"),
                compile=True),),
        (
            Hyper("gamma", 0.9, invalid=DISCOUNT, entry=True),
            Hyper("min_q_weight", 2.0),
            Hyper("temperature", 1.5, invalid=(0.0, -1.0)),
            LOG_ALPHA,
        ),
        modules.CQLLoss, torchrl_objectives.CQLLoss, _cql_cases,
        grad_outputs=("loss_actor", "loss_actor_bc", "loss_qvalue", "loss_cql", "loss_alpha"),
        tags=frozenset({"replay"}),
        mask_differs=("loss_cql",),  # TorchRL averages masked samples' log-sum-exp in
    ),
    LossSpec(
        "discrete_cql_loss", discrete_cql_loss, DiscreteCQLKeys,
        (Layout("td0", off_policy("discrete_cql"), {}, ("action_value",), compile=True),),
        (Hyper("gamma", 0.9, invalid=DISCOUNT, entry=True),),
        modules.DiscreteCQLLoss, torchrl_objectives.DiscreteCQLLoss, _discrete_cql_cases,
        grad_outputs=("loss_qvalue", "loss_cql"),
        tags=frozenset({"replay"}),
    ),
]

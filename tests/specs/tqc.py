"""Spec of ``tqc_loss`` (TorchRL's ``TQCLoss``)."""

from __future__ import annotations

import torch
from tensordict import TensorDict
from torch import nn
from torchrl import objectives as torchrl_objectives
from torchrl.objectives import ValueEstimators

from torchrl_functional import modules
from torchrl_functional.functional import TQCKeys, tqc_loss

from ._modules import off_policy_case
from ._spec import Hyper, Layout, LossSpec
from .dqn import DISCOUNT
from .sac import LOG_ALPHA

B, E, K, ACTION_DIM = 6, 2, 4, 2


def inputs(seed: int, dtype: torch.dtype = torch.float32) -> TensorDict:
    """Replayed transitions with the critics' quantiles ``[E, B, K]`` at ``(s, a)``, ``(s', a')``
    and ``(s, a~)``, and the log-probs of ``a'`` and ``a~``."""
    g = torch.Generator().manual_seed(seed)

    def randn(*s: int) -> torch.Tensor:
        return torch.randn(*s, generator=g, dtype=torch.float64).to(dtype)

    done = torch.zeros(B, 1, dtype=torch.bool)
    done[1] = done[2] = True
    terminated = done.clone()
    terminated[2] = False
    return TensorDict({
        "state_action_value": randn(E, B, K), "state_action_value_actor": randn(E, B, K), "log_prob": randn(B),
        "action": randn(B, ACTION_DIM),
        "next": {"state_action_value": randn(E, B, K), "log_prob": randn(B), "reward": randn(B, 1), "done": done,
                 "terminated": terminated},
    }, [])


class _QuantileNet(nn.Module):
    def __init__(self, obs: int, act: int, k: int = K, hidden: int = 8):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(obs + act, hidden), nn.Tanh(), nn.Linear(hidden, k))

    def forward(self, obs, action):
        return self.net(torch.cat([obs, action], -1))


def quantile_critic(seed: int = 1):
    from torchrl.modules import ValueOperator

    from tests.modules import offpolicy_parity_common as P

    torch.manual_seed(seed)
    return ValueOperator(_QuantileNet(P.OBS, P.ACT), in_keys=["observation", "action"])


def _cases():
    from tests.modules import offpolicy_parity_common as P

    theirs, ours = torchrl_objectives.TQCLoss, modules.TQCLoss
    return [
        off_policy_case("base", theirs, ours, lambda: (P.stoch_actor(), quantile_critic()),
                        kwargs={"num_qvalue_nets": 3, "top_quantiles_to_drop_per_net": 1}, functional_call=True),
        off_policy_case("none_weights_skip_done", theirs, ours, lambda: (P.stoch_actor(), quantile_critic()),
                        kwargs={"num_qvalue_nets": 2, "reduction": "none", "skip_done_states": True,
                                "scalar_output_mode": "exclude"}, weights=True),
        off_policy_case("mask_BT", theirs, ours, lambda: (P.stoch_actor(), quantile_critic()),
                        kwargs={"num_qvalue_nets": 2, "top_quantiles_to_drop_per_net": 0}, batch=(3, 4), mask=True),
        # TorchRL standardises the reward expanded to every kept atom
        off_policy_case("average_rewards", theirs, ours, lambda: (P.stoch_actor(), quantile_critic()),
                        kwargs={"num_qvalue_nets": 2, "top_quantiles_to_drop_per_net": 1},
                        estimator=(ValueEstimators.TD0, {"average_rewards": True})),
    ]


SPECS = [
    LossSpec(
        "tqc_loss", tqc_loss, TQCKeys,
        (
            Layout("drop1", inputs, {"top_quantiles_to_drop": 1},
                   ("state_action_value", "state_action_value_actor", "log_prob"), compile=True),
        ),
        (
            Hyper("gamma", 0.9, invalid=DISCOUNT, entry=True),
            LOG_ALPHA,
            Hyper("top_quantiles_to_drop", 1, invalid=(-1, K, 1.5, torch.tensor(1)), tensor=False),
        ),
        modules.TQCLoss, torchrl_objectives.TQCLoss, _cases,
        grad_outputs=("loss_actor", "loss_qvalue", "loss_alpha"),
    ),
]

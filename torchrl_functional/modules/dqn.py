"""Drop-in replacement for ``torchrl.objectives.DQNLoss``; the math is
:func:`torchrl_functional.functional.dqn_loss`."""

from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import dispatch
from torchrl.objectives import dqn as _trl

from ..functional.dqn import dqn_loss
from ..functional.keys import DQNKeys
from ._binding import FunctionalCallMixin
from ._common import PRIVATE
from ._offpolicy import (
    DiscreteActionSpace,
    call_loss,
    run_value_network,
    transition_inputs,
    write_priority,
)

__all__ = ["DQNLoss"]


class DQNLoss(FunctionalCallMixin, DiscreteActionSpace, _trl.DQNLoss):
    """Drop-in ``torchrl.objectives.DQNLoss`` computed by :func:`~torchrl_functional.functional.dqn_loss`.

    As TorchRL, ``forward`` writes the priority ``td_error`` into the input TensorDict.
    """

    def _q(self, td: TensorDictBase, params) -> torch.Tensor:
        return run_value_network(self, td, params, self.tensor_keys.action_value)

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        tk = self.tensor_keys
        inputs = transition_inputs(self, tensordict)
        inputs.set((PRIVATE, "action_value"), self._q(tensordict, self.value_network_params))
        next_td = tensordict.get("next")
        with torch.no_grad():
            inputs.set(("next", PRIVATE, "action_value"), self._q(next_td, self.target_value_network_params))
            if self.double_dqn:
                inputs.set(("next", PRIVATE, "online_action_value"), self._q(next_td, self.value_network_params.data))
        out = call_loss(dqn_loss, self, inputs, tensordict, DQNKeys, "action_value", "online_action_value",
                        action_space=self.action_space, double_dqn=self.double_dqn)
        write_priority(tensordict, tk.priority, out.pop("td_error"))
        return out

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
from ._offpolicy import DiscreteActionSpace, action_value_inputs, call_loss, run_value_network, write_priority

__all__ = ["DQNLoss"]


class DQNLoss(FunctionalCallMixin, DiscreteActionSpace, _trl.DQNLoss):
    """Drop-in ``torchrl.objectives.DQNLoss`` computed by :func:`~torchrl_functional.functional.dqn_loss`.

    Categorical, one-hot and multi one-hot actions (the sub-action sizes read from the value
    network's ``QValueModule``).

    As TorchRL, ``forward`` writes the priority ``td_error`` into the input TensorDict.
    """

    _action_spaces = ("categorical", "one_hot", "mult_one_hot")

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        tk = self.tensor_keys
        inputs = action_value_inputs(self, tensordict, self.target_value_network_params)
        if self.double_dqn:
            with torch.no_grad():
                online = run_value_network(self, tensordict.get("next"), self.value_network_params.data,
                                           tk.action_value)
            inputs.set(("next", PRIVATE, "online_action_value"), online)
        out = call_loss(dqn_loss, self, inputs, tensordict, DQNKeys, "action_value", "online_action_value",
                        action_space=self.action_space, action_sizes=self._action_sizes(), double_dqn=self.double_dqn)
        write_priority(tensordict, tk.priority, out.pop("td_error"))
        return out

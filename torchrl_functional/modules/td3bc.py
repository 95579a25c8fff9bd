"""Drop-in replacement for ``torchrl.objectives.TD3BCLoss``; the math is
:func:`torchrl_functional.functional.td3bc_loss`."""

from __future__ import annotations

from tensordict import TensorDict, TensorDictBase
from tensordict.nn import dispatch
from torchrl.objectives import td3_bc as _trl

from ..functional.keys import TD3BCKeys
from ..functional.td3bc import td3bc_loss
from ._binding import FunctionalCallMixin
from ._common import PRIVATE
from ._offpolicy import call_loss, write_priority
from .td3 import td3_inputs

__all__ = ["TD3BCLoss"]


class TD3BCLoss(FunctionalCallMixin, _trl.TD3BCLoss):
    """Drop-in ``torchrl.objectives.TD3BCLoss`` computed by :func:`~torchrl_functional.functional.td3bc_loss`.

    The networks run as in :class:`~torchrl_functional.modules.TD3Loss` (the target-smoothing
    noise drawn from the global RNG exactly as TorchRL does); as TorchRL, ``forward`` writes the
    priority ``td_error`` into the input TensorDict.
    """

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        inputs, actor_td = td3_inputs(self, tensordict)
        inputs.set((PRIVATE, "action_actor"), actor_td.get(self.tensor_keys.action))
        out = call_loss(td3bc_loss, self, inputs, tensordict, TD3BCKeys, "state_action_value",
                        "state_action_value_actor", "action_actor", alpha=self.alpha)
        write_priority(tensordict, self.tensor_keys.priority, out.pop("td_error"))
        return out

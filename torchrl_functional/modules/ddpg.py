"""Drop-in replacement for ``torchrl.objectives.DDPGLoss``; the math is
:func:`torchrl_functional.functional.ddpg_loss`."""

from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import dispatch
from torchrl.objectives import ddpg as _trl

from ..functional.ddpg import ddpg_loss
from ..functional.keys import DDPGKeys
from ._binding import FunctionalCallMixin, params_context
from ._common import PRIVATE
from ._offpolicy import call_loss, transition_inputs, write_priority

__all__ = ["DDPGLoss"]


class DDPGLoss(FunctionalCallMixin, _trl.DDPGLoss):
    """Drop-in ``torchrl.objectives.DDPGLoss`` computed by :func:`~torchrl_functional.functional.ddpg_loss`.

    As TorchRL, ``forward`` writes the priority ``td_error`` into the input TensorDict.
    """

    def _value(self, td: TensorDictBase, params) -> torch.Tensor:
        with params_context(self, params, self.value_network):
            td = self.value_network(td)
        return td.get(self.tensor_keys.state_action_value)

    def _actor(self, td: TensorDictBase, params) -> TensorDictBase:
        with params_context(self, params, self.actor_network):
            return self.actor_network(td)

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        tk = self.tensor_keys
        inputs = transition_inputs(self, tensordict)
        # critic at the replayed action
        critic_in = tensordict.select(*self.value_network.in_keys, strict=False).detach()
        inputs.set((PRIVATE, "state_action_value"), self._value(critic_in, self.value_network_params))
        # target: Q_target(s', pi_target(s'))
        with torch.no_grad():
            next_td = tensordict.get("next").clone(False)
            next_td = self._actor(next_td, self.target_actor_network_params)
            inputs.set(("next", PRIVATE, "state_action_value"),
                       self._value(next_td, self.target_value_network_params))
        # actor: Q(s, pi(s)) with the critic's parameters detached
        actor_in = tensordict.select(*self.actor_in_keys, *self.value_exclusive_keys, strict=False).detach()
        actor_in = self._actor(actor_in, self.actor_network_params)
        inputs.set((PRIVATE, "state_action_value_actor"), self._value(actor_in, self.value_network_params.detach()))
        out = call_loss(ddpg_loss, self, inputs, tensordict, DDPGKeys, "state_action_value", "state_action_value_actor")
        write_priority(tensordict, tk.priority, out["td_error"])
        return out

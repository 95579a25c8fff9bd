"""Drop-in replacements for ``torchrl.objectives.IQLLoss`` and ``DiscreteIQLLoss``; the math
is :func:`torchrl_functional.functional.iql_loss` and
:func:`~torchrl_functional.functional.discrete_iql_loss`."""

from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import dispatch
from torchrl.objectives import iql as _trl

from ..functional.iql import discrete_iql_loss, iql_loss
from ..functional.keys import IQLKeys
from ._binding import FunctionalCallMixin, params_context
from ._common import PRIVATE
from ._offpolicy import DiscreteActionSpace, call_loss, output_td, transition_inputs, write_priority

__all__ = ["IQLLoss", "DiscreteIQLLoss"]


class _IQLForward(FunctionalCallMixin):
    """The network passes shared by both IQL modules: one pass of each network per input
    (TorchRL runs the target critics and ``V(s)`` twice)."""

    def _inputs(self, tensordict: TensorDictBase) -> TensorDictBase:
        tk = self.tensor_keys
        inputs = transition_inputs(self, tensordict)
        with params_context(self, self.actor_network_params, self.actor_network):
            dist = self.actor_network.get_dist(tensordict.select(*self.actor_network.in_keys, strict=False))
        inputs.set((PRIVATE, "log_prob"), dist.log_prob(tensordict.get(tk.action)))
        q_in = tensordict.select(*self.qvalue_network.in_keys, strict=False)
        with torch.no_grad():
            target_q = self._vmap_qvalue_networkN0(q_in, self.target_qvalue_network_params)
            inputs.set((PRIVATE, "target_state_action_value"), target_q.get(tk.state_action_value))
            with params_context(self, self.target_value_network_params, self.value_network):
                next_v = self.value_network(tensordict.get("next").select(*self.value_network.in_keys, strict=False))
            inputs.set(("next", PRIVATE, "state_value"), next_v.get(tk.value))
        q = self._vmap_qvalue_networkN0(q_in, self.qvalue_network_params)
        inputs.set((PRIVATE, "state_action_value"), q.get(tk.state_action_value))
        with params_context(self, self.value_network_params, self.value_network):
            v = self.value_network(tensordict.select(*self.value_network.in_keys, strict=False))
        inputs.set((PRIVATE, "state_value"), v.get(tk.value))
        return inputs

    def _call(self, fn, tensordict: TensorDictBase, **options) -> TensorDict:
        return call_loss(fn, self, self._inputs(tensordict), tensordict, IQLKeys, "state_action_value",
                         "target_state_action_value", ("value", "state_value"), "log_prob",
                         expectile=self.expectile, temperature=self.temperature, **options)

    def _finish(self, out: TensorDictBase, tensordict: TensorDictBase) -> TensorDictBase:
        write_priority(tensordict, self.tensor_keys.priority, out.pop("td_error"))
        return output_td(out, self, tensordict, ("entropy",))


class IQLLoss(_IQLForward, _trl.IQLLoss):
    """Drop-in ``torchrl.objectives.IQLLoss`` computed by :func:`~torchrl_functional.functional.iql_loss`.

    As TorchRL, ``forward`` writes the priority ``td_error`` into the input TensorDict (but
    not the actor's log-prob, which TorchRL also writes there).
    """

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        out = self._call(iql_loss, tensordict)
        return self._finish(out, tensordict)


class DiscreteIQLLoss(_IQLForward, DiscreteActionSpace, _trl.DiscreteIQLLoss):
    """Drop-in ``torchrl.objectives.DiscreteIQLLoss`` computed by
    :func:`~torchrl_functional.functional.discrete_iql_loss`."""

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        out = self._call(discrete_iql_loss, tensordict, action_space=self.action_space)
        return self._finish(out, tensordict)

"""Drop-in replacement for ``torchrl.objectives.TD3Loss``; the math is
:func:`torchrl_functional.functional.td3_loss` (and :func:`~torchrl_functional.functional.td3_target_action`)."""

from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import dispatch
from torchrl.objectives import td3 as _trl

from ..functional.keys import TD3Keys
from ..functional.td3 import td3_loss, td3_target_action
from ._binding import FunctionalCallMixin, params_context
from ._common import PRIVATE
from ._offpolicy import estimator_kwargs, off_policy_keys, transition_inputs, write_priority

__all__ = ["TD3Loss"]


class TD3Loss(FunctionalCallMixin, _trl.TD3Loss):
    """Drop-in ``torchrl.objectives.TD3Loss`` computed by :func:`~torchrl_functional.functional.td3_loss`.

    The target-smoothing noise is drawn from the global RNG exactly as TorchRL does; as
    TorchRL, ``forward`` writes the priority ``td_error`` into the input TensorDict.
    """

    def _actor(self, td: TensorDictBase, params) -> TensorDictBase:
        with params_context(self, params, self.actor_network):
            return self.actor_network(td)

    def _q(self, td: TensorDictBase, params) -> torch.Tensor:
        """``Q_i`` on ``td`` ``[*B]`` for the ``E`` critics: ``[E, *B, 1]``."""
        td = td.select(*self.qvalue_network.in_keys, strict=False).expand(self.num_qvalue_nets, *td.batch_size)
        return self._vmap_qvalue_network00(td, params).get(self.tensor_keys.state_action_value)

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        tk = self.tensor_keys
        inputs = transition_inputs(self, tensordict)
        # actor term: Q_i(s, pi(s)) with the critics' parameters detached
        actor_td = self._actor(tensordict.select(*self.actor_network.in_keys, strict=False), self.actor_network_params)
        inputs.set((PRIVATE, "state_action_value_actor"), self._q(actor_td, self.qvalue_network_params.detach()))
        # target: smoothed target action (noise drawn first, as TorchRL), target critics
        noise = torch.randn_like(tensordict.get(tk.action))
        with torch.no_grad():
            next_td = tensordict.get("next").select(*self.actor_network.in_keys, strict=False)
            next_td = self._actor(next_td, self.target_actor_network_params)
            next_td.set(tk.action, td3_target_action(
                next_td.get(tk.action), self.min_action, self.max_action,
                policy_noise=self.policy_noise, noise_clip=self.noise_clip, noise=noise,
            ))
            inputs.set(("next", PRIVATE, "state_action_value"), self._q(next_td, self.target_qvalue_network_params))
        inputs.set((PRIVATE, "state_action_value"), self._q(tensordict, self.qvalue_network_params))
        out = td3_loss(
            inputs,
            loss_function=self.loss_function,
            reduction=self.reduction,
            loss_mask_key=self.loss_mask_key,
            use_prioritized_weights=self.use_prioritized_weights in (True, "auto"),
            keys=off_policy_keys(self, TD3Keys, state_action_value="state_action_value",
                                 state_action_value_actor="state_action_value_actor"),
            **estimator_kwargs(self, tensordict),
        )
        write_priority(tensordict, tk.priority, out.pop("td_error"))
        return out

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
from ._offpolicy import call_loss, transition_inputs, write_priority

__all__ = ["TD3Loss"]


class TD3Loss(FunctionalCallMixin, _trl.TD3Loss):
    """Drop-in ``torchrl.objectives.TD3Loss`` computed by :func:`~torchrl_functional.functional.td3_loss`.

    The target-smoothing noise is drawn from the global RNG exactly as TorchRL does; as
    TorchRL, ``forward`` writes the priority ``td_error`` into the input TensorDict.
    """

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        inputs, _ = td3_inputs(self, tensordict)
        out = call_loss(td3_loss, self, inputs, tensordict, TD3Keys, "state_action_value", "state_action_value_actor")
        write_priority(tensordict, self.tensor_keys.priority, out.pop("td_error"))
        return out


def _actor(loss_module, td: TensorDictBase, params) -> TensorDictBase:
    with params_context(loss_module, params, loss_module.actor_network):
        return loss_module.actor_network(td)


def _q(loss_module, td: TensorDictBase, params) -> torch.Tensor:
    """``Q_i`` on ``td`` ``[*B]`` for the ``E`` critics: ``[E, *B, 1]``."""
    td = td.select(*loss_module.qvalue_network.in_keys, strict=False).expand(loss_module.num_qvalue_nets, *td.batch_size)
    return loss_module._vmap_qvalue_network00(td, params).get(loss_module.tensor_keys.state_action_value)


def td3_inputs(loss_module, tensordict: TensorDictBase) -> tuple[TensorDictBase, TensorDictBase]:
    """The entries :func:`~torchrl_functional.functional.td3_terms` reads, computed with TorchRL's
    order of network calls and random draws (``TD3Loss`` and ``TD3BCLoss``), and the actor's
    output at ``s`` (with gradients)."""
    tk = loss_module.tensor_keys
    inputs = transition_inputs(loss_module, tensordict)
    # actor term: Q_i(s, pi(s)) with the critics' parameters detached
    actor_td = _actor(loss_module, tensordict.select(*loss_module.actor_network.in_keys, strict=False),
                      loss_module.actor_network_params)
    inputs.set((PRIVATE, "state_action_value_actor"),
               _q(loss_module, actor_td, loss_module.qvalue_network_params.detach()))
    # target: smoothed target action (noise drawn first, as TorchRL), target critics
    noise = torch.randn_like(tensordict.get(tk.action))
    with torch.no_grad():
        next_td = tensordict.get("next").select(*loss_module.actor_network.in_keys, strict=False)
        next_td = _actor(loss_module, next_td, loss_module.target_actor_network_params)
        next_td.set(tk.action, td3_target_action(
            next_td.get(tk.action), loss_module.min_action, loss_module.max_action,
            policy_noise=loss_module.policy_noise, noise_clip=loss_module.noise_clip, noise=noise,
        ))
        inputs.set(("next", PRIVATE, "state_action_value"),
                   _q(loss_module, next_td, loss_module.target_qvalue_network_params))
    inputs.set((PRIVATE, "state_action_value"), _q(loss_module, tensordict, loss_module.qvalue_network_params))
    return inputs, actor_td

"""Drop-in replacement for ``torchrl.objectives.ACTLoss``; the math is
:func:`~torchrl_functional.functional.act_loss`."""

from __future__ import annotations

from tensordict import TensorDict, TensorDictBase
from torchrl.objectives import act as _trl_act

from ...functional._td import pack
from ...functional.imitation import ACTKeys, act_loss
from .._binding import FunctionalCallMixin, params_context

__all__ = ["ACTLoss"]

_ACT_KEYS = ACTKeys(action_chunk="action_chunk", action_pred="action_pred", mu="mu", log_var="log_var")


class ACTLoss(FunctionalCallMixin, _trl_act.ACTLoss):
    """Drop-in ``torchrl.objectives.ACTLoss`` computed by :func:`~torchrl_functional.functional.act_loss`."""

    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        tk = self.tensor_keys
        chunk = tensordict.get(tk.action_chunk)
        # TorchRL's contract: the policy reads "observation" and "action_chunk"
        td_in = TensorDict({"observation": tensordict.get(tk.observation), "action_chunk": chunk},
                           batch_size=tensordict.batch_size, device=tensordict.device)
        with params_context(self, self.actor_network_params, self.actor_network):
            td_out = self.actor_network(td_in)
        inputs = pack({
            "action_chunk": chunk.detach(),
            "action_pred": td_out.get(tk.action_pred),
            "mu": td_out.get(tk.mu),
            "log_var": td_out.get(tk.log_var),
        })
        return act_loss(inputs, kl_weight=self.kl_weight, reduction=self.reduction, keys=_ACT_KEYS)

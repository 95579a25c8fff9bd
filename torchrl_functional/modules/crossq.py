"""Drop-in replacement for ``torchrl.objectives.CrossQLoss``; the math is
:func:`torchrl_functional.functional.crossq_loss`."""

from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import dispatch
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.modules.distributions.utils import rsample_and_log_prob, sample_and_log_prob
from torchrl.objectives import crossq as _trl

from ..functional.crossq import crossq_loss
from ..functional.keys import CrossQKeys
from ._binding import FunctionalCallMixin, params_context
from ._common import PRIVATE
from ._offpolicy import call_loss, clamp_log_alpha, transition_inputs, write_priority

__all__ = ["CrossQLoss"]


class CrossQLoss(FunctionalCallMixin, _trl.CrossQLoss):
    """Drop-in ``torchrl.objectives.CrossQLoss`` computed by :func:`~torchrl_functional.functional.crossq_loss`.

    The critics run once on the concatenated batch ``[(s, a); (s', a')]`` (train-mode batch
    normalisation over both, updating its running statistics as TorchRL's), and once in eval mode
    with detached parameters for the actor term; actions are drawn exactly as TorchRL does
    (``a'`` first, then ``a~``). As TorchRL, ``forward`` clamps a bounded ``log_alpha`` in place
    and writes the priority ``td_error`` into the input TensorDict.
    """

    def _dist(self, td: TensorDictBase):
        with params_context(self, self.actor_network_params, self.actor_network):
            return self.actor_network.get_dist(td)

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        tk = self.tensor_keys
        clamp_log_alpha(self)
        q_keys = self.qvalue_network.in_keys
        inputs = transition_inputs(self, tensordict)
        # a' ~ pi(s') (not reparameterised), then Q_i on [(s, a); (s', a')] in one forward
        with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
            next_td = tensordict.get("next").clone(False)
            next_action, next_log_prob = sample_and_log_prob(self._dist(next_td))
            next_td.set(tk.action, next_action)
        combined = torch.cat([tensordict.select(*q_keys, strict=False), next_td.select(*q_keys, strict=False)])
        q = self._vmap_qnetworkN0(combined, self.qvalue_network_params).get(tk.state_action_value)
        pred, next_q = q.split(tensordict.batch_size[0], dim=1)
        inputs.set((PRIVATE, "state_action_value"), pred)
        inputs.set(("next", PRIVATE, "state_action_value"), next_q)
        inputs.set(("next", PRIVATE, "log_prob"), next_log_prob)
        # a~ ~ pi(s) reparameterised; Q_i(s, a~) with detached critics in eval mode
        with set_exploration_type(ExplorationType.RANDOM):
            action, log_prob = rsample_and_log_prob(self._dist(tensordict.copy()))
        q_in = tensordict.select(*q_keys, strict=False)
        q_in.set(tk.action, action)
        self.qvalue_network.eval()
        try:
            actor_q = self._vmap_qnetworkN0(q_in, self.qvalue_network_params.detach()).get(tk.state_action_value)
        finally:
            self.qvalue_network.train()
        inputs.set((PRIVATE, "state_action_value_actor"), actor_q)
        inputs.set((PRIVATE, "log_prob"), log_prob)
        out = call_loss(crossq_loss, self, inputs, tensordict, CrossQKeys, "state_action_value",
                        "state_action_value_actor", "log_prob", log_alpha=self.log_alpha,
                        target_entropy=self.target_entropy)
        write_priority(tensordict, tk.priority, out["td_error"])
        if self.reduction != "none":
            return out
        td_out = TensorDict({k: v for k, v in out.items() if k not in ("alpha", "entropy")},
                            batch_size=tensordict.batch_size)
        if self.scalar_output_mode == "non_tensor":
            td_out.set_non_tensor("alpha", out["alpha"])
            td_out.set_non_tensor("entropy", out["entropy"])
        return td_out

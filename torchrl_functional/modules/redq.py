"""Drop-in replacement for ``torchrl.objectives.REDQLoss``; the math is
:func:`torchrl_functional.functional.redq_loss`."""

from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import dispatch
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.modules.distributions.utils import rsample_and_log_prob
from torchrl.objectives import redq as _trl

from ..functional.keys import REDQKeys
from ..functional.redq import redq_critic_subset, redq_loss
from ._binding import FunctionalCallMixin
from ._common import PRIVATE
from ._offpolicy import call_loss, transition_inputs, write_priority

__all__ = ["REDQLoss"]


class REDQLoss(FunctionalCallMixin, _trl.REDQLoss):
    """Drop-in ``torchrl.objectives.REDQLoss`` computed by :func:`~torchrl_functional.functional.redq_loss`.

    The critic subset and the actions are drawn exactly as TorchRL does (``randperm`` first,
    then one reparameterised draw at ``s`` and ``s'`` together), and every critic runs in one
    vmapped call as TorchRL's; the subset's target values are passed in the rows of the
    subset. As TorchRL, ``forward`` writes the priority ``td_error`` into the input TensorDict.
    """

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        tk = self.tensor_keys
        e, m = self.num_qvalue_nets, self.sub_sample_len
        obs_keys = self.actor_network.in_keys
        data = tensordict.select("next", *obs_keys, tk.action, strict=False).copy()
        subset = redq_critic_subset(e, m)  # on the CPU, as TorchRL's randperm
        # a~ ~ pi(s) with gradients and a' ~ pi(s') with the target (detached) actor, one draw
        actor_params = torch.stack([self.actor_network_params, self.target_actor_network_params], 0)
        actor_td = torch.stack([data.select(*obs_keys, strict=False),
                                data.get("next").select(*obs_keys, strict=False)], 0)
        with set_exploration_type(ExplorationType.RANDOM):
            if self.gSDE:
                actor_td.set("_eps_gSDE", torch.zeros(actor_td.shape, device=actor_td.device))
            dist = self.actor_network.build_dist_from_params(self._vmap_getdist(actor_td, actor_params))
            sample, log_prob = rsample_and_log_prob(dist)
        actor_td.set(tk.action, sample)
        # Q_i(s, a~) (detached critics), Q_target_j(s', a') for j in the subset, Q_i(s, a): one call
        q_keys = self.qvalue_network.in_keys
        batch = data.batch_size
        q_in = torch.cat([actor_td[0].select(*q_keys).expand(e, *batch), actor_td[1].select(*q_keys).expand(m, *batch),
                          data.select(*q_keys).expand(e, *batch)], 0)
        params = torch.cat([self.qvalue_network_params.detach(), self.target_qvalue_network_params[subset],
                            self.qvalue_network_params], 0)
        q = self._vmap_qvalue_network00(q_in, params).get(tk.state_action_value)
        actor_q, next_q, pred = q.split([e, m, e], 0)

        inputs = transition_inputs(self, tensordict)
        inputs.set((PRIVATE, "state_action_value"), pred)
        inputs.set((PRIVATE, "state_action_value_actor"), actor_q)
        subset = subset.to(pred.device)
        inputs.set(("next", PRIVATE, "state_action_value"), next_q.new_zeros(pred.shape).index_copy(0, subset, next_q))
        inputs.set((PRIVATE, "log_prob"), log_prob[0])
        inputs.set(("next", PRIVATE, "log_prob"), log_prob[1])
        inputs.set((PRIVATE, "critic_subset"), subset)
        out = call_loss(redq_loss, self, inputs, tensordict, REDQKeys, "state_action_value",
                        "state_action_value_actor", "log_prob", "critic_subset", log_alpha=self.log_alpha,
                        min_log_alpha=self.min_log_alpha, max_log_alpha=self.max_log_alpha,
                        target_entropy=self.target_entropy)
        write_priority(tensordict, tk.priority, out.pop("td_error"))
        if self.reduction == "none":
            alpha, entropy = out.pop("alpha"), out.pop("entropy")
            if self.scalar_output_mode == "non_tensor":
                out.set_non_tensor("alpha", alpha)
                out.set_non_tensor("entropy", entropy)
        return out

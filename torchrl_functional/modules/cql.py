"""Drop-in replacements for ``torchrl.objectives.CQLLoss`` and ``DiscreteCQLLoss``; the math
is :func:`torchrl_functional.functional.cql_loss` and
:func:`~torchrl_functional.functional.discrete_cql_loss`."""

from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import dispatch
from tensordict.utils import unravel_key
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.modules.distributions.utils import rsample_and_log_prob
from torchrl.objectives import cql as _trl

from ..functional.cql import cql_loss, discrete_cql_loss
from ..functional.keys import CQLKeys, DiscreteCQLKeys
from ._binding import FunctionalCallMixin, params_context
from ._common import PRIVATE
from ._offpolicy import (
    DiscreteActionSpace,
    action_value_inputs,
    call_loss,
    clamp_log_alpha,
    output_td,
    transition_inputs,
    write_priority,
)

__all__ = ["CQLLoss", "DiscreteCQLLoss"]


class CQLLoss(FunctionalCallMixin, _trl.CQLLoss):
    """Drop-in ``torchrl.objectives.CQLLoss`` computed by :func:`~torchrl_functional.functional.cql_loss`.

    Random actions and policy samples are drawn exactly as TorchRL does (same calls on the
    global RNG, in the same order). As TorchRL, ``forward`` clamps a bounded ``log_alpha``
    in place and writes the priority ``td_error`` into the input TensorDict (but not the
    intermediate ``pred_q*``/``cql_q*_loss`` entries TorchRL also writes there). The
    per-sample ``loss_cql`` differs from TorchRL's with ``reduction="none"`` or a mask (see
    :func:`~torchrl_functional.functional.cql_loss`).
    """

    def _q(self, td: TensorDictBase, params) -> torch.Tensor:
        return self._vmap_qvalue_networkN0(td, params).get(self.tensor_keys.state_action_value)

    def _sample(self, td: TensorDictBase, params):
        with set_exploration_type(ExplorationType.RANDOM), params_context(self, params, self.actor_network):
            dist = self.actor_network.get_dist(td)
            action, log_prob = rsample_and_log_prob(dist)
        return dist, action, log_prob

    def _repeat_states(self, data: TensorDictBase, k: int) -> TensorDictBase:
        """The actor's inputs of ``data``, each state repeated ``k`` times along the last batch
        dimension (``[*B[:-1], B_last * k]``, TorchRL's layout)."""
        in_keys = [unravel_key(key) for key in self.actor_network.in_keys]
        return data.named_apply(
            lambda name, x: x.repeat_interleave(k, dim=data.ndim - 1) if name in in_keys else None,
            batch_size=[*data.batch_size[:-1], data.batch_size[-1] * k], filter_empty=True,
        )

    def _policy_samples(self, data: TensorDictBase, actor_params, num_actions: int):
        """``K = num_actions`` actions per state from the actor with detached parameters, on the
        repeated states (TorchRL's ``_get_policy_actions`` layout and draws); returns the actor's
        inputs with the actions, and their log-probs."""
        repeated = self._repeat_states(data, num_actions)
        with set_exploration_type(ExplorationType.RANDOM), params_context(self, actor_params.data, self.actor_network):
            action, log_prob = rsample_and_log_prob(self.actor_network.get_dist(repeated))
        repeated.set(self.tensor_keys.action, action)
        return repeated.select(*self.actor_network.in_keys, self.tensor_keys.action, strict=False), log_prob

    def _per_state(self, x: torch.Tensor, batch: torch.Size, lead: int) -> torch.Tensor:
        """``[*lead, *B[:-1], B_last * K, *F]`` (TorchRL's repeat_interleave layout) -> ``[*lead, *B, K, *F]``."""
        k = self.num_random
        nb = len(batch)
        return x.reshape(*x.shape[:lead], *batch, k, *x.shape[lead + nb:])

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        tk = self.tensor_keys
        batch = tensordict.batch_size
        clamp_log_alpha(self)
        inputs = transition_inputs(self, tensordict)
        # bootstrapped target (TorchRL's _get_value_v: detached actor, target critics)
        with torch.no_grad():
            next_td = tensordict.get("next").clone(False)
            _, next_action, next_log_prob = self._sample(next_td, self.actor_network_params.data)
            next_td.set(tk.action, next_action)
            if not self.max_q_backup:
                next_q = self._q(next_td, self.target_qvalue_network_params.data)
                inputs.set(("next", PRIVATE, "log_prob"), next_log_prob)
            else:
                rep_td, _ = self._policy_samples(
                    tensordict.get("next").copy(), self.actor_network_params, num_actions=self.num_random
                )
                next_q = self._per_state(self._q(rep_td, self.target_qvalue_network_params.data), batch, 1)
            inputs.set(("next", PRIVATE, "state_action_value"), next_q)
        inputs.set((PRIVATE, "state_action_value"),
                   self._q(tensordict.select(*self.qvalue_network.in_keys, strict=False), self.qvalue_network_params))
        # conservative penalty: uniform, current-policy and next-policy actions
        action = tensordict.get(tk.action)
        random_actions = action.new_empty((*batch[:-1], batch[-1] * self.num_random, action.shape[-1])).uniform_(-1, 1)
        curr_td, curr_log_prob = self._policy_samples(tensordict.copy(), self.actor_network_params, self.num_random)
        new_td, new_log_prob = self._policy_samples(tensordict.get("next").copy(), self.actor_network_params,
                                                    self.num_random)
        random_td = self._repeat_states(tensordict.select(*self.actor_network.in_keys, strict=False), self.num_random)
        random_td.set(tk.action, random_actions)
        e = self.num_qvalue_nets
        cql_td = torch.cat([td.expand(e, *curr_td.batch_size) for td in (random_td, curr_td, new_td)], 0).contiguous()
        params = torch.cat([self.qvalue_network_params] * 3, 0)
        cql_q = self._vmap_qvalue_network00(cql_td, params).get(tk.state_action_value)
        q_random, q_curr, q_new = (self._per_state(x, batch, 1) for x in cql_q.split([e, e, e], 0))
        inputs.set((PRIVATE, "cql_random_value"), q_random)
        inputs.set((PRIVATE, "cql_current_value"), q_curr)
        inputs.set((PRIVATE, "cql_next_value"), q_new)
        inputs.set((PRIVATE, "cql_current_log_prob"), self._per_state(curr_log_prob, batch, 0))
        inputs.set((PRIVATE, "cql_next_log_prob"), self._per_state(new_log_prob, batch, 0))
        # behaviour cloning, then actor (two samples, as TorchRL)
        dist, _, bc_sample_log_prob = self._sample(tensordict.copy(), self.actor_network_params)
        inputs.set((PRIVATE, "bc_sample_log_prob"), bc_sample_log_prob)
        inputs.set((PRIVATE, "bc_log_prob"), dist.log_prob(action))
        _, actor_action, log_prob = self._sample(tensordict.copy(), self.actor_network_params)
        q_in = tensordict.select(*self.qvalue_network.in_keys, strict=False)
        q_in.set(tk.action, actor_action)
        inputs.set((PRIVATE, "state_action_value_actor"), self._q(q_in, self.qvalue_network_params.detach()))
        inputs.set((PRIVATE, "log_prob"), log_prob)
        names = ("state_action_value", "state_action_value_actor", "log_prob", "cql_random_value",
                 "cql_current_value", "cql_current_log_prob", "cql_next_value", "cql_next_log_prob",
                 "bc_log_prob", "bc_sample_log_prob")
        out = call_loss(
            cql_loss, self, inputs, tensordict, CQLKeys, *names,
            log_alpha=self.log_alpha,
            target_entropy=self.target_entropy,
            temperature=self.temperature,
            min_q_weight=self.min_q_weight,
            max_q_backup=self.max_q_backup,
            deterministic_backup=self.deterministic_backup,
            with_lagrange=self.with_lagrange,
            log_alpha_prime=self.log_alpha_prime if self.with_lagrange else 0.0,
            lagrange_thresh=self.target_action_gap if self.with_lagrange else 0.0,
        )
        write_priority(tensordict, tk.priority, out.pop("td_error"))
        return output_td(out, self, tensordict, ("alpha", "entropy"))


class DiscreteCQLLoss(FunctionalCallMixin, DiscreteActionSpace, _trl.DiscreteCQLLoss):
    """Drop-in ``torchrl.objectives.DiscreteCQLLoss`` computed by
    :func:`~torchrl_functional.functional.discrete_cql_loss`.

    Like TorchRL 0.14.1, the bootstrap ``max_a Q(s', a)`` uses the *online* parameters
    (detached) whatever ``delay_value`` says, so the numbers match TorchRL's. As TorchRL,
    ``forward`` writes the priority ``td_error`` ``[*B, 1]`` into the input TensorDict.
    Categorical, one-hot and multi one-hot actions (the sub-action sizes read from the value
    network's ``QValueModule``).
    """

    _action_spaces = ("categorical", "one_hot", "mult_one_hot")

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        tk = self.tensor_keys
        inputs = action_value_inputs(self, tensordict, self.value_network_params.data)
        out = call_loss(discrete_cql_loss, self, inputs, tensordict, DiscreteCQLKeys, "action_value",
                        action_space=self.action_space, action_sizes=self._action_sizes())
        priority = out["td_error"]
        write_priority(tensordict, tk.priority, priority)
        out["td_error"] = priority.mean(0)
        return out

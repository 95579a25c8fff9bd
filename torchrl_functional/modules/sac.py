"""Drop-in replacements for ``torchrl.objectives.SACLoss`` (version 2, and version 1 with a
value network) and ``DiscreteSACLoss``; the math is :func:`torchrl_functional.functional.sac_loss`,
:func:`~torchrl_functional.functional.sac_v1_loss` and
:func:`~torchrl_functional.functional.discrete_sac_loss`."""

from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import dispatch
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.objectives import sac as _trl

from ..functional.keys import DiscreteSACKeys, SACKeys, SACV1Keys
from ..functional.sac import discrete_sac_loss, sac_loss, sac_v1_loss
from ._binding import FunctionalCallMixin, params_context
from ._common import PRIVATE
from ._offpolicy import (
    DiscreteActionSpace,
    call_loss,
    clamp_log_alpha,
    output_td,
    run_value_network,
    scatter_rows,
    transition_inputs,
    write_priority,
)
from ._onpolicy import check_single_key

__all__ = ["SACLoss", "DiscreteSACLoss"]


class SACLoss(FunctionalCallMixin, _trl.SACLoss):
    """Drop-in ``torchrl.objectives.SACLoss`` computed by :func:`~torchrl_functional.functional.sac_loss`
    (version 2) or :func:`~torchrl_functional.functional.sac_v1_loss` (with ``value_network=``).

    Actions are sampled exactly as TorchRL does (same calls on the global RNG, same order;
    with ``skip_done_states`` only at the next states that are not done). As TorchRL,
    ``forward`` clamps ``log_alpha`` in place when ``min_alpha``/``max_alpha`` are set and
    writes the priority ``td_error`` into the input TensorDict.
    """

    def _q(self, td: TensorDictBase, params) -> torch.Tensor:
        return self._vmap_qnetworkN0(td, params).get(self.tensor_keys.state_action_value)

    def _sample(self, td: TensorDictBase, params=None) -> tuple[torch.Tensor, torch.Tensor]:
        params = self.actor_network_params if params is None else params
        with set_exploration_type(ExplorationType.RANDOM), params_context(self, params, self.actor_network):
            dist = self.actor_network.get_dist(td)
            return _trl.compute_rsample_log_prob(dist)

    def _next_sample(self, next_td: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor]:
        """``a' ~ pi(s')`` and its log-prob; with ``skip_done_states`` zeros at done states
        (TorchRL's layout: the actor runs on the other states only)."""
        done = next_td.get(self.tensor_keys.done, None) if self.skip_done_states else None
        if done is None or not done.any():
            return self._sample(next_td)
        keep = ~done.squeeze(-1)
        action, log_prob = self._sample(next_td[keep])
        return scatter_rows(action, keep), scatter_rows(log_prob, keep)

    def _actor_inputs(self, inputs: TensorDictBase, tensordict: TensorDictBase, q_in: TensorDictBase) -> None:
        """``a~ ~ pi(s)`` (reparameterised), its log-prob and ``Q_i(s, a~)`` with detached critics."""
        action, log_prob = self._sample(tensordict.copy())
        q_in = q_in.copy()
        q_in.set(self.tensor_keys.action, action)
        inputs.set((PRIVATE, "state_action_value_actor"), self._q(q_in, self.qvalue_network_params.detach()))
        inputs.set((PRIVATE, "log_prob"), log_prob)

    def _call(self, fn, inputs: TensorDictBase, tensordict: TensorDictBase, cls, *fields) -> TensorDict:
        return call_loss(fn, self, inputs, tensordict, cls, "state_action_value", "state_action_value_actor",
                         "log_prob", *fields, log_alpha=self.log_alpha, target_entropy=self.target_entropy)

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        tk = self.tensor_keys
        check_single_key("SACLoss", tk.log_prob, "log-prob")
        clamp_log_alpha(self)
        if self._version == 1:
            return self._forward_v1(tensordict)
        inputs = transition_inputs(self, tensordict)
        with torch.no_grad():  # target: a' ~ pi(s'), target critics
            next_td = tensordict.get("next").copy()
            next_action, next_log_prob = self._next_sample(next_td)
            next_td.set(tk.action, next_action)
            inputs.set(("next", PRIVATE, "state_action_value"), self._q(next_td, self.target_qvalue_network_params))
            inputs.set(("next", PRIVATE, "log_prob"), next_log_prob)
        q_in = tensordict.select(*self.qvalue_network.in_keys, strict=False)
        inputs.set((PRIVATE, "state_action_value"), self._q(q_in, self.qvalue_network_params))
        self._actor_inputs(inputs, tensordict, q_in)
        out = self._call(sac_loss, inputs, tensordict, SACKeys)
        write_priority(tensordict, tk.priority, out.pop("td_error"))
        return output_td(out, self, tensordict, ("alpha", "entropy"))

    def _forward_v1(self, tensordict: TensorDictBase) -> TensorDict:
        """SAC with a value network, TorchRL's order of network calls and random draws."""
        tk = self.tensor_keys
        inputs = transition_inputs(self, tensordict)
        # target: V_target(s') behind the target actor (TorchRL's actor-critic value network)
        with torch.no_grad(), set_exploration_type(self.deterministic_sampling_mode):
            next_td = tensordict.get("next").copy()
            with params_context(self, self.target_actor_network_params, self.actor_network):
                next_td = self.actor_network(next_td)
            inputs.set(("next", PRIVATE, "state_value"),
                       run_value_network(self, next_td, self.target_value_network_params, tk.value))
        # Q(s, a): critic i on chunk i of the first batch dimension
        shape, e = tensordict.shape, self.num_qvalue_nets
        if not shape or shape[0] % e != 0:
            raise RuntimeError(f"Batch size={shape} is incompatible with num_qvqlue_nets={e}.")
        chunks = tensordict.select(*self.qvalue_network.in_keys, strict=False).reshape(e, -1, *shape[1:])
        q = self._vmap_qnetwork00(chunks, self.qvalue_network_params).get(tk.state_action_value)
        inputs.set((PRIVATE, "state_action_value"), q.reshape(*shape, *q.shape[len(shape) + 1:]))
        # V(s), and its target: the target critics at a^ ~ pi_target(s)
        v_in = tensordict.select(*self.value_network.in_keys, strict=False).detach()
        with params_context(self, self.value_network_params, self.value_network):
            v_in = self.value_network(v_in)
        inputs.set((PRIVATE, "state_value"), v_in.get(tk.value))
        with torch.no_grad():
            target_action, target_log_prob = self._sample(v_in, self.target_actor_network_params)
            v_in = v_in.copy()
            v_in.set(tk.action, target_action)
            inputs.set((PRIVATE, "target_state_action_value"), self._q(v_in, self.target_qvalue_network_params))
            inputs.set((PRIVATE, "target_log_prob"), target_log_prob)
        self._actor_inputs(inputs, tensordict, tensordict.select(*self.qvalue_network.in_keys, strict=False))
        out = self._call(sac_v1_loss, inputs, tensordict, SACV1Keys, ("value", "state_value"),
                         "target_state_action_value", "target_log_prob")
        write_priority(tensordict, tk.priority, out.pop("td_error"))
        return output_td(out, self, tensordict, ("alpha", "entropy"))


class DiscreteSACLoss(FunctionalCallMixin, DiscreteActionSpace, _trl.DiscreteSACLoss):
    """Drop-in ``torchrl.objectives.DiscreteSACLoss`` computed by
    :func:`~torchrl_functional.functional.discrete_sac_loss`.

    One critic pass at ``s`` serves both the critic and the actor terms (TorchRL runs the
    critics twice). As TorchRL, ``forward`` clamps a bounded ``log_alpha`` in place and
    writes the priority ``td_error`` into the input TensorDict.
    """

    def _q(self, td: TensorDictBase, params) -> torch.Tensor:
        return self._vmap_qnetworkN0(td, params).get(self.tensor_keys.action_value)

    def _logits(self, td: TensorDictBase) -> torch.Tensor:
        with params_context(self, self.actor_network_params, self.actor_network):
            return self.actor_network.get_dist(td).logits

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        tk = self.tensor_keys
        clamp_log_alpha(self)
        inputs = transition_inputs(self, tensordict)
        with torch.no_grad():
            next_td = tensordict.get("next").clone(False)
            done = next_td.get(tk.done, None) if self.skip_done_states else None
            keep = None if done is None or not done.any() else ~done.squeeze(-1)
            if keep is not None:  # TorchRL runs the networks at the states that are not done only
                next_td = next_td[keep]
            logits = self._logits(next_td)
            next_q = self._q(next_td, self.target_qvalue_network_params)
            if keep is not None:
                logits, next_q = scatter_rows(logits, keep), scatter_rows(next_q, keep, dim=1)
            inputs.set(("next", PRIVATE, "logits"), logits)
            inputs.set(("next", PRIVATE, "action_value"), next_q)
        q_in = tensordict.select(*self.qvalue_network.in_keys, strict=False)
        inputs.set((PRIVATE, "action_value"), self._q(q_in, self.qvalue_network_params))
        inputs.set((PRIVATE, "logits"), self._logits(tensordict.clone(False)))
        out = call_loss(discrete_sac_loss, self, inputs, tensordict, DiscreteSACKeys, "action_value", "logits",
                        log_alpha=self.log_alpha, target_entropy=self.target_entropy,
                        action_space=self.action_space, skip_done_states=self.skip_done_states)
        write_priority(tensordict, tk.priority, out.pop("td_error"))
        return output_td(out, self, tensordict, ("alpha", "entropy"))

"""Drop-in replacement for ``torchrl.objectives.TQCLoss``; the math is
:func:`torchrl_functional.functional.tqc_loss` (and :func:`~torchrl_functional.functional.tqc_target`)."""

from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import dispatch
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.objectives import tqc as _trl

from ..functional.keys import TQCKeys
from ..functional.tqc import tqc_loss, tqc_target
from ._binding import FunctionalCallMixin, params_context
from ._common import PRIVATE
from ._estimate import td_estimator
from ._offpolicy import (
    clamp_log_alpha,
    off_policy_keys,
    output_td,
    scatter_rows,
    steps_key,
    transition_inputs,
    write_priority,
)

__all__ = ["TQCLoss"]


class TQCLoss(FunctionalCallMixin, _trl.TQCLoss):
    """Drop-in ``torchrl.objectives.TQCLoss`` computed by :func:`~torchrl_functional.functional.tqc_loss`.

    Actions are sampled as TorchRL does (same calls on the global RNG, same order; with
    ``skip_done_states`` only at the next states that are not terminated). As TorchRL,
    ``forward`` clamps a bounded ``log_alpha`` in place and writes the priority ``td_error``
    into the input TensorDict. ``actor_loss``, ``qvalue_v2_loss`` and ``compute_target`` are
    computed by the same functions (the first two run every network of ``forward``, so their
    random draws differ from TorchRL's).
    """

    def _q(self, td: TensorDictBase, params) -> torch.Tensor:
        """The ``E`` critics' quantiles ``[E, *B, K]``."""
        return self._vmap_qnetworkN0(td, params).get(self.tensor_keys.state_action_value)

    def _sample(self, td: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor | None]:
        with set_exploration_type(ExplorationType.RANDOM), params_context(
                self, self.actor_network_params, self.actor_network):
            dist = self.actor_network.get_dist(td)
            if td.batch_size.numel():
                return _trl.compute_rsample_log_prob(dist)  # looked up at call time, as TorchRL
            return dist.rsample(), None

    def _inputs(self, tensordict: TensorDictBase, current: bool = True) -> TensorDictBase:
        tk = self.tensor_keys
        inputs = transition_inputs(self, tensordict)
        key = steps_key(self)
        steps = inputs.get(key, None)
        if steps is not None and steps.is_floating_point() and bool((steps == steps.round()).all()):
            inputs.set(key, steps.long())  # TorchRL accepts whole step counts stored as floats
        with torch.no_grad():  # target: a' ~ pi(s') (not at terminated states with skip_done_states)
            next_td = tensordict.get("next").copy()
            keep = None
            if self.skip_done_states:
                terminated = next_td.get(tk.terminated)
                if terminated.any():
                    keep = ~terminated.squeeze(-1)
                    next_td = next_td[keep]
            action, log_prob = self._sample(next_td)
            next_td.set(tk.action, action)
            next_q = self._q(next_td, self.target_qvalue_network_params)
            if log_prob is None:
                log_prob = next_q.new_zeros(next_q.shape[1:-1])
            if keep is not None:
                next_q, log_prob = scatter_rows(next_q, keep, dim=1), scatter_rows(log_prob, keep)
            inputs.set(("next", PRIVATE, "state_action_value"), next_q)
            inputs.set(("next", PRIVATE, "log_prob"), log_prob)
        if current:
            q_in = tensordict.select(*self.qvalue_network.in_keys, strict=False)
            inputs.set((PRIVATE, "state_action_value"), self._q(q_in, self.qvalue_network_params))
            action, log_prob = self._sample(tensordict.copy())
            q_in = q_in.copy()
            q_in.set(tk.action, action)
            inputs.set((PRIVATE, "state_action_value_actor"), self._q(q_in, self.qvalue_network_params.detach()))
            inputs.set((PRIVATE, "log_prob"), log_prob)
        return inputs

    def _keys(self) -> TQCKeys:
        return off_policy_keys(self, TQCKeys, state_action_value="state_action_value",
                               state_action_value_actor="state_action_value_actor", log_prob="log_prob")

    def _loss(self, tensordict: TensorDictBase) -> tuple[TensorDict, TensorDictBase]:
        clamp_log_alpha(self)
        inputs = self._inputs(tensordict)
        out = tqc_loss(
            inputs,
            top_quantiles_to_drop=self.top_quantiles_to_drop_per_net,
            log_alpha=self.log_alpha,
            target_entropy=self.target_entropy,
            gamma=td_estimator(self, average_rewards=True)[1],
            average_rewards=bool(self.value_estimator.average_rewards),
            reduction=self.reduction,
            loss_mask_key=self.loss_mask_key,
            use_prioritized_weights=self.use_prioritized_weights in (True, "auto"),
            keys=self._keys(),
        )
        return out, inputs

    def compute_target(self, tensordict: TensorDictBase) -> torch.Tensor:
        clamp_log_alpha(self)
        return tqc_target(self._inputs(tensordict, current=False),
                          top_quantiles_to_drop=self.top_quantiles_to_drop_per_net, log_alpha=self.log_alpha,
                          gamma=td_estimator(self, average_rewards=True)[1],
                          average_rewards=bool(self.value_estimator.average_rewards), keys=self._keys())

    def actor_loss(self, tensordict: TensorDictBase) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out, inputs = self._loss(tensordict)
        return out["loss_actor"], {"log_prob": inputs.get((PRIVATE, "log_prob")).detach()}

    def qvalue_v2_loss(self, tensordict: TensorDictBase) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out, _ = self._loss(tensordict)
        return out["loss_qvalue"], {"td_error": out["td_error"]}

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        out, _ = self._loss(tensordict)
        write_priority(tensordict, self.tensor_keys.priority, out.pop("td_error"))
        return output_td(out, self, tensordict, ("alpha", "entropy"))

"""Drop-in replacements for ``torchrl.objectives.SACLoss`` (version 2: no value network)
and ``DiscreteSACLoss``; the math is :func:`torchrl_functional.functional.sac_loss` and
:func:`~torchrl_functional.functional.discrete_sac_loss`."""

from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import dispatch
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.objectives import sac as _trl

from ..functional.keys import DiscreteSACKeys, SACKeys
from ..functional.sac import discrete_sac_loss, sac_loss
from ._binding import FunctionalCallMixin, params_context
from ._common import PRIVATE
from ._offpolicy import (
    estimator_kwargs,
    off_policy_keys,
    output_td,
    transition_inputs,
    write_priority,
)
from ._onpolicy import check_single_key
from .dqn import check_discrete_action_space

__all__ = ["SACLoss", "DiscreteSACLoss"]


def _check_common(loss) -> None:
    name = type(loss).__name__
    if loss.skip_done_states:
        raise NotImplementedError(f"{name}: skip_done_states=True is not supported yet")


class SACLoss(FunctionalCallMixin, _trl.SACLoss):
    """Drop-in ``torchrl.objectives.SACLoss`` computed by :func:`~torchrl_functional.functional.sac_loss`.

    Actions are sampled exactly as TorchRL does (same calls on the global RNG). As TorchRL,
    ``forward`` clamps ``log_alpha`` in place when ``min_alpha``/``max_alpha`` are set and
    writes the priority ``td_error`` into the input TensorDict. Only SAC version 2 (no value
    network) is supported.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self._version == 1:
            raise NotImplementedError(
                "SACLoss: the value-network variant (SAC v1, value_network=...) is not supported; "
                "pass value_network=None (SAC v2) or use torchrl.objectives.SACLoss"
            )
        _check_common(self)

    def _q(self, td: TensorDictBase, params) -> torch.Tensor:
        return self._vmap_qnetworkN0(td, params).get(self.tensor_keys.state_action_value)

    def _sample(self, td: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor]:
        with set_exploration_type(ExplorationType.RANDOM), params_context(self, self.actor_network_params, self.actor_network):
            dist = self.actor_network.get_dist(td)
            return _trl.compute_rsample_log_prob(dist)

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        tk = self.tensor_keys
        check_single_key("SACLoss", tk.log_prob, "log-prob")
        alpha = self._alpha  # TorchRL's property: clamps log_alpha.data when alpha is bounded
        del alpha
        inputs = transition_inputs(self, tensordict)
        with torch.no_grad():  # target: a' ~ pi(s'), target critics
            next_td = tensordict.get("next").copy()
            next_action, next_log_prob = self._sample(next_td)
            next_td.set(tk.action, next_action)
            inputs.set(("next", PRIVATE, "state_action_value"), self._q(next_td, self.target_qvalue_network_params))
            inputs.set(("next", PRIVATE, "log_prob"), next_log_prob)
        q_in = tensordict.select(*self.qvalue_network.in_keys, strict=False)
        inputs.set((PRIVATE, "state_action_value"), self._q(q_in, self.qvalue_network_params))
        action, log_prob = self._sample(tensordict.copy())  # a~ ~ pi(s), reparameterised
        q_in = q_in.copy()
        q_in.set(tk.action, action)
        inputs.set((PRIVATE, "state_action_value_actor"), self._q(q_in, self.qvalue_network_params.detach()))
        inputs.set((PRIVATE, "log_prob"), log_prob)
        out = sac_loss(
            inputs,
            log_alpha=self.log_alpha,
            target_entropy=self.target_entropy,
            loss_function=self.loss_function,
            reduction=self.reduction,
            loss_mask_key=self.loss_mask_key,
            use_prioritized_weights=self.use_prioritized_weights in (True, "auto"),
            keys=off_policy_keys(self, SACKeys, state_action_value="state_action_value",
                                 state_action_value_actor="state_action_value_actor", log_prob="log_prob"),
            **estimator_kwargs(self, tensordict),
        )
        write_priority(tensordict, tk.priority, out.pop("td_error"))
        return output_td(out, self, tensordict, ("alpha", "entropy"))


class DiscreteSACLoss(FunctionalCallMixin, _trl.DiscreteSACLoss):
    """Drop-in ``torchrl.objectives.DiscreteSACLoss`` computed by
    :func:`~torchrl_functional.functional.discrete_sac_loss`.

    One critic pass at ``s`` serves both the critic and the actor terms (TorchRL runs the
    critics twice). As TorchRL, ``forward`` clamps a bounded ``log_alpha`` in place and
    writes the priority ``td_error`` into the input TensorDict.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        check_discrete_action_space("DiscreteSACLoss", self.action_space)
        _check_common(self)

    def _q(self, td: TensorDictBase, params) -> torch.Tensor:
        return self._vmap_qnetworkN0(td, params).get(self.tensor_keys.action_value)

    def _logits(self, td: TensorDictBase) -> torch.Tensor:
        with params_context(self, self.actor_network_params, self.actor_network):
            return self.actor_network.get_dist(td).logits

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        tk = self.tensor_keys
        alpha = self._alpha  # TorchRL's property: clamps log_alpha.data when alpha is bounded
        del alpha
        inputs = transition_inputs(self, tensordict)
        with torch.no_grad():
            next_td = tensordict.get("next").clone(False)
            inputs.set(("next", PRIVATE, "logits"), self._logits(next_td))
            inputs.set(("next", PRIVATE, "action_value"), self._q(next_td, self.target_qvalue_network_params))
        q_in = tensordict.select(*self.qvalue_network.in_keys, strict=False)
        inputs.set((PRIVATE, "action_value"), self._q(q_in, self.qvalue_network_params))
        inputs.set((PRIVATE, "logits"), self._logits(tensordict.clone(False)))
        out = discrete_sac_loss(
            inputs,
            log_alpha=self.log_alpha,
            target_entropy=self.target_entropy,
            action_space=self.action_space,
            loss_function=self.loss_function,
            reduction=self.reduction,
            loss_mask_key=self.loss_mask_key,
            use_prioritized_weights=self.use_prioritized_weights in (True, "auto"),
            keys=off_policy_keys(self, DiscreteSACKeys, action_value="action_value", logits="logits"),
            **estimator_kwargs(self, tensordict),
        )
        write_priority(tensordict, tk.priority, out.pop("td_error"))
        return output_td(out, self, tensordict, ("alpha", "entropy"))

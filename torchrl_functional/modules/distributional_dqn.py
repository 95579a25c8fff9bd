"""Drop-in replacement for ``torchrl.objectives.DistributionalDQNLoss``; the math is
:func:`torchrl_functional.functional.distributional_dqn_loss`."""

from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.objectives import dqn as _trl

from ..functional._td import gather, next_key, pack
from ..functional.distributional_dqn import distributional_dqn_loss
from ..functional.keys import DistributionalDQNKeys
from ._binding import FunctionalCallMixin, params_context
from ._common import PRIVATE
from ._offpolicy import write_priority

__all__ = ["DistributionalDQNLoss"]

#: TorchRL reads any non-categorical action (one-hot, multi-one-hot) by its largest entry
_ACTION_SPACES = {"categorical": "categorical", "one_hot": "one_hot", "one-hot": "one_hot",
                  "mult_one_hot": "one_hot", "mult-one-hot": "one_hot"}


class DistributionalDQNLoss(FunctionalCallMixin, _trl.DistributionalDQNLoss):
    """Drop-in ``torchrl.objectives.DistributionalDQNLoss`` computed by
    :func:`~torchrl_functional.functional.distributional_dqn_loss`.

    As TorchRL, ``forward`` writes the priority ``td_error`` into the input TensorDict.
    Difference: with the action key renamed (``set_keys(action=...)``) away from the network's
    action output, the bootstrap action is still the online network's greedy choice at ``s'``
    (TorchRL then reads the *replayed* action, which its ``step_mdp`` carries over).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.action_space not in _ACTION_SPACES:
            raise NotImplementedError(f"DistributionalDQNLoss: action space {self.action_space!r} is not supported")

    def _run(self, td: TensorDictBase, params) -> TensorDictBase:
        net = self.value_network
        with params_context(self, params, net):
            return net(td.select(*net.in_keys, strict=False))

    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        tk = self.tensor_keys
        keep = [tk.action, ("next", tk.reward), ("next", tk.done), ("next", tk.terminated), tk.steps_to_next_obs,
                *self._loss_mask_keys()]
        if self.use_prioritized_weights in (True, "auto"):
            keep.append(tk.priority_weight)
        inputs = pack(gather(tensordict, keep), device=tensordict.device)
        inputs.set((PRIVATE, "action_value"), self._run(tensordict, self.value_network_params).get(tk.action_value))
        with torch.no_grad():
            next_td = tensordict.get("next")
            # the bootstrap action: the online network's choice at s' (double Q)
            online = self._run(next_td, self.value_network_params)
            inputs.set(next_key(tk.action), online.get(tk.action if tk.action in self.value_network.out_keys
                                                       else self.value_network.out_keys[0]))
            target = self._run(next_td, self.target_value_network_params).get(tk.action_value)
            inputs.set(("next", PRIVATE, "action_value"), target)
        out = distributional_dqn_loss(
            inputs,
            support=self.value_network_params["support"],
            action_space=_ACTION_SPACES[self.action_space],
            gamma=self.gamma,
            reduction=self.reduction,
            loss_mask_key=self.loss_mask_key,
            use_prioritized_weights=self.use_prioritized_weights in (True, "auto"),
            keys=DistributionalDQNKeys(
                action=tk.action, reward=tk.reward, done=tk.done, terminated=tk.terminated, steps_to_next_obs=tk.steps_to_next_obs,
                priority_weight=tk.priority_weight, action_value=(PRIVATE, "action_value"),
            ),
        )
        write_priority(tensordict, tk.priority, out.pop("td_error"))
        return out

"""Drop-in replacement for ``torchrl.objectives.ReinforceLoss``; the math is
:func:`torchrl_functional.functional.reinforce_loss`.

Unlike TorchRL's class, ``forward`` does not write the advantage, value target and
state values into the caller's TensorDict (the numbers are the same)."""

from __future__ import annotations

from tensordict import TensorDictBase
from tensordict.nn import dispatch
from torchrl.objectives import reinforce as _trl

from ..functional import OnPolicyOptions
from ..functional.keys import ReinforceKeys
from ..functional.reinforce import reinforce_loss
from ._onpolicy import OnPolicyModule, flat_in_keys, module_options, on_policy_inputs, on_policy_keys

__all__ = ["ReinforceLoss"]


class ReinforceLoss(OnPolicyModule, _trl.ReinforceLoss):
    """Drop-in ``torchrl.objectives.ReinforceLoss`` computed by :func:`~torchrl_functional.functional.reinforce_loss`."""

    def _set_in_keys(self):
        self._in_keys = flat_in_keys(self, with_critic=True)

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        gathered = on_policy_inputs(self, tensordict, self._dist_module, with_critic=True)
        return reinforce_loss(gathered.inputs, gathered.dist_class, keys=on_policy_keys(self, ReinforceKeys),
                              loss_critic_type=self.loss_critic_type, clip_value=self.clip_value,
                              **module_options(self, gathered, OnPolicyOptions))

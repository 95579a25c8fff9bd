"""Drop-in replacement for ``torchrl.objectives.A2CLoss``; the math is
:func:`torchrl_functional.functional.a2c_loss`."""

from __future__ import annotations

from tensordict import TensorDictBase
from tensordict.nn import dispatch
from torchrl.objectives import a2c as _trl

from ..functional import A2COptions
from ..functional.a2c import a2c_loss
from ..functional.keys import A2CKeys
from ._onpolicy import OnPolicyModule, flat_in_keys, module_options, on_policy_inputs, on_policy_keys

__all__ = ["A2CLoss"]


class A2CLoss(OnPolicyModule, _trl.A2CLoss):
    """Drop-in ``torchrl.objectives.A2CLoss`` computed by :func:`~torchrl_functional.functional.a2c_loss`."""

    @property
    def in_keys(self):
        return flat_in_keys(self, with_critic=self.critic_coeff is not None)

    @dispatch()
    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        gathered = on_policy_inputs(self, tensordict, self._dist_module, with_critic=self.critic_coeff is not None)
        return a2c_loss(gathered.inputs, gathered.dist_class, keys=on_policy_keys(self, A2CKeys),
                        **module_options(self, gathered, A2COptions))

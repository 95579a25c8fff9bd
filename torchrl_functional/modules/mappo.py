"""Drop-in replacements for TorchRL's multi-agent PPO loss modules.

Same constructor (``value_norm``, MAPPO's defaults), keys, value estimators (``MultiAgentGAE``
by default) and outputs as ``torchrl.objectives.MAPPOLoss``/``IPPOLoss``; ``forward`` runs the
networks and the value estimator, then calls :func:`~torchrl_functional.functional.mappo_loss`
with the value normaliser's statistics and stores the updated statistics in its buffers.
"""

from __future__ import annotations

from tensordict import TensorDict, TensorDictBase
from tensordict.nn import dispatch
from torchrl.objectives.multiagent import mappo as _trl

from ..functional import PPOOptions
from ..functional import mappo as F
from ._onpolicy import module_options
from ._value_norm import functional_normalizer, store_statistics
from .ppo import _PPOForward

__all__ = ["MAPPOLoss", "IPPOLoss"]


class MAPPOLoss(_PPOForward, _trl.MAPPOLoss):
    """Drop-in ``torchrl.objectives.MAPPOLoss`` computed by :func:`~torchrl_functional.functional.mappo_loss`."""

    _function = staticmethod(F.mappo_loss)

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        gathered, keys = self._inputs(tensordict, with_old_actor=False)
        norm, stats = functional_normalizer(self.value_norm)
        out: TensorDict = self._function(
            gathered.inputs, gathered.dist_class, keys=keys, clip_epsilon=self._clip_epsilon(),
            value_norm=norm, value_norm_stats=stats, **module_options(self, gathered, PPOOptions),
        )
        store_statistics(self.value_norm, out.pop("value_norm", None))
        return self._finish(out)


class IPPOLoss(MAPPOLoss, _trl.IPPOLoss):
    """Drop-in ``torchrl.objectives.IPPOLoss`` computed by :func:`~torchrl_functional.functional.ippo_loss`."""

    _function = staticmethod(F.ippo_loss)

"""Drop-in replacement for ``torchrl.objectives.RNDLoss``; the math is
:func:`torchrl_functional.functional.rnd_loss` (and
:func:`~torchrl_functional.functional.rnd_normalize_observation`)."""

from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.objectives import rnd as _trl

from ..functional._td import gather, pack
from ..functional.keys import RNDKeys
from ..functional.rnd import rnd_loss, rnd_normalize_observation
from ._binding import FunctionalCallMixin
from ._common import cached_keys

__all__ = ["RNDLoss"]


class RNDLoss(FunctionalCallMixin, _trl.RNDLoss):
    """Drop-in ``torchrl.objectives.RNDLoss`` computed by :func:`~torchrl_functional.functional.rnd_loss`.

    ``forward`` normalises the next observation with ``obs_rms`` (read, not updated, as
    TorchRL), runs the frozen target network without gradients and the predictor, then calls
    the function; the sample selection is drawn from the global RNG exactly as TorchRL does.
    """

    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        obs = tensordict.get(self.tensor_keys.observation).float()
        if self.obs_rms is not None:
            obs = rnd_normalize_observation(obs, self.obs_rms.mean, self.obs_rms.var, obs_clip=self.obs_clip)
        with torch.no_grad():
            target = self.target_network(obs)
        pred = self.predictor_network(obs)
        key = self.loss_mask_key
        source = gather(tensordict, self._loss_mask_keys())
        source.update(predictor_features=pred, target_features=target)
        return rnd_loss(pack(source, pred.shape[:-1]), update_fraction=self.update_fraction, reduction=self.reduction,
                        loss_mask_key=key, keys=cached_keys(RNDKeys))

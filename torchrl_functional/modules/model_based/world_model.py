"""Drop-in replacement for ``torchrl.objectives.WorldModelLoss``; the math is
:func:`torchrl_functional.functional.world_model_loss`."""

from __future__ import annotations

from tensordict import TensorDict, TensorDictBase
from torchrl.objectives import world_model_loss as _trl

from ...functional._td import next_key, rename_entry
from ...functional.model_based import WorldModelKeys, world_model_loss
from .._binding import FunctionalCallMixin
from .._common import keys_from

__all__ = ["WorldModelLoss"]


class WorldModelLoss(FunctionalCallMixin, _trl.WorldModelLoss):
    """Drop-in ``torchrl.objectives.WorldModelLoss`` computed by
    :func:`~torchrl_functional.functional.world_model_loss`.

    ``forward`` renames the observed reward and done flags (``true_*``) in a shallow copy of
    the input, runs the world model on it, then calls the function, as TorchRL does.
    """

    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        tk = self.tensor_keys
        tensordict = tensordict.copy()
        if "reward" in self.losses:
            rename_entry(tensordict, next_key(tk.reward), next_key(tk.true_reward))
        if "done" in self.losses:
            rename_entry(tensordict, next_key(tk.done), next_key(tk.true_done), safe=True)
            rename_entry(tensordict, next_key(tk.terminated), next_key(tk.true_terminated), safe=True)
        tensordict = self.world_model(tensordict)
        return world_model_loss(
            tensordict, losses=tuple(self.losses),
            reward_loss=self.reward_loss, done_loss=self.done_loss,
            reconstruction_loss=self.reconstruction_loss, latent_loss=self.latent_loss,
            reward_weight=self.reward_weight, done_weight=self.done_weight,
            reconstruction_weight=self.reconstruction_weight, latent_weight=self.latent_weight,
            keys=keys_from(tk, WorldModelKeys),
        )

"""Drop-in replacement for ``torchrl.objectives.BCLoss``; the math is
:func:`~torchrl_functional.functional.bc_loss`.

``forward`` runs the actor on a copy of the input (TorchRL's flow: the prediction is written
over the action key), picks the variant TorchRL would (explicit ``loss_function``, integer
expert actions, a distributional actor, else MSE) and calls the function."""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from tensordict.nn import dispatch
from torchrl.objectives import bc as _trl

from ...functional._td import pack
from ...functional.imitation import BCKeys, bc_loss
from .._binding import FunctionalCallMixin, params_context
from .._common import ACTOR_OUTPUT, PRIVATE
from ._inputs import copy_loss_masks, run_policy

__all__ = ["BCLoss"]

_DIST_OUT_KEYS = ("loc", "scale", "logits", "probs")
_KEYS = BCKeys(action=(PRIVATE, "expert"), action_pred=(PRIVATE, "action_pred"), actor_output=ACTOR_OUTPUT)


class BCLoss(FunctionalCallMixin, _trl.BCLoss):
    """Drop-in ``torchrl.objectives.BCLoss`` computed by :func:`~torchrl_functional.functional.bc_loss`."""

    def _variant(self, expert: torch.Tensor):
        if self.loss_function is not None:
            return self.loss_function
        if expert.dtype in (torch.long, torch.int32, torch.int64):
            return "cross_entropy"
        out_keys = getattr(self.actor_network, "out_keys", ())
        if any(k in out_keys for k in _DIST_OUT_KEYS):
            return "nll"
        return "l2"

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        tk = self.tensor_keys
        tensordict = tensordict.copy()
        expert = tensordict.get(tk.action)
        variant = self._variant(expert)
        # the expert action is data (the function refuses one that requires grad)
        inputs = pack({_KEYS.action: expert.detach()}, tensordict.batch_size)
        dist_class = None
        if variant == "nll":
            params, dist_class = run_policy(self, tensordict)
            inputs.set(ACTOR_OUTPUT, params)
        else:
            with params_context(self, self.actor_network_params, self.actor_network):
                tensordict = self.actor_network(tensordict)
            inputs.set(_KEYS.action_pred, self._get_prediction(tensordict, expert))
        keys = _KEYS
        if tk.pad_mask is not None:
            pad = tensordict.get(tk.pad_mask, None)
            if pad is not None:
                inputs.set((PRIVATE, "pad_mask"), pad)
                keys = _KEYS.replace(pad_mask=(PRIVATE, "pad_mask"))
        copy_loss_masks(self, tensordict, inputs)
        return bc_loss(
            inputs, loss_function=variant, dist_class=dist_class, reduction=self.reduction,
            loss_mask_key=self.loss_mask_key, keys=keys,
        )

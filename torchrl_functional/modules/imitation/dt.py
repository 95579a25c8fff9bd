"""Drop-in replacements for ``torchrl.objectives.DTLoss`` and ``OnlineDTLoss``; the math is
:func:`~torchrl_functional.functional.dt_loss` and :func:`~torchrl_functional.functional.online_dt_loss`."""

from __future__ import annotations

from tensordict import TensorDictBase
from tensordict.nn import dispatch
from torchrl.objectives import decision_transformer as _trl

from ...functional._td import pack
from ...functional.imitation import DTKeys, OnlineDTKeys, dt_loss, online_dt_loss
from .._binding import FunctionalCallMixin, params_context
from .._common import ACTOR_OUTPUT, PRIVATE
from ._inputs import copy_loss_masks, run_policy

__all__ = ["DTLoss", "OnlineDTLoss"]

_DT_KEYS = DTKeys(action_target=(PRIVATE, "action_target"), action_pred=(PRIVATE, "action_pred"))
_ODT_KEYS = OnlineDTKeys(action_target=(PRIVATE, "action_target"), actor_output=ACTOR_OUTPUT)


class DTLoss(FunctionalCallMixin, _trl.DTLoss):
    """Drop-in ``torchrl.objectives.DTLoss`` computed by :func:`~torchrl_functional.functional.dt_loss`."""

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        tk = self.tensor_keys
        target = tensordict.get(tk.action_target).detach()  # read before the actor overwrites it
        with params_context(self, self.actor_network_params, self.actor_network):
            pred = self.actor_network(tensordict.copy()).get(tk.action_pred)
        inputs = pack({_DT_KEYS.action_target: target, _DT_KEYS.action_pred: pred}, tensordict.batch_size)
        copy_loss_masks(self, tensordict, inputs)
        return dt_loss(inputs, loss_function=self.loss_function, reduction=self.reduction,
                       loss_mask_key=self.loss_mask_key, keys=_DT_KEYS)


class OnlineDTLoss(FunctionalCallMixin, _trl.OnlineDTLoss):
    """Drop-in ``torchrl.objectives.OnlineDTLoss`` computed by
    :func:`~torchrl_functional.functional.online_dt_loss`.

    As TorchRL, ``forward`` clamps the ``log_alpha`` parameter in place to
    ``[min_log_alpha, max_log_alpha]`` before the loss; the entropy samples are drawn from the
    global RNG exactly as TorchRL does.
    """

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        tk = self.tensor_keys
        target = tensordict.get(tk.action_target)
        if target.requires_grad:
            raise RuntimeError("target action cannot be part of a graph.")
        params, dist_class = run_policy(self, tensordict.copy())
        if self.min_log_alpha is not None or self.max_log_alpha is not None:
            self.log_alpha.data.clamp_(self.min_log_alpha, self.max_log_alpha)  # TorchRL's state update
        inputs = pack({_ODT_KEYS.action_target: target, ACTOR_OUTPUT: params}, tensordict.batch_size)
        copy_loss_masks(self, tensordict, inputs)
        return online_dt_loss(
            inputs, dist_class, log_alpha=self.log_alpha, target_entropy=self.target_entropy,
            samples_mc_entropy=self.samples_mc_entropy, reduction=self.reduction,
            scalar_output_mode=self.scalar_output_mode, loss_mask_key=self.loss_mask_key, keys=_ODT_KEYS,
        )

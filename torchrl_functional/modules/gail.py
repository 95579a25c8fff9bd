"""Drop-in replacement for ``torchrl.objectives.GAILLoss``; the math is
:func:`torchrl_functional.functional.gail_loss`.

``forward`` runs the discriminator on the expert and collector pairs (one call on both, as
TorchRL) and, with ``use_grad_penalty``, draws the interpolation weights exactly as TorchRL
does and differentiates the discriminator at the interpolates (``create_graph=True``); the
function reads the outputs and that gradient.
"""

from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import dispatch
from torchrl.objectives import gail as _trl

from ..functional.gail import gail_loss
from ..functional.keys import GAILKeys
from ._binding import FunctionalCallMixin, params_context
from ._common import PRIVATE

__all__ = ["GAILLoss"]

_KEYS = GAILKeys(expert_pred=(PRIVATE, "expert_pred"), collector_pred=(PRIVATE, "collector_pred"),
                 gp_gradient=(PRIVATE, "gp_gradient"))


class GAILLoss(FunctionalCallMixin, _trl.GAILLoss):
    """Drop-in ``torchrl.objectives.GAILLoss`` computed by :func:`~torchrl_functional.functional.gail_loss`."""

    def _discriminate(self, td: TensorDictBase) -> torch.Tensor:
        net = self.discriminator_network
        with params_context(self, self.discriminator_network_params, net):
            return net(td).get(self.tensor_keys.discriminator_pred)

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        tk = self.tensor_keys
        device = getattr(self.discriminator_network, "device", None)
        batch_size = tensordict.shape[0]
        collector_obs, collector_act = tensordict.get(tk.collector_observation), tensordict.get(tk.collector_action)
        expert_obs, expert_act = tensordict.get(tk.expert_observation), tensordict.get(tk.expert_action)
        combined = TensorDict({tk.expert_observation: torch.cat([expert_obs, collector_obs], 0),
                               tk.expert_action: torch.cat([expert_act, collector_act], 0)},
                              batch_size=[2 * batch_size], device=device)
        expert_pred, collector_pred = torch.split(self._discriminate(combined), [batch_size, batch_size], dim=0)
        inputs = tensordict.select(*self._loss_mask_keys(), strict=False)
        inputs.set(_KEYS.expert_pred, expert_pred)
        inputs.set(_KEYS.collector_pred, collector_pred)
        if self.use_grad_penalty:
            # TorchRL's draws, in its order: the observation weights, then the action weights
            obs_noise = torch.distributions.Uniform(0.0, 1.0).sample(expert_obs.shape).to(device)
            act_noise = torch.distributions.Uniform(0.0, 1.0).sample(expert_act.shape).to(device)
            obs_mix = (obs_noise * collector_obs + (1 - obs_noise) * expert_obs).requires_grad_(True)
            act_mix = (act_noise * collector_act + (1 - act_noise) * expert_act).requires_grad_(True)
            mixed = TensorDict({tk.expert_observation: obs_mix, tk.expert_action: act_mix}, [], device=device)
            pred = self._discriminate(mixed)
            grads = torch.autograd.grad(pred, (obs_mix, act_mix), grad_outputs=torch.ones_like(pred),
                                        create_graph=True, retain_graph=True)
            inputs.set(_KEYS.gp_gradient, torch.cat(grads, dim=-1))
        return gail_loss(inputs, use_grad_penalty=self.use_grad_penalty, gp_lambda=self.gp_lambda,
                         reduction=self.reduction, loss_mask_key=self.loss_mask_key, keys=_KEYS)

"""Drop-in replacement for ``torchrl.objectives.DiffusionBCLoss``; the math is
:func:`~torchrl_functional.functional.diffusion_bc_loss` (with
:func:`~torchrl_functional.functional.ddpm_add_noise` and the draws of
:func:`~torchrl_functional.functional.sample_diffusion_inputs`)."""

from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.objectives import diffusion_bc as _trl_diffusion

from ...functional._td import pack
from ...functional.imitation import ddpm_add_noise, diffusion_bc_loss, sample_diffusion_inputs
from .._binding import FunctionalCallMixin, params_context

__all__ = ["DiffusionBCLoss"]


class DiffusionBCLoss(FunctionalCallMixin, _trl_diffusion.DiffusionBCLoss):
    """Drop-in ``torchrl.objectives.DiffusionBCLoss`` computed by
    :func:`~torchrl_functional.functional.diffusion_bc_loss`.

    The diffusion step and the noise are drawn from the global RNG exactly as TorchRL does.
    """

    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        tk = self.tensor_keys
        clean_action = tensordict[tk.action]
        observation = tensordict[tk.observation]
        with params_context(self, self.actor_network_params, self.actor_network):
            ddpm = self.actor_network.module
            t, noise = sample_diffusion_inputs(clean_action, ddpm.num_steps)
            ddpm._validate_timestep_dtype(clean_action.dtype)
            noisy_action = ddpm_add_noise(clean_action, t, noise, ddpm.alphas_cumprod)
            model_input = torch.cat([noisy_action, observation, t.to(dtype=noisy_action.dtype).unsqueeze(-1)], dim=-1)
            predicted_noise = ddpm.score_network(model_input)
        inputs = pack({"noise": noise, "noise_pred": predicted_noise})
        return diffusion_bc_loss(inputs, reduction=self.reduction, keys=None)

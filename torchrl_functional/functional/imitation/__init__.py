"""Imitation-learning losses as pure functions of precomputed network outputs.

:func:`bc_loss` (TorchRL's ``BCLoss``), :func:`dt_loss` and :func:`online_dt_loss`
(``DTLoss``, ``OnlineDTLoss``), :func:`act_loss` (``ACTLoss``), :func:`diffusion_bc_loss`
(``DiffusionBCLoss``) with the DDPM forward-process kernels :func:`ddpm_add_noise` and
:func:`sample_diffusion_inputs`.
"""

from .act import act_loss, gaussian_kl_to_standard
from .bc import BC_LOSS_FUNCTIONS, bc_loss
from .diffusion import ddpm_add_noise, diffusion_bc_loss, sample_diffusion_inputs
from .dt import dt_loss, online_dt_loss
from .keys import ACTKeys, BCKeys, DiffusionBCKeys, DTKeys, OnlineDTKeys

__all__ = [
    "bc_loss",
    "dt_loss",
    "online_dt_loss",
    "act_loss",
    "diffusion_bc_loss",
    "ddpm_add_noise",
    "sample_diffusion_inputs",
    "gaussian_kl_to_standard",
    "BCKeys",
    "DTKeys",
    "OnlineDTKeys",
    "ACTKeys",
    "DiffusionBCKeys",
    "BC_LOSS_FUNCTIONS",
]

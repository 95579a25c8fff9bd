"""Diffusion-policy behaviour cloning (epsilon prediction) as pure functions.

Chi et al. 2023, "Diffusion Policy: Visuomotor Policy Learning via Action Diffusion"
(arXiv 2303.04137); the DDPM forward process of Ho et al. 2020 (arXiv 2006.11239). Same
numbers as TorchRL 0.14's ``DiffusionBCLoss`` in three explicit steps: draw the diffusion step
and the noise (:func:`sample_diffusion_inputs`, or bring your own), corrupt the clean action
(:func:`ddpm_add_noise`), run the score network (yours), then :func:`diffusion_bc_loss`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor
from torch.nn import functional as F

from ...errors import EntryDtypeError
from .._td import check_constant, pack
from ..keys import NestedKey
from ._inputs import check_same_shape, open_loss, read_floats
from .keys import DiffusionBCKeys

__all__ = ["diffusion_bc_loss", "ddpm_add_noise", "sample_diffusion_inputs"]

_HINTS = {
    "noise": "the Gaussian noise added to the clean action (sample_diffusion_inputs draws it)",
    "noise_pred": "the score network's prediction of the noise, from the noisy action (ddpm_add_noise)",
}


def sample_diffusion_inputs(
    action: Tensor, num_steps: int, *, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Draw a diffusion step per sample and the noise, in TorchRL's order.

    With ``generator=None`` the draws are TorchRL's (``torch.randint`` then ``torch.randn_like``
    on the global RNG), so a seeded run reproduces ``DiffusionBCLoss``.

    Args:
        action: the clean action ``[*B, A]`` (its shape, dtype and device are used).
        num_steps: number of diffusion steps ``N`` of the schedule.
        generator: :class:`torch.Generator` for both draws; ``None`` uses the global RNG.

    Returns:
        ``(timestep, noise)``: integer ``[*B]`` in ``[0, N)`` and ``[*B, A]`` standard normal.
    """
    batch = tuple(action.shape[:-1])
    t = torch.randint(0, num_steps, batch, device=action.device, generator=generator)
    if generator is None:
        return t, torch.randn_like(action)
    return t, torch.randn(action.shape, generator=generator, dtype=action.dtype, device=action.device)


def ddpm_add_noise(action: Tensor, timestep: Tensor, noise: Tensor, alphas_cumprod: Tensor) -> Tensor:
    """DDPM forward process ``sqrt(abar_t) a + sqrt(1 - abar_t) eps`` (TorchRL's ``add_noise``).

    Args:
        action: the clean action ``[*B, A]``.
        timestep: integer diffusion steps ``[*B]``.
        noise: ``eps``, ``[*B, A]``.
        alphas_cumprod: the schedule's cumulative products ``abar`` ``[N]`` (computed in float32
            for half-precision actions, as TorchRL).

    Returns:
        The noisy action ``[*B, A]`` in the action's dtype (gradients reach ``action`` and ``noise``).
    """
    dtype = torch.float32 if action.dtype in (torch.float16, torch.bfloat16) else action.dtype
    alpha_bar = alphas_cumprod.to(device=action.device, dtype=dtype)[timestep]
    while alpha_bar.dim() < action.dim():
        alpha_bar = alpha_bar.unsqueeze(-1)
    noisy = alpha_bar.sqrt() * action.to(alpha_bar.dtype) + (1.0 - alpha_bar).sqrt() * noise.to(alpha_bar.dtype)
    return noisy.to(action.dtype)


def diffusion_bc_loss(
    td: TensorDictBase,
    *,
    reduction: Literal["mean", "sum", "none"] = "mean",
    keys: DiffusionBCKeys | Mapping[str, NestedKey] | None = None,
) -> TensorDict:
    """Epsilon-prediction denoising loss ``loss_diffusion_bc = |eps_theta(a_t, o, t) - eps|^2``.

    Args:
        td: input TensorDict (not modified): ``"noise"`` ``[*B, A]`` (the drawn ``eps``,
            constant) and ``"noise_pred"`` ``[*B, A]`` (the score network's output, with
            gradients).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[*B, A]``).
        keys: :class:`~torchrl_functional.functional.imitation.DiffusionBCKeys` or a mapping.

    Returns:
        TensorDict with ``loss_diffusion_bc``.
    """
    name = "diffusion_bc_loss"
    keys = open_loss(name, td, reduction, keys, DiffusionBCKeys)
    noise, pred = read_floats(name, td, keys, _HINTS, "noise", "noise_pred")
    check_constant(name, keys.noise, noise, "the noise is drawn, not computed")
    check_same_shape(name, keys.noise_pred, pred, keys.noise, noise, "the noise")
    if pred.dtype != noise.dtype:
        raise EntryDtypeError(name, keys.noise_pred, f"dtype {pred.dtype} differs from the dtype {noise.dtype} of "
                                                     f"the noise {keys.noise!r}")
    return pack({"loss_diffusion_bc": F.mse_loss(pred, noise, reduction=reduction)})

"""The GAIL discriminator loss as a pure function of precomputed discriminator outputs.

Ho & Ermon 2016, "Generative Adversarial Imitation Learning" (arXiv 1606.03476); the
gradient penalty of Gulrajani et al. 2017, "Improved Training of Wasserstein GANs"
(arXiv 1704.00028). Same outputs and numbers as TorchRL 0.14's ``GAILLoss``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor
from torch.nn import functional as nnf

from ..errors import EntryShapeError
from ._td import check_float, check_reduction, check_shape, loss_mask, pack, reduce_loss, require
from ._validation import check_range
from .keys import GAILKeys, NestedKey, resolve_keys

__all__ = ["gail_loss", "gradient_penalty"]

Number = float | Tensor


def gradient_penalty(gradient: Tensor, gp_lambda: Number = 10.0) -> Tensor:
    """``gp_lambda * mean((||g||_2 - 1)^2)``, the norm over the last dim, the mean over the rest.

    Args:
        gradient: ``[*B, D]`` the discriminator's input gradient at the interpolates (its graph
            kept: the penalty's gradient reaches the discriminator through it).
        gp_lambda: the penalty's weight (number or tensor, differentiable).

    Returns:
        A scalar.
    """
    return gp_lambda * (torch.linalg.norm(gradient, dim=-1) - 1).pow(2).mean()


def gail_loss(
    td: TensorDictBase,
    *,
    use_grad_penalty: bool = False,
    gp_lambda: Number = 10.0,
    reduction: Literal["mean", "sum", "none"] = "mean",
    loss_mask_key: NestedKey | None = "auto",
    keys: GAILKeys | Mapping[str, NestedKey] | None = None,
) -> TensorDict:
    """The GAIL discriminator loss, as TorchRL's ``GAILLoss``.

    ``loss = BCE(D(s_E, a_E), 1) + BCE(D(s_C, a_C), 0)`` per sample, plus, with
    ``use_grad_penalty``, the scalar :func:`gradient_penalty` of the discriminator's input
    gradient at ``u (s_C, a_C) + (1 - u) (s_E, a_E)`` (``u ~ U(0, 1)`` per element, drawn by
    the caller, who also differentiates the discriminator there). Nothing is detached but the
    logged ``gp_loss``.

    Args:
        td: input TensorDict (not modified), batch ``[*B]``:

            - ``"expert_pred"``, ``"collector_pred"``: the discriminator's probabilities
              ``[*B, 1]`` in ``[0, 1]`` (with gradients);
            - ``"gp_gradient"`` ``[*B, D]`` with ``use_grad_penalty``;
            - optional masks ``("collector", "mask")``/``"shifted_valid"`` ``[*B]``.
        use_grad_penalty: add the gradient penalty (and return it as ``gp_loss``).
        gp_lambda: the penalty's weight (number or tensor, differentiable).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (keeps ``[*B, 1]``, as TorchRL).
        loss_mask_key: ``"auto"`` (TorchRL's masks), an entry name, or ``None``.
        keys: :class:`~torchrl_functional.functional.GAILKeys` or a mapping of renamed entries.

    Returns:
        TensorDict with ``loss`` and, with ``use_grad_penalty``, ``gp_loss`` (detached).
    """
    name = "gail_loss"
    if not isinstance(td, TensorDictBase):
        raise TypeError(f"{name}: expected a TensorDict, got {type(td).__name__}")
    check_reduction(name, reduction)
    keys = resolve_keys(keys, GAILKeys, name)
    hint = "the discriminator's output (a probability) on the {} (s, a) pairs"
    expert = require(name, td, keys.expert_pred, hint.format("expert's"))
    collector = require(name, td, keys.collector_pred, hint.format("collector's"))
    check_float(name, keys.expert_pred, expert)
    check_float(name, keys.collector_pred, collector)
    want = torch.Size((*td.batch_size, 1) if td.batch_dims else (*expert.shape[:-1], 1))
    check_shape(name, keys.expert_pred, expert, want, "one probability per sample")
    check_shape(name, keys.collector_pred, collector, want, "one probability per sample")
    loss = nnf.binary_cross_entropy(expert, torch.ones_like(expert), reduction="none") + nnf.binary_cross_entropy(
        collector, torch.zeros_like(collector), reduction="none")
    out = {}
    if use_grad_penalty:
        check_range(name, "gp_lambda", gp_lambda, 0.0)
        gradient = require(name, td, keys.gp_gradient,
                           "the discriminator's input gradient at the interpolates, needed by use_grad_penalty")
        check_float(name, keys.gp_gradient, gradient)
        if gradient.ndim != expert.ndim or gradient.shape[:-1] != expert.shape[:-1]:
            raise EntryShapeError(name, keys.gp_gradient, f"expected shape {tuple(expert.shape[:-1])} + (D,) "
                                  f"(the batch shape of {keys.expert_pred!r}), got {tuple(gradient.shape)}")
        gp = gradient_penalty(gradient, gp_lambda)
        loss = loss + gp
        out["gp_loss"] = gp.detach()
    reduced = reduce_loss(name, loss, reduction, loss_mask(name, td, loss_mask_key))
    out["loss"] = reduced.unsqueeze(-1) if reduction == "none" else reduced  # TorchRL keeps [*B, 1]
    return pack(out)

"""Action Chunking with Transformers (ACT) as a pure function of the CVAE policy's outputs.

Zhao et al. 2023, "Learning Fine-Grained Bimanual Manipulation with Low-Cost Hardware"
(arXiv 2304.13705). Same outputs and numbers as TorchRL 0.14's ``ACTLoss``: an L1
reconstruction of the expert action chunk plus ``kl_weight`` times the KL divergence of the
CVAE posterior ``N(mu, exp(log_var))`` from ``N(0, I)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from tensordict import TensorDict, TensorDictBase
from torch import Tensor
from torch.nn import functional as F

from ...errors import EntryShapeError
from .._offpolicy import Number
from .._td import check_constant, pack, reduce_loss
from .._validation import check_range
from ..keys import NestedKey
from ._inputs import check_same_shape, open_loss, read_floats
from .keys import ACTKeys

__all__ = ["act_loss", "gaussian_kl_to_standard"]

_HINTS = {
    "action_chunk": "the expert action chunk [*B, T, A] of the dataset",
    "action_pred": "the predicted action chunk [*B, T, A], written by the ACT policy",
    "mu": "the CVAE encoder's mean [*B, Z], written by the ACT policy",
    "log_var": "the CVAE encoder's log-variance [*B, Z], written by the ACT policy",
}


def gaussian_kl_to_standard(mu: Tensor, log_var: Tensor) -> Tensor:
    """``KL(N(mu, diag(exp(log_var))) || N(0, I))`` summed over the last (latent) dim.

    Args:
        mu: the mean ``[*B, Z]``.
        log_var: the log-variance ``[*B, Z]``.

    Returns:
        ``[*B]``; gradients reach both inputs.
    """
    return (-0.5 * (1.0 + log_var - mu.pow(2) - log_var.exp())).sum(-1)


def act_loss(
    td: TensorDictBase,
    *,
    kl_weight: Number = 10.0,
    reduction: Literal["mean", "sum", "none"] = "mean",
    keys: ACTKeys | Mapping[str, NestedKey] | None = None,
) -> TensorDict:
    """ACT loss ``loss_act = |a_pred - a_chunk|_1 + kl_weight * KL(q(z | o, a) || N(0, I))``.

    The L1 term is averaged over the chunk and action dims of each sample, the KL summed over
    the latent dims, then both are reduced over the batch.

    Args:
        td: input TensorDict (not modified): ``("vla_action", "chunk")`` ``[*B, T, A]`` (the
            expert chunk, constant), ``"action_pred"`` ``[*B, T, A]``, ``"mu"`` and ``"log_var"``
            ``[*B, Z]`` (with gradients).
        kl_weight: ``beta >= 0``, a number or a tensor (differentiable).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[*B]``).
        keys: :class:`~torchrl_functional.functional.imitation.ACTKeys` or a mapping of renamed entries.

    Returns:
        TensorDict with ``loss_act`` and the detached terms ``loss_reconstruction`` and ``loss_kl``.
    """
    name = "act_loss"
    keys = open_loss(name, td, reduction, keys, ACTKeys)
    check_range(name, "kl_weight", kl_weight, 0.0)
    chunk, pred, mu, log_var = read_floats(name, td, keys, _HINTS, "action_chunk", "action_pred", "mu", "log_var")
    check_constant(name, keys.action_chunk, chunk, "the expert chunk is data")
    if chunk.ndim < 2:
        raise EntryShapeError(name, keys.action_chunk, f"expected [*B, T, A], got {tuple(chunk.shape)}")
    check_same_shape(name, keys.action_pred, pred, keys.action_chunk, chunk, "the expert chunk")
    batch = chunk.shape[:-2]
    for field, x in (("mu", mu), ("log_var", log_var)):
        if x.ndim != len(batch) + 1 or x.shape[:-1] != batch:
            raise EntryShapeError(name, getattr(keys, field), f"expected [*B, Z] with B = {tuple(batch)} (the batch of "
                                                              f"the chunk {keys.action_chunk!r}), got {tuple(x.shape)}")
    check_same_shape(name, keys.log_var, log_var, keys.mu, mu, "the CVAE mean")
    recon = reduce_loss(name, F.l1_loss(pred, chunk, reduction="none").mean(dim=(-2, -1)), reduction, squeeze=False)
    kl = reduce_loss(name, gaussian_kl_to_standard(mu, log_var), reduction, squeeze=False)
    return pack(
        {"loss_act": recon + kl_weight * kl, "loss_reconstruction": recon.detach(), "loss_kl": kl.detach()},
    )

"""Behaviour cloning as a pure function of the policy's precomputed outputs.

Pomerleau 1991, "Efficient Training of Artificial Neural Networks for Autonomous Navigation";
TorchRL's reference: Goecks et al. 2019, "Integrating Behavior Cloning and Reinforcement Learning
for Improved Performance in Dense and Sparse Reward Environments" (arXiv 1910.04281). Same
outputs and numbers as TorchRL 0.14's ``BCLoss``: the negative log-likelihood of the expert
action under a stochastic policy, or a regression/classification loss between the policy's
prediction and the expert action, with chunked (padded) actions masked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor
from torch.nn import functional as F

from ...errors import EntryDtypeError, EntryShapeError, MaskShapeError
from .._onpolicy import DistClass
from .._td import check_bool, check_constant, check_float, entry, expand_mask, loss_mask, pack, reduce_loss, require
from .._validation import check_choice
from ..distributions import build_distribution
from ..keys import NestedKey
from ._inputs import check_same_shape, open_loss
from .keys import BCKeys

__all__ = ["bc_loss", "BC_LOSS_FUNCTIONS"]

#: the named variants of :func:`bc_loss` (``"l2"`` and ``"mse"`` are the same loss)
BC_LOSS_FUNCTIONS = ("nll", "l1", "l2", "mse", "smooth_l1", "cross_entropy")

_HINTS = {
    "action": "the expert (demonstration) action of the dataset",
    "action_pred": "the policy's predicted action (or logits), written by the actor network",
    "actor_output": "the current policy's distribution parameters (e.g. {'loc', 'scale'}), written by the actor",
}


def padding_mask(loss: str, key: NestedKey, pad: Tensor, value: Tensor) -> Tensor:
    """``~pad`` broadcast to ``value``'s shape; a mask with more dims than the loss is refused."""
    if pad.ndim > value.ndim:
        raise MaskShapeError(
            loss, key,
            f"the padding mask has more dimensions ({pad.ndim}) than the computed loss ({value.ndim}, shape "
            f"{tuple(value.shape)}): per-element masking requires an elementwise loss (e.g. loss_function='l1'), "
            "not a distribution-based (NLL) or cross-entropy loss",
        )
    return expand_mask(loss, ~pad, value, key)


def _regression(name: str, keys: BCKeys, pred: Tensor, expert: Tensor, loss_function: str) -> Tensor:
    check_float(name, keys.action_pred, pred)
    check_float(name, keys.action, expert)
    check_same_shape(name, keys.action_pred, pred, keys.action, expert, "the expert action")
    if loss_function == "l1":
        return F.l1_loss(pred, expert, reduction="none")
    if loss_function == "smooth_l1":
        return F.smooth_l1_loss(pred, expert, reduction="none")
    return F.mse_loss(pred, expert, reduction="none")


def _cross_entropy(name: str, keys: BCKeys, logits: Tensor, expert: Tensor) -> Tensor:
    check_float(name, keys.action_pred, logits)
    if expert.dtype not in (torch.int64, torch.int32):
        raise EntryDtypeError(name, keys.action, f"expected integer class indices, got {expert.dtype}")
    target = expert.squeeze(-1) if expert.ndim > 1 else expert
    if logits.ndim < 1 or target.shape != logits.shape[:-1]:
        raise EntryShapeError(name, keys.action,
                              f"expected class indices of shape {tuple(logits.shape[:-1])} (or with a trailing 1) "
                              f"for the logits {keys.action_pred!r} {tuple(logits.shape)}, got {tuple(expert.shape)}")
    # log-softmax over the last dim: TorchRL's F.cross_entropy for a [B, N] prediction, any batch here
    log_p = torch.log_softmax(logits, -1)
    return -log_p.gather(-1, target.long().unsqueeze(-1)).squeeze(-1)


def bc_loss(
    td: TensorDictBase,
    *,
    loss_function: Literal["nll", "l1", "l2", "mse", "smooth_l1", "cross_entropy"]
    | Callable[[Tensor, Tensor], Tensor] = "nll",
    dist_class: DistClass | None = None,
    reduction: Literal["mean", "sum", "none"] = "mean",
    loss_mask_key: NestedKey | None = "auto",
    keys: BCKeys | Mapping[str, NestedKey | None] | None = None,
) -> TensorDict:
    """Behaviour cloning loss ``loss_bc``.

    ``"nll"``: ``-log pi(a_expert | s)`` from the policy's distribution parameters; ``"l1"``,
    ``"l2"``/``"mse"``, ``"smooth_l1"``: elementwise distance between the prediction and the
    expert action; ``"cross_entropy"``: ``-log softmax(logits)[a_expert]``; a callable
    ``loss_function(prediction, expert)`` returns the loss to reduce. The expert action is
    constant; gradients reach the prediction (or the distribution parameters).

    Args:
        td: input TensorDict (not modified), batch ``[*B]``:

            - ``"action"``: the expert action ``[*B, *A]`` (integer ``[*B]``/``[*B, 1]`` for
              cross-entropy);
            - ``"action_pred"``: the prediction ``[*B, *A]`` (logits ``[*B, N]``), regression,
              cross-entropy and callable variants;
            - ``"actor_output"``: keyword arguments of ``dist_class``, ``"nll"`` only;
            - optional padding mask (``keys.pad_mask``, bool ``[*B]``/``[*B, H]``, ``True`` =
              padded: excluded; elementwise losses only) and validity masks (``loss_mask_key``).
        loss_function: the variant (see above).
        dist_class: the policy's distribution class (``"nll"``), e.g. TorchRL's ``TanhNormal``.
        reduction: ``"mean"`` (over the valid elements), ``"sum"`` or ``"none"`` (the loss's
            shape; with a padding mask, the flat tensor of unpadded elements, as TorchRL).
        loss_mask_key: ``"auto"`` (TorchRL's ``("collector", "mask")``/``"shifted_valid"``), an
            entry name, or ``None``.
        keys: :class:`~torchrl_functional.functional.imitation.BCKeys` or a mapping of renamed entries.

    Returns:
        TensorDict with ``loss_bc``.
    """
    name = "bc_loss"
    keys = open_loss(name, td, reduction, keys, BCKeys)
    if not callable(loss_function):
        check_choice(name, "loss_function", loss_function, BC_LOSS_FUNCTIONS)
    expert = require(name, td, keys.action, _HINTS["action"])
    check_constant(name, keys.action, expert, "the expert action is data")
    if loss_function == "nll":
        check_float(name, keys.action, expert)
        params = require(name, td, keys.actor_output, _HINTS["actor_output"])
        dist = build_distribution(name, keys.actor_output, dist_class, params)
        batch = dist.batch_shape + dist.event_shape
        if expert.shape != batch:
            raise EntryShapeError(name, keys.action, f"expected shape {tuple(batch)} (the batch and event shape of "
                                                     f"the policy {keys.actor_output!r}), got {tuple(expert.shape)}")
        value = -dist.log_prob(expert)
    else:
        pred = require(name, td, keys.action_pred, _HINTS["action_pred"])
        if callable(loss_function):
            value = loss_function(pred, expert)
        elif loss_function == "cross_entropy":
            value = _cross_entropy(name, keys, pred, expert)
        else:
            value = _regression(name, keys, pred, expert, loss_function)
    pad = None if keys.pad_mask is None else entry(td, keys.pad_mask)
    if pad is None:
        loss = reduce_loss(name, value, reduction, loss_mask(name, td, loss_mask_key), squeeze=False)
    else:
        # TorchRL's _reduce_loss under a padding mask: "none" keeps the valid elements only, flat
        check_bool(name, keys.pad_mask, pad)
        unpadded = padding_mask(name, keys.pad_mask, pad, value)
        valid = loss_mask(name, td, loss_mask_key)
        if valid is not None:
            unpadded = unpadded & expand_mask(name, valid, value)
        loss = value[unpadded] if reduction == "none" else reduce_loss(name, value, reduction, unpadded)
    return pack({"loss_bc": loss})

"""Decision Transformer losses as pure functions of the transformer's precomputed outputs.

Chen et al. 2021, "Decision Transformer: Reinforcement Learning via Sequence Modeling"
(arXiv 2106.01345); Zheng et al. 2022, "Online Decision Transformer" (arXiv 2202.05607).
Same outputs and numbers as TorchRL 0.14's ``DTLoss`` and ``OnlineDTLoss``; the online
variant's learnable temperature ``log_alpha`` is an input and its loss ``loss_alpha`` an output.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor

from ...errors import EntryDtypeError, EntryShapeError, HyperparameterError
from .._offpolicy import Number
from .._onpolicy import DistClass
from .._td import check_constant, loss_mask, pack, read_float, reduce_loss, require
from .._validation import check_choice, check_range
from ..distributions import build_distribution, sample_and_log_prob
from ..keys import NestedKey
from ..sac import log_alpha_terms
from ..value_learning import distance_loss
from ._inputs import check_same_shape, open_loss, read_floats
from .keys import DTKeys, OnlineDTKeys

__all__ = ["dt_loss", "online_dt_loss"]

_HINTS = {
    "action_target": "the dataset's action",
    "action_pred": "the transformer's predicted action, written by the actor network",
    "actor_output": "the transformer's distribution parameters (e.g. {'loc', 'scale'}), written by the actor",
}


def check_param_dtypes(loss: str, params_key: NestedKey, params, action_key: NestedKey, action: Tensor) -> None:
    """Distribution parameters in the action's dtype: a mixed-precision policy would draw its
    Monte-Carlo samples in another precision (other numbers), so it is refused."""
    if isinstance(params, Tensor):
        return  # build_distribution explains what it expects
    for leaf_key, leaf in params.items(True, True):
        if isinstance(leaf, Tensor) and leaf.is_floating_point() and leaf.dtype != action.dtype:
            leaf_key = leaf_key if isinstance(leaf_key, tuple) else (leaf_key,)
            full = (params_key if isinstance(params_key, tuple) else (params_key,)) + leaf_key
            raise EntryDtypeError(loss, full, f"dtype {leaf.dtype} differs from the dtype {action.dtype} of the "
                                              f"target action {action_key!r}")


def dt_loss(
    td: TensorDictBase,
    *,
    loss_function: Literal["l2", "l1", "smooth_l1"] = "l2",
    reduction: Literal["mean", "sum", "none"] = "mean",
    loss_mask_key: NestedKey | None = "auto",
    keys: DTKeys | Mapping[str, NestedKey] | None = None,
) -> TensorDict:
    """Decision Transformer loss ``loss = d(a_pred, a)`` (elementwise distance, then reduced).

    Args:
        td: input TensorDict (not modified), batch ``[*B]`` (e.g. ``[B, T]`` sequences):
            ``"action"`` ``[*B, A]`` (the target, detached inside), ``"action_pred"`` ``[*B, A]``
            (with gradients), optional validity masks (``loss_mask_key``).
        loss_function: ``"l2"``, ``"l1"`` or ``"smooth_l1"``.
        reduction: ``"mean"`` (over valid elements), ``"sum"`` or ``"none"`` (``[*B, A]``).
        loss_mask_key: ``"auto"`` (TorchRL's masks), an entry name, or ``None``.
        keys: :class:`~torchrl_functional.functional.imitation.DTKeys` or a mapping of renamed entries.

    Returns:
        TensorDict with ``loss``.
    """
    name = "dt_loss"
    keys = open_loss(name, td, reduction, keys, DTKeys)
    check_choice(name, "loss_function", loss_function, ("l2", "l1", "smooth_l1"))
    target, pred = read_floats(name, td, keys, _HINTS, "action_target", "action_pred")
    check_same_shape(name, keys.action_pred, pred, keys.action_target, target, "the target")
    value = distance_loss(target.detach(), pred, loss_function)
    valid = loss_mask(name, td, loss_mask_key)
    return pack({"loss": reduce_loss(name, value, reduction, valid, squeeze=False)})


def online_dt_loss(
    td: TensorDictBase,
    dist_class: DistClass | None = None,
    *,
    log_alpha: Number = 0.0,
    target_entropy: Number | Literal["auto"] = "auto",
    min_log_alpha: Number | None = None,
    max_log_alpha: Number | None = None,
    samples_mc_entropy: int = 1,
    reduction: Literal["mean", "sum", "none"] = "mean",
    scalar_output_mode: Literal["exclude", "non_tensor"] | None = None,
    loss_mask_key: NestedKey | None = "auto",
    generator: torch.Generator | None = None,
    keys: OnlineDTKeys | Mapping[str, NestedKey] | None = None,
) -> TensorDict:
    """Online Decision Transformer loss: likelihood, entropy bonus and temperature loss.

    ``loss_log_likelihood = -log pi(a | s)``; ``loss_entropy = -alpha * H`` with the Monte-Carlo
    entropy ``H = -mean_k log pi(x_k)`` of ``samples_mc_entropy`` reparameterised samples and
    ``alpha = exp(clamp(log_alpha, min_log_alpha, max_log_alpha))`` detached;
    ``loss_alpha = exp(log_alpha) * (H - target_entropy)`` with ``H`` detached (the gradient
    reaches ``log_alpha`` only). TorchRL clamps its ``log_alpha`` parameter in place before the
    loss; the function leaves the clamp of the learnable value to the caller.

    Args:
        td: input TensorDict (not modified), batch ``[*B]``: ``"action"`` ``[*B, *A]`` (the
            target, constant), ``"actor_output"``: keyword arguments of ``dist_class`` (with
            gradients), optional validity masks (``loss_mask_key``).
        dist_class: the policy's distribution class, e.g. TorchRL's ``TanhNormal``.
        log_alpha: the learnable log-temperature, a number or a 0-d tensor (its graph is kept).
        target_entropy: a number, a 0-d tensor, or ``"auto"``: minus the number of action
            dimensions of one sample (TorchRL's rule).
        min_log_alpha, max_log_alpha: bounds of ``log alpha`` in the entropy bonus (``None``: none).
        samples_mc_entropy: samples ``K`` of the entropy estimate.
        reduction: ``"mean"`` (over valid samples), ``"sum"`` or ``"none"`` (``[*B]`` losses).
        scalar_output_mode: with ``reduction="none"``, ``"non_tensor"`` adds ``alpha`` and
            ``entropy`` as non-tensor entries; ``"exclude"``/``None`` leaves them out.
        loss_mask_key: ``"auto"`` (TorchRL's masks), an entry name, or ``None``.
        generator: :class:`torch.Generator` for the entropy samples; ``None`` draws from the
            global RNG exactly as TorchRL does.
        keys: :class:`~torchrl_functional.functional.imitation.OnlineDTKeys` or a mapping.

    Returns:
        TensorDict with ``loss_log_likelihood``, ``loss_entropy``, ``loss_alpha`` and (reduced)
        ``entropy`` and ``alpha`` (detached).
    """
    name = "online_dt_loss"
    keys = open_loss(name, td, reduction, keys, OnlineDTKeys)
    if scalar_output_mode is not None:
        check_choice(name, "scalar_output_mode", scalar_output_mode, ("exclude", "non_tensor"))
    if isinstance(samples_mc_entropy, bool) or not isinstance(samples_mc_entropy, int) or samples_mc_entropy < 1:
        raise HyperparameterError(name, "samples_mc_entropy", f"expected a positive integer, got {samples_mc_entropy!r}")
    target = read_float(name, td, keys.action_target, _HINTS["action_target"])
    check_constant(name, keys.action_target, target, "the target action is data")
    params = require(name, td, keys.actor_output, _HINTS["actor_output"])
    check_param_dtypes(name, keys.actor_output, params, keys.action_target, target)
    dist = build_distribution(name, keys.actor_output, dist_class, params)
    if dist.batch_shape != td.batch_size or target.shape != dist.batch_shape + dist.event_shape:
        raise EntryShapeError(
            name, keys.action_target,
            f"expected shape {tuple(td.batch_size) + tuple(dist.event_shape)} (the batch of the input and the event "
            f"shape of the policy {keys.actor_output!r}, batch {tuple(dist.batch_shape)}), got {tuple(target.shape)}",
        )
    if isinstance(target_entropy, str):
        check_choice(name, "target_entropy", target_entropy, ("auto",))
        target_entropy = -float(dist.event_shape.numel())
    else:
        check_range(name, "target_entropy", target_entropy)
    log_alpha, _ = log_alpha_terms(name, log_alpha, target)
    alpha = log_alpha.detach()
    if min_log_alpha is not None or max_log_alpha is not None:
        alpha = alpha.clamp(min_log_alpha, max_log_alpha)
    alpha = alpha.exp()

    log_likelihood = dist.log_prob(target)
    _, sample_log_prob = sample_and_log_prob(dist, samples_mc_entropy, reparameterize=True, generator=generator,
                                             loss=name)
    entropy = -sample_log_prob.mean(0)
    out = {
        "loss_log_likelihood": -log_likelihood,
        "loss_entropy": -(alpha * entropy),
        # TorchRL detaches (H - target); a tensor target_entropy keeps its graph here (meta-gradients)
        "loss_alpha": log_alpha.exp() * (entropy.detach() - target_entropy),
    }
    if reduction == "none":
        result = TensorDict(out, batch_size=td.batch_size)
        if scalar_output_mode == "non_tensor":
            result.set_non_tensor("alpha", alpha)
            result.set_non_tensor("entropy", entropy.detach().mean())
        return result
    valid = loss_mask(name, td, loss_mask_key)
    out = {k: reduce_loss(name, v, reduction, valid) for k, v in out.items()}
    out["entropy"] = entropy.detach().mean()
    out["alpha"] = alpha
    return pack(out)

"""GRPO and its DAPO and CISPO variants as pure functions of precomputed token log-probs.

Shao et al. 2024, "DeepSeekMath" (GRPO, arXiv 2402.03300); Yu et al. 2025, "DAPO"
(arXiv 2503.14476: clip-higher, token-level loss); MiniMax 2025, "MiniMax-M1" (CISPO, arXiv
2506.13585). Same outputs and numbers as TorchRL 0.14's ``GRPOLoss``, ``DAPO`` and
``CISPOLoss`` (see :class:`~torchrl_functional.functional.llm.GRPOKeys` for the entries read),
without running a model: the current policy's token log-probs (and entropies) are inputs.

What TorchRL computes, on ``[B, L]`` tokens of which ``mask & isfinite(sample_log_prob)``
are valid (``w = cur_log_prob - sample_log_prob`` on valid tokens, 0 elsewhere):

- ``loss_objective``: the clipped surrogate per token, aggregated over the valid tokens;
- ``clip_fraction``, ``kl_approx`` (k1), ``entropy``: means over all ``B * L`` positions
  (padding included, as TorchRL); ``ESS``: normalised effective sample size of the valid
  tokens' weights;
- ``loss_entropy = -entropy_coeff * H`` aggregated like the objective;
- ``loss_kl_to_ref = kl_to_ref_coeff * mean(k3(ref, cur))`` and the same to the behaviour
  policy (``kl_to_inference_coeff``), means over all positions with invalid tokens at 0.

``kl_mask_threshold`` drops the tokens whose ``w^2 / 2`` exceeds it (KL-Mask) from the
aggregation, the ESS and the KL terms.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypedDict, Unpack

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor

from ...errors import HyperparameterError
from .._td import check_bool, check_float, check_reduction, expand_mask, loss_mask, pack
from .._validation import check_choice, check_range, keyword_options
from ..keys import NestedKey, resolve_keys
from ..policy_gradient import clip_bounds, clipped_surrogate_loss
from ._tokens import TokenLayout, check_log_prob, read_tokens, reference_tokens
from .aggregation import AGGREGATIONS, aggregate_token_loss
from .keys import GRPOKeys
from .kl import kl_token_estimate

__all__ = ["grpo_loss", "dapo_loss", "cispo_loss", "clipped_importance_loss", "GRPOOptions"]

Number = float | Tensor
ClipEpsilon = Number | tuple[Number, Number]

_HINTS = {
    "cur_log_prob": "the current policy's log-probs of the tokens, [B, L]; token_log_probs(logits, tokens, mask) "
                    "computes them from the model's logits",
    "sample_log_prob": "the behaviour policy's log-probs, written by the LLM wrapper at collection ('log_probs', 'full')",
    "mask": "the bool token mask [B, L], written by the LLM wrapper ('masks', ...)",
    "advantage": "the advantage, [B, 1, 1] per sequence or [B, L, 1] per token; group_relative_advantage "
                 "(TorchRL's MCAdvantage) computes it",
    "entropy": "the current policy's per-token entropy [B, L] (token_entropy(logits, mask)); "
               "or pass entropy_bonus=False",
    "ref_log_probs": "the reference policy's log-probs [B, L], written by TorchRL's RetrieveLogProb; "
                     "or pass kl_to_ref_coeff=None",
}


def clipped_importance_loss(
    log_weight: Tensor, advantage: Tensor, clip_epsilon: ClipEpsilon, detach_weight: bool = False
) -> tuple[Tensor, Tensor]:
    """CISPO's clipped importance-sampling loss ``-clip(r, 1 - eps_low, 1 + eps_high) * A``.

    MiniMax 2025, "MiniMax-M1" (arXiv 2506.13585), eq. 4.

    Args:
        log_weight: ``log r = log pi - log pi_old``, ``[*B, 1]``.
        advantage: ``[*B, F]``, used as given.
        clip_epsilon: ``eps`` or ``(eps_low, eps_high)`` (see
            :func:`~torchrl_functional.functional.clip_bounds`).
        detach_weight: ``False`` (TorchRL's ``CISPOLoss``): the gradient of ``clip(r) * A``,
            zero for clipped tokens. ``True`` (the paper): ``sg(clip(r)) * A * grad log pi``,
            every token keeps a gradient; the value is the same.

    Returns:
        ``(loss [*B, F], clipped [*B, 1] bool)``.
    """
    low, high = clip_bounds(clip_epsilon)
    log_weight_clip = torch.clamp(log_weight, low, high)
    clipped = log_weight_clip != log_weight
    ratio = log_weight_clip.exp()
    if detach_weight:
        ratio = ratio.detach() * torch.exp(log_weight - log_weight.detach())
    return -(ratio * advantage), clipped


def _clip_epsilon(loss: str, clip_epsilon: Any) -> tuple[Number, Number]:
    if isinstance(clip_epsilon, (tuple, list)):
        if len(clip_epsilon) != 2:
            raise HyperparameterError(loss, "clip_epsilon", f"expected eps or a pair (eps_low, eps_high), got {clip_epsilon!r}")
        low, high = clip_epsilon
    else:
        low = high = clip_epsilon
    for value in (low, high):
        if isinstance(value, Tensor) and value.ndim != 0:
            raise HyperparameterError(loss, "clip_epsilon", f"a tensor clip_epsilon must be 0-d, got shape {tuple(value.shape)}")
    check_range(loss, "clip_epsilon", low, 0.0, 1.0, high_open=True)
    check_range(loss, "clip_epsilon", high, 0.0)
    return low, high


def _masked_ess(log_weight: Tensor, valid: Tensor) -> Tensor:
    """TorchRL's ``ESS``: ``(sum w)^2 / (n sum w^2)`` over the ``n`` valid tokens, no gradient."""
    with torch.no_grad():
        lw = torch.where(valid, log_weight.squeeze(-1), float("-inf")).flatten()
        ess = (2 * lw.logsumexp(0) - (2 * lw).logsumexp(0)).exp()
        return ess / valid.sum()


def _kl_penalty(target: Tensor, cur: Tensor, valid: Tensor) -> Tensor:
    """Mean over all positions of ``k3(target, cur)``, invalid tokens counting 0 (TorchRL)."""
    zero = torch.zeros((), dtype=cur.dtype, device=cur.device)
    return kl_token_estimate(torch.where(valid, target, zero), torch.where(valid, cur, zero), "k3").mean()


class GRPOOptions(TypedDict, total=False):
    """The keyword options of :func:`grpo_loss`, :func:`dapo_loss` and :func:`cispo_loss`, declared once.
    Every hyperparameter given as a number can be a tensor carrying gradients.

    Attributes:
        clip_epsilon: ``eps`` or ``(eps_low, eps_high)`` (DAPO's clip-higher); ``0 <=
            eps_low < 1``, ``eps_high >= 0``. Default ``0.2``; ``(0.2, 0.28)`` for
            :func:`dapo_loss`.
        kl_mask_threshold: drop tokens with ``(cur - behaviour)^2 / 2 > threshold`` (KL-Mask);
            default ``None``.
        aggregation: ``"token_mean"`` (default), ``"prompt_mean"`` or ``"none"`` (see
            :func:`~torchrl_functional.functional.llm.aggregate_token_loss`).
        entropy_bonus, entropy_coeff: add ``loss_entropy = -entropy_coeff * H`` (defaults
            ``True``, ``0.01``).
        kl_to_ref_coeff: coefficient of the k3 KL to the reference policy (default ``None``:
            off; TorchRL's class also turns it off for ``0``).
        kl_to_inference_coeff: coefficient of the k3 KL to the behaviour policy (default
            ``None``: off).
        reduction: ``"none"`` returns per-token losses like ``aggregation="none"``; ``"mean"``
            (default) and ``"sum"`` leave the aggregation as chosen (as TorchRL).
        loss_mask_key: sample-level masks of the data applied by the token mean (``"auto"``,
            the default: ``("collector", "mask")`` and ``"shifted_valid"`` when present).
    """

    clip_epsilon: ClipEpsilon
    kl_mask_threshold: Number | None
    aggregation: Literal["token_mean", "prompt_mean", "none"]
    entropy_bonus: bool
    entropy_coeff: Number
    kl_to_ref_coeff: Number | None
    kl_to_inference_coeff: Number | None
    reduction: Literal["mean", "sum", "none"]
    loss_mask_key: NestedKey | None


GRPO_DEFAULTS: dict[str, Any] = {
    "clip_epsilon": 0.2, "kl_mask_threshold": None, "aggregation": "token_mean", "entropy_bonus": True,
    "entropy_coeff": 0.01, "kl_to_ref_coeff": None, "kl_to_inference_coeff": None, "reduction": "mean",
    "loss_mask_key": "auto",
}
#: DAPO's paper default, clip-higher (TorchRL's ``DAPO`` class defaults to ``0.2``)
DAPO_DEFAULTS: dict[str, Any] = {**GRPO_DEFAULTS, "clip_epsilon": (0.2, 0.28)}


def _policy_loss(
    name: str,
    td: TensorDictBase,
    objective: Literal["ppo", "cispo"],
    keys: GRPOKeys | Mapping[str, NestedKey] | None,
    options: Mapping[str, Any],
    defaults: Mapping[str, Any] = GRPO_DEFAULTS,
    detach_weight: bool = False,
) -> TensorDict:
    o = keyword_options(name, options, defaults)
    aggregation, reduction, kl_mask_threshold = o["aggregation"], o["reduction"], o["kl_mask_threshold"]
    kl_to_ref_coeff, kl_to_inference_coeff = o["kl_to_ref_coeff"], o["kl_to_inference_coeff"]
    if not isinstance(td, TensorDictBase):
        raise TypeError(f"{name}: expected a TensorDict, got {type(td).__name__}")
    check_choice(name, "aggregation", aggregation, AGGREGATIONS)
    check_reduction(name, reduction)
    bounds = _clip_epsilon(name, o["clip_epsilon"])
    for hyper, value in (("kl_mask_threshold", kl_mask_threshold), ("kl_to_ref_coeff", kl_to_ref_coeff),
                         ("kl_to_inference_coeff", kl_to_inference_coeff)):
        if value is not None:
            check_range(name, hyper, value, 0.0)
    keys = resolve_keys(keys, GRPOKeys, name)

    cur, layout = reference_tokens(name, td, keys.cur_log_prob, _HINTS["cur_log_prob"])
    check_log_prob(name, keys.cur_log_prob, cur)
    prev = _read(name, td, keys, "sample_log_prob", layout)
    check_log_prob(name, keys.sample_log_prob, prev, constant=True)
    mask = _read(name, td, keys, "mask", layout)
    check_bool(name, keys.mask, mask)
    advantage = _read(name, td, keys, "advantage", layout, trailing=(1,), per_sequence=True)
    check_float(name, keys.advantage, advantage)

    # alignment pads hold non-finite behaviour log-probs: never a token of the loss
    valid = mask & torch.isfinite(prev)
    zero = torch.zeros((), dtype=cur.dtype, device=cur.device)
    cur = torch.where(valid, cur, zero)
    prev_valid = torch.where(valid, prev, zero)
    log_weight = (cur - prev_valid).unsqueeze(-1)
    if kl_mask_threshold is not None:
        valid = valid & (kl_token_estimate(cur, prev_valid, "k2") <= kl_mask_threshold)

    if objective == "cispo":
        loss_objective, clipped = clipped_importance_loss(log_weight, advantage, bounds, detach_weight)
    else:
        loss_objective, clipped = clipped_surrogate_loss(log_weight, advantage, bounds)
    out: dict[str, Tensor] = {
        "loss_objective": loss_objective,
        "clip_fraction": clipped.to(log_weight.dtype).mean(),
        "kl_approx": kl_token_estimate(cur, prev_valid, "k1").detach().mean(),
    }
    if o["entropy_bonus"]:
        entropy = _read(name, td, keys, "entropy", layout)
        check_float(name, keys.entropy, entropy)
        out["entropy"] = entropy.detach().mean()
        out["loss_entropy"] = -o["entropy_coeff"] * entropy.unsqueeze(-1)
    out["ESS"] = _masked_ess(log_weight, valid)

    if reduction == "none":
        aggregation = "none"
    aggregation_mask = valid.unsqueeze(-1)
    if aggregation == "token_mean":
        # sample-level validity masks of the data, as TorchRL's token mean (LossModule._reduce_loss)
        sample_mask = loss_mask(name, td, o["loss_mask_key"])
        if sample_mask is not None:
            aggregation_mask = aggregation_mask & expand_mask(name, sample_mask, loss_objective)
    for key in ("loss_objective", "loss_entropy"):
        if key in out:
            out[key] = aggregate_token_loss(out[key], aggregation_mask, aggregation)

    if kl_to_ref_coeff is not None:
        ref = _read(name, td, keys, "ref_log_probs", layout, squeeze_trailing=True)
        check_log_prob(name, keys.ref_log_probs, ref)
        kl = _kl_penalty(ref, cur, valid)
        out["loss_kl_to_ref"] = kl_to_ref_coeff * kl
        out["kl_to_ref"] = kl.detach()
    if kl_to_inference_coeff is not None:
        kl = _kl_penalty(prev, cur, valid)
        out["loss_kl_to_inference"] = kl_to_inference_coeff * kl
        out["kl_to_inference"] = kl.detach()
    return pack(out)


def _read(name: str, td: TensorDictBase, keys: GRPOKeys, field: str, layout: TokenLayout, **kwargs: Any) -> Tensor:
    return read_tokens(name, td, getattr(keys, field), layout, _HINTS[field], **kwargs)


def grpo_loss(
    td: TensorDictBase,
    *,
    keys: GRPOKeys | Mapping[str, NestedKey] | None = None,
    **options: Unpack[GRPOOptions],
) -> TensorDict:
    """GRPO: the PPO clipped surrogate per token, ``-min(r A, clip(r, 1 - eps, 1 + eps) A)``.

    Shao et al. 2024, "DeepSeekMath" (arXiv 2402.03300), with TorchRL 0.14's ``GRPOLoss``
    options.

    Args:
        td: input TensorDict (not modified), per-token entries ``[B, L]`` dense, nested or
            ragged (a lazy stack of sequences): ``"cur_log_prob"`` (with gradients),
            ``("log_probs", "full")`` (behaviour, constant), ``("masks",
            "all_assistant_mask")`` (bool), ``"advantage"`` ``[B, L, 1]`` or ``[B, 1, 1]``
            (used as given, keeps its graph), ``"entropy"`` with ``entropy_bonus``,
            ``("next", "ref_log_probs", "full")`` with ``kl_to_ref_coeff``. See
            :class:`~torchrl_functional.functional.llm.GRPOKeys`.
        keys: renamed entries.
        **options: :class:`~torchrl_functional.functional.llm.GRPOOptions`: ``clip_epsilon``
            (default ``0.2``), ``kl_mask_threshold``, ``aggregation``, ``entropy_bonus``,
            ``entropy_coeff``, ``kl_to_ref_coeff``, ``kl_to_inference_coeff``, ``reduction``,
            ``loss_mask_key``.

    Returns:
        TensorDict with ``loss_objective``, ``clip_fraction``, ``kl_approx``, ``ESS``, and as
        enabled ``entropy``, ``loss_entropy``, ``loss_kl_to_ref``, ``kl_to_ref``,
        ``loss_kl_to_inference``, ``kl_to_inference``. Only the ``loss_*`` entries carry
        gradients; the behaviour and reference log-probs are constants.
    """
    return _policy_loss("grpo_loss", td, "ppo", keys, options)


def dapo_loss(
    td: TensorDictBase,
    *,
    keys: GRPOKeys | Mapping[str, NestedKey] | None = None,
    **options: Unpack[GRPOOptions],
) -> TensorDict:
    """DAPO: GRPO with clip-higher, ``clip(r, 1 - eps_low, 1 + eps_high)``, and the token-level mean.

    Yu et al. 2025, "DAPO" (arXiv 2503.14476), eq. 10 (recommended ``(0.2, 0.28)``, the
    default here; TorchRL's ``DAPO`` class defaults to ``0.2``). Dynamic sampling lives on
    the data side: :func:`~torchrl_functional.functional.llm.dynamic_sampling_mask`.

    Args:
        td, keys: as :func:`grpo_loss` (per-token entries ``[B, L]``, the advantage
            ``[B, 1]`` or ``[B, L]``).
        **options: :class:`~torchrl_functional.functional.llm.GRPOOptions`, with
            ``clip_epsilon=(0.2, 0.28)`` by default.

    Returns:
        The outputs of :func:`grpo_loss`.
    """
    return _policy_loss("dapo_loss", td, "ppo", keys, options, DAPO_DEFAULTS)


def cispo_loss(
    td: TensorDictBase,
    *,
    detach_clipped_weight: bool = False,
    keys: GRPOKeys | Mapping[str, NestedKey] | None = None,
    **options: Unpack[GRPOOptions],
) -> TensorDict:
    """CISPO: the clipped importance weight times the advantage, ``-clip(r, 1 - eps_low, 1 + eps_high) A``.

    MiniMax 2025, "MiniMax-M1" (arXiv 2506.13585), with TorchRL 0.14's ``CISPOLoss`` pipeline
    (masking, ESS, entropy, KL terms as :func:`grpo_loss`).

    Args:
        td, keys: as :func:`grpo_loss` (per-token entries ``[B, L]``, the advantage
            ``[B, 1]`` or ``[B, L]``).
        detach_clipped_weight: ``False`` (TorchRL): differentiate ``clip(r) A``, so clipped
            tokens get no gradient; ``True`` (the paper): ``sg(clip(r)) A grad log pi`` on
            every token (same value; see :func:`clipped_importance_loss`).
        **options: :class:`~torchrl_functional.functional.llm.GRPOOptions` (default
            ``clip_epsilon=0.2``).

    Returns:
        The outputs of :func:`grpo_loss`.
    """
    return _policy_loss("cispo_loss", td, "cispo", keys, options, detach_weight=detach_clipped_weight)

"""Supervised fine-tuning (and MinorSFT) as a pure function of precomputed token log-probs.

Same outputs and numbers as TorchRL 0.14's ``SFTLoss`` (see
:class:`~torchrl_functional.functional.llm.SFTKeys` for the entries read), without running
the model or the tokenizer: the log-probs of the target tokens and the mask of the
supervised (assistant) tokens are inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor
from torch.nn import functional as F

from .._td import check_bool, check_reduction, pack
from .._validation import check_choice, check_range
from ..keys import NestedKey, resolve_keys
from ._tokens import TokenLayout, check_log_prob, read_tokens, reference_tokens
from .aggregation import reduce_sequences, sequence_sum
from .keys import SFTKeys
from .kl import kl_token_estimate

__all__ = ["sft_loss"]

Number = float | Tensor

_HINTS = {
    "log_probs": "the trained model's log-probs of the target tokens [B, L] (the LLM wrapper's ('log_probs', 'full'))",
    "mask": "the bool mask of the supervised (assistant) tokens [B, L] (the LLM wrapper's ('masks', ...))",
    "ref_log_prob": "the reference model's log-probs [B, L], written by TorchRL's RetrieveLogProb",
}


def token_kl_to_ref(ref_log_prob: Tensor, log_prob: Tensor, layout: TokenLayout) -> Tensor:
    """Mean of the k3 estimate ``KL(pi || ref)`` over every token of the data (TorchRL's
    ``SFTLoss._kl_to_ref``: positions of ragged sequences' padding do not count)."""
    return kl_token_estimate(ref_log_prob, log_prob, "k3").sum() / layout.n_tokens()


def sft_loss(
    td: TensorDictBase,
    *,
    reduction: Literal["mean", "sum", "none"] = "mean",
    normalize_by_seq_length: bool = True,
    kl_to_ref_coeff: Number | None = None,
    loss_function: Literal["sft", "minor_sft"] = "sft",
    beta: Number = 0.1,
    keys: SFTKeys | Mapping[str, NestedKey] | None = None,
) -> TensorDict:
    """SFT: the negative log-likelihood of the supervised tokens, per sequence.

    ``loss_sft = -reduce(s)`` with ``s`` the sum of a sequence's masked log-probs (divided by
    its number of supervised tokens with ``normalize_by_seq_length``). MinorSFT (Xie et al.
    2024, arXiv 2408.10642): ``loss_sft = reduce(-log sigmoid(beta (s - s_ref)))`` with
    ``s_ref`` the same sum of the reference log-probs over *all* the sequence's tokens (as
    TorchRL; TorchRL's ``RetrieveLogProb(assistant_only=True)`` zero-fills the others).

    Args:
        td: input TensorDict (not modified), per-token entries ``[B, L]`` dense, nested or
            ragged: ``("log_probs", "full")`` (with gradients), ``("masks",
            "all_assistant_mask")`` (bool), ``("next", "ref_log_probs", "full")`` for the KL
            term and MinorSFT (used as given). See
            :class:`~torchrl_functional.functional.llm.SFTKeys`.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[B]``) over sequences.
        normalize_by_seq_length: divide each sequence's sum by its number of supervised tokens.
        kl_to_ref_coeff: with ``loss_function="sft"``, adds ``loss_kl_to_ref = coeff * KL``
            (k3, mean over every token, unsupervised ones counting ``k3(ref, 0)``); with
            MinorSFT the KL is reported detached (TorchRL's class sets the coefficient to 0).
        loss_function: ``"sft"`` or ``"minor_sft"``.
        beta: MinorSFT's temperature (``> 0``).
        keys: renamed entries.

    Returns:
        TensorDict with ``loss_sft`` and, with ``kl_to_ref_coeff``, ``loss_kl_to_ref`` and
        ``kl_to_ref`` (detached).
    """
    name = "sft_loss"
    if not isinstance(td, TensorDictBase):
        raise TypeError(f"{name}: expected a TensorDict, got {type(td).__name__}")
    check_choice(name, "loss_function", loss_function, ("sft", "minor_sft"))
    check_reduction(name, reduction)
    if kl_to_ref_coeff is not None:
        check_range(name, "kl_to_ref_coeff", kl_to_ref_coeff, 0.0)
    if loss_function == "minor_sft":
        check_range(name, "beta", beta, 0.0, low_open=True)
    keys = resolve_keys(keys, SFTKeys, name)
    log_probs, layout = reference_tokens(name, td, keys.log_probs, _HINTS["log_probs"])
    check_log_prob(name, keys.log_probs, log_probs)
    mask = read_tokens(name, td, keys.mask, layout, _HINTS["mask"])
    check_bool(name, keys.mask, mask)
    ref = None
    if kl_to_ref_coeff is not None or loss_function == "minor_sft":
        ref = read_tokens(name, td, keys.ref_log_prob, layout, _HINTS["ref_log_prob"])
        check_log_prob(name, keys.ref_log_prob, ref)

    summed = sequence_sum(log_probs, mask, normalize_by_seq_length)
    masked_log_probs = torch.where(mask, log_probs, torch.zeros((), dtype=log_probs.dtype, device=log_probs.device))
    out: dict[str, Tensor] = {}
    if loss_function == "sft":
        out["loss_sft"] = reduce_sequences(-summed, reduction)
        if kl_to_ref_coeff is not None:
            kl = token_kl_to_ref(ref, masked_log_probs, layout)
            out["loss_kl_to_ref"] = kl_to_ref_coeff * kl
            out["kl_to_ref"] = kl.detach()
        return pack(out)
    summed_ref = ref.sum(-1)
    if normalize_by_seq_length:
        summed_ref = summed_ref / mask.sum(-1).clamp(min=1)
    out["loss_sft"] = reduce_sequences(-F.logsigmoid(beta * (summed - summed_ref)), reduction)
    if kl_to_ref_coeff is not None:
        with torch.no_grad():  # MinorSFT regularises implicitly: the KL is reported only
            kl = token_kl_to_ref(ref, masked_log_probs, layout)
            out["loss_kl_to_ref"] = kl_to_ref_coeff * kl
            out["kl_to_ref"] = kl
    return pack(out)

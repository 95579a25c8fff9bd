"""Token-level knowledge distillation as a pure function of student and teacher log-probs.

Agarwal et al. 2024, "On-Policy Distillation of Language Models: Learning from
Self-Generated Mistakes" (arXiv 2306.13649). Same outputs and numbers as TorchRL 0.14's
``DistillationLoss`` (see :class:`~torchrl_functional.functional.llm.DistillationKeys`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
from tensordict import TensorDict, TensorDictBase

from .._td import check_bool, check_reduction, pack
from .._validation import check_choice
from ..keys import NestedKey, resolve_keys
from ._tokens import check_log_prob, read_tokens, reference_tokens
from .aggregation import reduce_sequences, sequence_sum
from .keys import DistillationKeys
from .kl import kl_token_estimate

__all__ = ["distillation_loss"]

_HINTS = {
    "log_probs": "the student's log-probs of the scored tokens [B, L] (the LLM wrapper's ('log_probs', 'full'))",
    "mask": "the bool mask of the distilled tokens [B, L] (the LLM wrapper's ('masks', ...))",
    "teacher_log_prob": "the teacher's log-probs [B, L], written by TorchRL's RetrieveLogProb(teacher, "
                        "log_probs_full_key=('teacher_log_probs', 'full'))",
}


def distillation_loss(
    td: TensorDictBase,
    *,
    kl_direction: Literal["reverse", "forward"] = "reverse",
    reduction: Literal["mean", "sum", "none"] = "mean",
    normalize_by_seq_length: bool = True,
    keys: DistillationKeys | Mapping[str, NestedKey] | None = None,
) -> TensorDict:
    """Distillation: the per-token k3 KL estimate between student and teacher, summed per sequence.

    ``"reverse"`` estimates ``KL(student || teacher)`` (tokens sampled from the student,
    on-policy), ``"forward"`` ``KL(teacher || student)`` (teacher-generated tokens). Each
    sequence's sum over its masked tokens is divided by their number with
    ``normalize_by_seq_length``, then reduced over sequences.

    Args:
        td: input TensorDict (not modified), per-token entries ``[B, L]`` dense, nested or
            ragged: ``("log_probs", "full")`` (student, with gradients), ``("next",
            "teacher_log_probs", "full")`` (**detached** inside), ``("masks",
            "all_assistant_mask")`` (bool). See
            :class:`~torchrl_functional.functional.llm.DistillationKeys`.
        kl_direction: ``"reverse"`` or ``"forward"``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[B]``) over sequences.
        normalize_by_seq_length: divide each sequence's KL by its number of masked tokens.
        keys: renamed entries.

    Returns:
        TensorDict with ``loss_distill`` and ``kl_to_teacher`` (the detached mean per-sequence KL).
    """
    name = "distillation_loss"
    if not isinstance(td, TensorDictBase):
        raise TypeError(f"{name}: expected a TensorDict, got {type(td).__name__}")
    check_choice(name, "kl_direction", kl_direction, ("reverse", "forward"))
    check_reduction(name, reduction)
    keys = resolve_keys(keys, DistillationKeys, name)
    log_probs, layout = reference_tokens(name, td, keys.log_probs, _HINTS["log_probs"])
    check_log_prob(name, keys.log_probs, log_probs)
    mask = read_tokens(name, td, keys.mask, layout, _HINTS["mask"])
    check_bool(name, keys.mask, mask)
    teacher = read_tokens(name, td, keys.teacher_log_prob, layout, _HINTS["teacher_log_prob"])
    check_log_prob(name, keys.teacher_log_prob, teacher)

    zero = torch.zeros((), dtype=log_probs.dtype, device=log_probs.device)
    student = torch.where(mask, log_probs, zero)
    teacher = torch.where(mask, teacher.detach(), zero)
    if kl_direction == "reverse":
        kl = kl_token_estimate(teacher, student, "k3")
    else:
        kl = kl_token_estimate(student, teacher, "k3")
    summed = sequence_sum(kl, mask, normalize_by_seq_length)
    return pack({"loss_distill": reduce_sequences(summed, reduction), "kl_to_teacher": summed.detach().mean()})

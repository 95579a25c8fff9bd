"""Entry names read by the LLM post-training losses (TorchRL 0.14's names where TorchRL has one).

Rename entries with ``replace`` as for the other keys objects::

    keys = GRPOKeys().replace(mask=("masks", "all_attention_mask"))
    grpo_loss(td, keys=keys)

Every per-token entry is ``[B, L]``: a dense (padded) tensor, a nested tensor with a ragged
last dimension, or the leaves of a lazy stack of ``B`` sequences of different lengths
(TorchRL's LLM data); see :mod:`torchrl_functional.functional.llm`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..keys import NestedKey, _Keys

__all__ = ["GRPOKeys", "SFTKeys", "DistillationKeys"]

#: TorchRL's LLM wrappers write the assistant-token mask here (``Masks.all_assistant_mask``).
ASSISTANT_MASK = ("masks", "all_assistant_mask")


@dataclass(frozen=True)
class GRPOKeys(_Keys):
    """Entries read by :func:`grpo_loss`, :func:`dapo_loss` and :func:`cispo_loss`.

    Attributes:
        cur_log_prob: log-probs of the sampled tokens under the *current* policy, ``[B, L]``
            (with gradients; :func:`token_log_probs` computes them from logits).
        sample_log_prob: the same under the behaviour (inference) policy, ``[B, L]``
            (constant; non-finite values mark tokens to ignore, as TorchRL's alignment pads).
        advantage: ``[B, L, 1]`` per token or ``[B, 1, 1]`` per sequence (used as given).
        mask: bool ``[B, L]``: the tokens the loss is computed on (response, assistant or
            attended tokens, TorchRL's ``masking_strategy``).
        entropy: per-token entropy of the current policy, ``[B, L]`` (with gradients; read
            when ``entropy_bonus``; :func:`token_entropy` computes it from logits).
        ref_log_probs: reference-policy log-probs of the tokens, ``[B, L]`` (constant; read
            when ``kl_to_ref_coeff`` is set).
    """

    cur_log_prob: NestedKey = "cur_log_prob"
    sample_log_prob: NestedKey = ("log_probs", "full")
    advantage: NestedKey = "advantage"
    mask: NestedKey = ASSISTANT_MASK
    entropy: NestedKey = "entropy"
    ref_log_probs: NestedKey = ("next", "ref_log_probs", "full")


@dataclass(frozen=True)
class SFTKeys(_Keys):
    """Entries read by :func:`sft_loss`.

    Attributes:
        log_probs: log-probs of the target tokens under the model being trained, ``[B, L]``
            (with gradients).
        mask: bool ``[B, L]``: the tokens supervised (assistant tokens).
        ref_log_prob: reference-model log-probs, ``[B, L]`` (read for the KL term and for
            ``loss_function="minor_sft"``).
    """

    log_probs: NestedKey = ("log_probs", "full")
    mask: NestedKey = ASSISTANT_MASK
    ref_log_prob: NestedKey = ("next", "ref_log_probs", "full")


@dataclass(frozen=True)
class DistillationKeys(_Keys):
    """Entries read by :func:`distillation_loss`.

    Attributes:
        log_probs: student log-probs of the scored tokens, ``[B, L]`` (with gradients).
        mask: bool ``[B, L]``: the tokens distilled on.
        teacher_log_prob: teacher log-probs of the same tokens, ``[B, L]`` (detached inside).
    """

    log_probs: NestedKey = ("log_probs", "full")
    mask: NestedKey = ASSISTANT_MASK
    teacher_log_prob: NestedKey = ("next", "teacher_log_probs", "full")

"""LLM post-training losses as pure functions of precomputed token-level log-probs.

TensorDict losses: :func:`grpo_loss`, :func:`dapo_loss`, :func:`cispo_loss` (TorchRL's
``GRPOLoss``, ``DAPO``, ``CISPOLoss``), :func:`sft_loss` (``SFTLoss``, MinorSFT included),
:func:`distillation_loss` (``DistillationLoss``). Kernels: token log-probs and entropies from
logits (:mod:`.logits`), per-token KL estimators (:mod:`.kl`), group-relative advantages
(``MCAdvantage``'s math, :mod:`.advantage`), token aggregation (:mod:`.aggregation`).

Per-token entries are ``[B, L]`` (one sequence per row): dense tensors (padded data), nested
tensors with a ragged last dimension, or the leaves of a lazy stack of sequences of
different lengths, as TorchRL's LLM wrappers write them with ``pad_output=False``. Ragged
sequences are aligned on their last token (padded on the left, TorchRL's convention).
"""

from .advantage import dynamic_sampling_mask, group_relative_advantage, trajectory_return
from .aggregation import AGGREGATIONS, aggregate_token_loss, reduce_sequences, sequence_sum
from .distillation import distillation_loss
from .grpo import GRPOOptions, cispo_loss, clipped_importance_loss, dapo_loss, grpo_loss
from .keys import DistillationKeys, GRPOKeys, SFTKeys
from .kl import KL_ESTIMATORS, kl_token_estimate
from .logits import token_entropy, token_log_probs
from .sft import sft_loss

__all__ = [
    "grpo_loss",
    "dapo_loss",
    "cispo_loss",
    "sft_loss",
    "distillation_loss",
    "GRPOKeys",
    "GRPOOptions",
    "SFTKeys",
    "DistillationKeys",
    "clipped_importance_loss",
    "token_log_probs",
    "token_entropy",
    "kl_token_estimate",
    "KL_ESTIMATORS",
    "group_relative_advantage",
    "trajectory_return",
    "dynamic_sampling_mask",
    "aggregate_token_loss",
    "sequence_sum",
    "reduce_sequences",
    "AGGREGATIONS",
]

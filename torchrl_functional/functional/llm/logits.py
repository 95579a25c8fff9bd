"""Token-level quantities of a causal LM's logits: log-probs of given tokens and entropy.

These are what an LLM loss needs from the model: the drop-in modules compute them from the
logits TorchRL's LLM wrappers return, and a custom training loop calls them on the logits of
its own forward pass. Same numbers as TorchRL's ``LLMMaskedCategorical`` with a
position-level mask.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ["token_log_probs", "token_entropy", "IGNORE_INDEX"]

#: Token id that marks a position without a target (``cross_entropy``'s ``ignore_index``).
IGNORE_INDEX = -100


def token_log_probs(logits: Tensor, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
    """``log softmax(logits)[token]`` at every position; 0 where ``mask`` is False.

    Args:
        logits: ``[*B, L, V]`` (aligned with ``tokens``: position ``t`` scores token ``t``).
        tokens: ``[*B, L]`` integer ids; ``-100`` marks a position without a token.
        mask: optional bool ``[*B, L]``; masked positions get 0 (and no gradient).

    Returns:
        ``[*B, L]`` log-probs, differentiable w.r.t. ``logits``.
    """
    if mask is not None:
        tokens = tokens.masked_fill(~mask, IGNORE_INDEX)
    flat = -F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1), reduction="none", ignore_index=IGNORE_INDEX
    )
    return flat.reshape(tokens.shape)


def token_entropy(logits: Tensor, mask: Tensor | None = None) -> Tensor:
    """Entropy of the next-token distribution ``softmax(logits)`` at every position.

    Args:
        logits: ``[*B, L, V]``.
        mask: optional bool ``[*B, L]``; masked positions get 0 (and no gradient), as
            TorchRL's ``LLMMaskedCategorical.entropy``.

    Returns:
        ``[*B, L]`` entropies, differentiable w.r.t. ``logits``.
    """
    log_p = torch.log_softmax(logits, dim=-1)
    entropy = -(log_p.exp() * log_p).sum(-1)
    if mask is not None:
        entropy = torch.where(mask, entropy, torch.zeros_like(entropy))
    return entropy

"""The impure part of the LLM drop-in modules: run TorchRL's LLM wrapper (the policy's
next-token distribution, or its log-probs), gather the token masks (from the data, or by
re-applying the chat template), and lay the entries out for the functional loss, reading
the data with TorchRL's padding conventions. No loss math here."""

from __future__ import annotations

import contextlib
from typing import Any, NamedTuple

import torch
from tensordict import LazyStackedTensorDict, TensorDict, TensorDictBase, lazy_stack
from tensordict.nn import ProbabilisticTensorDictModule, ProbabilisticTensorDictSequential
from torch import Tensor
from torchrl.objectives.llm._utils import _runtime_device

from ...errors import EmptyMaskError, EntryShapeError, ZeroFilledEntryError
from ...functional._td import AUTO_LOSS_MASK_KEYS, missing
from ...functional.llm import GRPOKeys, token_entropy, token_log_probs

__all__ = ["grpo_inputs", "grpo_hyperparameters", "chat_masks", "run_log_probs", "sequences"]

TORCHRL_MASKS = (("masks", "all_assistant_mask"), ("masks", "all_attention_mask"))


def _device_context(loss: Any, td: TensorDictBase, *values: Any):
    device = _runtime_device(loss.actor_network, td, *values, fallback=loss._device_fallback)
    return torch.device(device) if device is not None else contextlib.nullcontext()


# ----------------------------------------------------------------------------- GRPO family


def _policy_distribution(loss: Any, td: TensorDictBase):
    """The wrapper's masked next-token distribution for the loss's ``masking_strategy``."""
    actor = loss.actor_network
    if not (
        isinstance(actor, (ProbabilisticTensorDictSequential, ProbabilisticTensorDictModule)) or hasattr(actor, "get_dist")
    ):
        raise NotImplementedError(f"{type(loss).__name__}: the actor network must have a get_dist method")
    methods = {"sft": "_get_sft_dist", "rlhf": "_get_rlhf_dist", "generic": "_get_generic_dist"}
    method = methods.get(loss.masking_strategy)
    if method is not None and hasattr(actor, method):
        dist = getattr(actor, method)(td)
    elif hasattr(actor, "get_dist"):
        dist = actor.get_dist(td, logits_key="logits")
    else:
        raise NotImplementedError(
            f"{type(loss).__name__}: the actor network has no get_dist for masking strategy {loss.masking_strategy!r}"
        )
    if not (isinstance(getattr(dist, "logits", None), Tensor) and isinstance(getattr(dist, "mask", None), Tensor)):
        raise NotImplementedError(f"{type(loss).__name__}: expected a masked categorical over tokens, got {type(dist).__name__}")
    return dist


def grpo_inputs(loss: Any, tensordict: TensorDictBase) -> TensorDict:
    """Run the policy on the data and return the entries :func:`grpo_loss` reads (default
    :class:`~torchrl_functional.functional.llm.GRPOKeys` names), padded as TorchRL pads them."""
    name = type(loss).__name__
    tk = loss.tensor_keys
    out_keys = GRPOKeys()
    if tk.action not in tensordict.keys(True):
        raise missing(name, tk.action, "the sampled tokens, written by the LLM wrapper at collection")
    td = tensordict.copy()  # the wrapper may update the tokens of the copy (rlhf masking)
    advantage = td.get(tk.advantage, None, as_padded_tensor=True, padding_side=loss.advantage_padding_side)
    if advantage is None:
        raise missing(name, tk.advantage, "the advantage, e.g. written by TorchRL's MCAdvantage")
    dist = _policy_distribution(loss, td)
    action = td.get(tk.action, as_padded_tensor=True, padding_side="left", padding_value=-100)
    logits, mask = dist.logits, dist.mask
    if action.shape != mask.shape:
        raise EntryShapeError(
            name, tk.action,
            f"the tokens {list(action.shape)} do not match the policy's mask {list(mask.shape)}: the masking "
            f"strategy {loss.masking_strategy!r} must match the one the data was prepared with",
        )
    prev = td.get(tk.sample_log_prob, None, as_padded_tensor=True, padding_side="left", padding_value=0.0)
    if prev is None:
        raise missing(name, tk.sample_log_prob, "the behaviour log-probs, written by the LLM wrapper at collection")
    entries = {
        out_keys.cur_log_prob: token_log_probs(logits, action, mask),
        out_keys.sample_log_prob: prev,
        out_keys.advantage: advantage,
        out_keys.mask: mask,
    }
    if loss.entropy_bonus:
        entries[out_keys.entropy] = token_entropy(logits, mask)
    if _kl_to_ref_coeff(loss) is not None:
        ref = td.get(
            tk.ref_log_probs, None, as_padded_tensor=True,
            padding_side=loss.ref_log_prob_padding_side, padding_value=loss.ref_log_prob_padding_value,
        )
        if ref is None:
            raise missing(name, tk.ref_log_probs, "the reference log-probs, written by TorchRL's RetrieveLogProb")
        entries[out_keys.ref_log_probs] = ref
    mask_key = loss.loss_mask_key
    for key in AUTO_LOSS_MASK_KEYS if mask_key == "auto" else (() if mask_key is None else (mask_key,)):
        value = td.get(key, None)
        if value is not None:
            entries[key] = value
    return TensorDict(entries, batch_size=mask.shape[:1])


def _kl_to_ref_coeff(loss: Any):
    coeff = loss.kl_to_ref_coeff
    return coeff if coeff is not None and coeff > 0 else None


def grpo_hyperparameters(loss: Any) -> dict[str, Any]:
    """The module's options as keyword arguments of the functional loss (TorchRL's gates:
    a KL-to-reference coefficient or a KL-mask threshold <= 0 turns the term off)."""
    threshold = loss.kl_mask_threshold
    return {
        "clip_epsilon": (loss.clip_epsilon_low, loss.clip_epsilon_high),
        "kl_mask_threshold": threshold if threshold is not None and threshold > 0 else None,
        "aggregation": loss.aggregation,
        "entropy_bonus": bool(loss.entropy_bonus),
        "entropy_coeff": loss.entropy_coeff,
        "kl_to_ref_coeff": _kl_to_ref_coeff(loss),
        "kl_to_inference_coeff": loss.kl_to_inference_coeff,
        "reduction": loss.reduction,
        "loss_mask_key": loss.loss_mask_key,
    }


# ----------------------------------------------------------------------------- SFT, distillation


def _as_list(value: Any) -> list[Tensor] | None:
    if value is None:
        return None
    return list(value.unbind(0)) if isinstance(value, Tensor) else list(value)


def chat_masks(
    loss: Any, tensordict: TensorDictBase, history: Any, assistant_only: bool = True
) -> tuple[list[Tensor], list[Tensor], list[Tensor] | None]:
    """Per-sequence token masks ``(selected, attention, assistant)``: read from
    ``("masks", ...)`` when the data has them, else from the chat template applied to the
    history with the loss's tokenizer (as TorchRL's ``SFTLoss``/``DistillationLoss``)."""
    name = type(loss).__name__
    assistant = _as_list(tensordict.get(TORCHRL_MASKS[0], None, as_list=True))
    attention = _as_list(tensordict.get(TORCHRL_MASKS[1], None, as_list=True))
    if (assistant_only and assistant is None) or attention is None:
        if loss.tokenizer is None:
            raise missing(name, TORCHRL_MASKS[0], "the token masks; or give the loss a tokenizer to recover them")
        with _device_context(loss, tensordict, assistant, attention):
            tokens = history.apply_chat_template(tokenizer=loss.tokenizer, **loss.tokenizer_kwargs)
        if assistant is None and "assistant_masks" in tokens:
            assistant = _as_list(tokens.get("assistant_masks", as_list=True))
        if assistant_only and assistant is None:
            raise missing(name, TORCHRL_MASKS[0], "the chat template gives no assistant mask ({% generation %} tags)")
        if attention is None:
            attention = _as_list(tokens.get("attention_mask", as_list=True))
    attention = [m.bool() for m in attention]
    assistant = None if assistant is None else [m.bool() for m in assistant]
    if not assistant_only:
        return attention, attention, assistant
    if len(assistant) != len(attention):
        raise EntryShapeError(name, TORCHRL_MASKS[0], f"{len(assistant)} assistant masks for {len(attention)} sequences")
    return [m & a for m, a in zip(assistant, attention)], attention, assistant


class ScoredHistory(NamedTuple):
    """The wrapper's per-sequence log-probs on the chat history, the token masks selecting the
    tokens they are scored on, and the attention and assistant masks (``None`` when neither
    the data nor the chat template has the latter) those came from."""

    log_probs: list[Tensor]
    masks: list[Tensor]
    attention: list[Tensor]
    assistant: list[Tensor] | None


def run_log_probs(loss: Any, tensordict: TensorDictBase, *, assistant_only: bool, every: bool,
                  history_hint: str) -> ScoredHistory:
    """Run the wrapper on the chat history (``history_hint`` says what it is when absent) and
    return its per-sequence log-probs with the token masks (:func:`chat_masks`: the assistant
    tokens, or every attended one without ``assistant_only``), which must select a token
    (:func:`check_nonempty`) and line up with the log-probs token for token."""
    tk = loss.tensor_keys
    if tk.history not in tensordict.keys(True):
        raise missing(type(loss).__name__, tk.history, history_hint)
    masks, attention, assistant = chat_masks(loss, tensordict, tensordict[tk.history], assistant_only)
    mask_key = TORCHRL_MASKS[0] if assistant_only else TORCHRL_MASKS[1]
    check_nonempty(loss, mask_key, masks, every)
    with _device_context(loss, tensordict, masks):
        output = loss.actor_network(tensordict.select(tk.history))
    log_probs = _as_list(output.get(tk.log_probs, None, as_list=True))
    check_sequences(loss, mask_key, masks, log_probs, tk.log_probs)
    return ScoredHistory(log_probs, masks, attention, assistant)


def stored_log_probs(loss: Any, tensordict: TensorDictBase, key: Any, hint: str) -> list[Tensor]:
    value = _as_list(tensordict.get(key, None, as_list=True))
    if value is None:
        raise missing(type(loss).__name__, key, hint)
    return value


def check_sequences(loss: Any, key: Any, values: list[Tensor], like: list[Tensor], like_key: Any) -> None:
    """Per-sequence entries must match token for token (TorchRL raises otherwise)."""
    if len(values) != len(like) or any(v.shape != w.shape for v, w in zip(values, like)):
        raise EntryShapeError(
            type(loss).__name__, key,
            f"per-sequence shapes {[list(v.shape) for v in values]} differ from those of {like_key!r}: "
            f"{[list(w.shape) for w in like]}",
        )


def check_nonempty(loss: Any, key: Any, masks: list[Tensor], every: bool) -> None:
    """TorchRL's SFT refuses a batch where no sequence has a selected token; its
    distillation refuses any sequence without one."""
    empty = [i for i, m in enumerate(masks) if not bool(m.any())]
    if (every and empty) or (not every and len(empty) == len(masks)):
        raise EmptyMaskError(type(loss).__name__, key, f"no token selected in sequence(s) {empty}")


def check_teacher_zero_fill(loss: Any, key: Any, teacher: list[Tensor], attention: list[Tensor], assistant: list[Tensor]) -> None:
    """Teacher log-probs written with ``RetrieveLogProb(assistant_only=True)`` are exactly 0 off
    the assistant tokens: refused when the loss distils on every token (as TorchRL)."""
    zeros = total = 0
    for t, att, ast in zip(teacher, attention, assistant):
        if t.shape != att.shape or t.shape != ast.shape:
            return
        outside = att & ~ast
        total += int(outside.sum())
        zeros += int(((t == 0.0) & outside).sum())
    if total > 0 and zeros > 0.9 * total:
        raise ZeroFilledEntryError(
            type(loss).__name__, key,
            f"{zeros} of {total} attended non-assistant tokens have a teacher log-prob of exactly 0 "
            "(RetrieveLogProb(assistant_only=True) zero-fills them) but the loss has assistant_only=False",
        )


def sequences(entries: dict[Any, list[Tensor]]) -> LazyStackedTensorDict:
    """A lazy stack of one TensorDict per sequence (ragged entries, TorchRL's LLM layout)."""
    n = len(next(iter(entries.values())))
    return lazy_stack([TensorDict({k: v[i] for k, v in entries.items()}, batch_size=[]) for i in range(n)])

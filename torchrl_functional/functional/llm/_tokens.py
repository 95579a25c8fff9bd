"""Reading the per-token entries of the LLM losses, whatever their layout.

TorchRL's LLM data holds one sequence per batch element. A per-token entry comes as

- a dense ``[B, L]`` tensor (padded data, ``pad_output=True``),
- a nested tensor ``[B, j]`` with a ragged last dimension (``torch.jagged``), or
- the leaves of a lazy stack of ``B`` TensorDicts holding sequences of different lengths
  (``pad_output=False``; ``lazy_stack`` of ragged sequences).

Ragged entries are read as ``[B, L_max]`` tensors padded on the *left* (TorchRL's LLM
convention, so every entry lines up token for token) with zeros; :class:`TokenLayout`
remembers the lengths so that losses averaging over "all tokens" count the real ones only.
Every entry of one call must share the layout of the reference entry (the current
log-prob): same batch, same lengths, else :class:`~torchrl_functional.errors.EntryShapeError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from tensordict import LazyStackedTensorDict, TensorDictBase
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from ...errors import EntryDtypeError, EntryRequiresGradError, EntryShapeError
from .._td import entry, missing

__all__ = ["TokenLayout", "reference_tokens", "read_tokens", "check_log_prob"]


@dataclass(frozen=True)
class TokenLayout:
    """Shape ``[B, L]`` of the per-token entries of one call, and the sequence lengths.

    Attributes:
        shape: the padded ``[B, L]`` shape.
        lengths: the length of every sequence, or ``None`` for dense data (every position
            is a token).
        key: the entry that defined the layout (named in shape errors).
    """

    shape: torch.Size
    lengths: tuple[int, ...] | None
    key: Any

    def present(self, device: torch.device) -> Tensor | None:
        """Bool ``[B, L]``: positions holding a token (``None``: all of them)."""
        if self.lengths is None:
            return None
        lengths = torch.tensor(self.lengths, device=device)
        return torch.arange(self.shape[-1], device=device) >= (self.shape[-1] - lengths).unsqueeze(-1)

    def n_tokens(self) -> int:
        """Number of real tokens (``B * L`` for dense data)."""
        return self.shape.numel() if self.lengths is None else sum(self.lengths)


def _per_sequence(td: LazyStackedTensorDict, key: Any) -> list | Tensor | None:
    if td.stack_dim == 0:
        try:  # one sequence at a time: much cheaper than the lazy stack's nested-key machinery
            items = [sub.get(key, None) for sub in td.tensordicts]
        except RuntimeError:  # nested lazy stacks of ragged leaves
            items = None
        if items is not None:
            found = [x is not None for x in items]
            if all(found):
                return items
            if not any(found):
                return None
    return td.get(key, None, as_list=True)  # exclusive keys, other stack dims: TensorDict's rules


def _raw(td: TensorDictBase, key: Any) -> Tensor | list[Tensor] | None:
    """The entry as a tensor, or as a list of per-sequence tensors when it is ragged."""
    if isinstance(td, LazyStackedTensorDict):
        items = _per_sequence(td, key)
        if items is None or isinstance(items, Tensor):
            return items
        if all(isinstance(x, Tensor) for x in items) and len({tuple(x.shape) for x in items}) == 1:
            return torch.stack(items)
        return list(items)
    value = entry(td, key)
    if isinstance(value, Tensor) and value.is_nested:
        return list(value.unbind(0))
    return value


def _pad_left(loss: str, key: Any, items: list) -> tuple[Tensor, tuple[int, ...]]:
    for x in items:
        if not isinstance(x, Tensor) or x.ndim == 0:
            raise EntryShapeError(loss, key, f"expected one tensor per sequence, [L_i, ...], got {x!r:.60}")
    if len({(x.shape[1:], x.dtype) for x in items}) != 1:
        shapes = [tuple(x.shape) for x in items]
        raise EntryShapeError(loss, key, f"sequences differ beyond their length: {shapes}")
    lengths = tuple(int(x.shape[0]) for x in items)
    return pad_sequence(items, batch_first=True, padding_value=0, padding_side="left"), lengths


def reference_tokens(loss: str, td: TensorDictBase, key: Any, hint: str) -> tuple[Tensor, TokenLayout]:
    """Read the entry that defines the layout (``[B, L]``, or ragged sequences ``[L_i]``)."""
    raw = _raw(td, key)
    if raw is None:
        raise missing(loss, key, hint)
    if isinstance(raw, list):
        value, lengths = _pad_left(loss, key, raw)
    else:
        value, lengths = raw, None
    if not isinstance(value, Tensor) or value.ndim != 2:
        got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise EntryShapeError(loss, key, f"expected per-token values [B, L] (one sequence per row), got {got}")
    if td.batch_dims >= 1 and value.shape[0] != td.batch_size[0]:
        raise EntryShapeError(loss, key, f"expected {td.batch_size[0]} sequences (the batch), got {value.shape[0]}")
    return value, TokenLayout(value.shape, lengths, key)


def read_tokens(
    loss: str,
    td: TensorDictBase,
    key: Any,
    layout: TokenLayout,
    hint: str,
    *,
    required: bool = True,
    trailing: tuple[int | None, ...] = (),
    per_sequence: bool = False,
    squeeze_trailing: bool = False,
) -> Tensor | None:
    """Read a per-token entry laid out as the reference: ``[B, L, *trailing]`` left-padded.

    Args:
        trailing: the sizes of the dimensions after the token dimension (``None``: any).
        per_sequence: also accept a token dimension of 1 (one value per sequence, broadcast
            over its tokens: a sequence-level advantage ``[B, 1, 1]``).
        squeeze_trailing: also accept ``[B, L, 1]`` and return it as ``[B, L]`` (TorchRL
            squeezes a trailing feature dimension of stored log-probs).
    """
    raw = _raw(td, key)
    if raw is None:
        if required:
            raise missing(loss, key, hint)
        return None
    lengths = None
    if isinstance(raw, list):
        value, lengths = _pad_left(loss, key, raw)
    else:
        value = raw
    if not isinstance(value, Tensor):
        raise EntryDtypeError(loss, key, f"expected a tensor, got {type(value).__name__}")
    if squeeze_trailing and value.ndim == 3 + len(trailing) and value.shape[-1] == 1:
        value = value.squeeze(-1)
    batch, length = layout.shape
    expected = f"[{batch}, {length}{''.join(', ' + ('*' if t is None else str(t)) for t in trailing)}]"
    ok_rank = value.ndim == 2 + len(trailing) and all(
        t is None or s == t for s, t in zip(value.shape[2:], trailing)
    )
    if not ok_rank or value.shape[0] != batch:
        what = expected + (f" or [{batch}, 1, ...] (one value per sequence)" if per_sequence else "")
        raise EntryShapeError(loss, key, f"expected {what} like {layout.key!r}, got {tuple(value.shape)}")
    if per_sequence and lengths is None and value.shape[1] == 1:
        return value
    if lengths != layout.lengths:
        if layout.lengths is None or lengths is None:
            how = "ragged" if lengths is not None else "dense"
            raise EntryShapeError(
                loss, key,
                f"is {how} ({tuple(value.shape)}) but {layout.key!r} is "
                f"{'dense' if layout.lengths is None else 'ragged'} ({tuple(layout.shape)}): "
                "per-token entries must share one layout",
            )
        raise EntryShapeError(
            loss, key, f"sequence lengths {list(lengths)} differ from those of {layout.key!r}: {list(layout.lengths)}"
        )
    if value.shape[1] != length:
        raise EntryShapeError(
            loss, key, f"expected {length} tokens per sequence like {layout.key!r} ({expected}), got {tuple(value.shape)}"
        )
    return value


def check_log_prob(loss: str, key: Any, x: Tensor, *, constant: bool = False) -> None:
    """A log-prob entry is a floating tensor; ``constant``: it must not require grad."""
    if not x.is_floating_point():
        raise EntryDtypeError(loss, key, f"expected a floating point tensor, got {x.dtype}")
    if constant and x.requires_grad:
        raise EntryRequiresGradError(
            loss, key, "requires grad, but log-probs stored in the data must be constants; detach them when storing them"
        )


"""Drop-in replacements for ``torchrl.objectives.llm``'s ``GRPOLoss``, ``DAPO`` and
``CISPOLoss``; the math is :func:`~torchrl_functional.functional.llm.grpo_loss`
(:func:`dapo_loss`, :func:`cispo_loss`).

``forward`` runs the LLM wrapper for the next-token distribution (the masking strategy's
mask), computes the tokens' log-probs and entropies from its logits, reads the stored
log-probs and advantages with TorchRL's padding, and calls the function."""

from __future__ import annotations

from typing import Literal

from tensordict import TensorDictBase
from torchrl.objectives.llm import grpo as _trl

from ...functional._validation import check_choice
from ...functional.llm import cispo_loss, dapo_loss, grpo_loss
from .._binding import FunctionalCallMixin
from ._inputs import grpo_hyperparameters, grpo_inputs

__all__ = ["GRPOLoss", "DAPO", "CISPOLoss"]


class GRPOLoss(FunctionalCallMixin, _trl.GRPOLoss):
    """Drop-in ``torchrl.objectives.llm.GRPOLoss`` computed by :func:`~torchrl_functional.functional.grpo_loss`.

    Keyword Args:
        advantage_padding_side (str): how a per-token advantage stored as ragged sequences
            is padded. ``"right"`` (default) is TorchRL's: the advantages of a sequence
            shorter than the longest are shifted against its tokens (which are padded on
            the left). ``"left"`` lines them up with the tokens. Sequence-level advantages
            ``[1, 1]`` and padded data are unaffected. Every other argument is TorchRL's.
    """

    _loss_function = staticmethod(grpo_loss)

    def __init__(self, *args, advantage_padding_side: Literal["right", "left"] = "right", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        check_choice(type(self).__name__, "advantage_padding_side", advantage_padding_side, ("right", "left"))
        self.advantage_padding_side = advantage_padding_side

    def forward(self, tensordict: TensorDictBase) -> _trl.LLMLossOutput:
        out = self._loss_function(grpo_inputs(self, tensordict), **self._hyperparameters())
        return self.output_type.from_tensordict(out)

    def _hyperparameters(self) -> dict:
        return grpo_hyperparameters(self)


class DAPO(GRPOLoss, _trl.DAPO):
    """Drop-in ``torchrl.objectives.llm.DAPO`` computed by :func:`~torchrl_functional.functional.dapo_loss`."""

    _loss_function = staticmethod(dapo_loss)


class CISPOLoss(GRPOLoss, _trl.CISPOLoss):
    """Drop-in ``torchrl.objectives.llm.CISPOLoss`` computed by :func:`~torchrl_functional.functional.cispo_loss`.

    Keyword Args:
        detach_clipped_weight (bool): ``False`` (default, TorchRL's gradient: clipped tokens
            get none) or ``True`` (the MiniMax-M1 paper's ``sg(clip(r)) A grad log pi``).
            Every other argument is TorchRL's.
    """

    _loss_function = staticmethod(cispo_loss)

    def __init__(self, *args, detach_clipped_weight: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.detach_clipped_weight = detach_clipped_weight

    def _hyperparameters(self) -> dict:
        return {**super()._hyperparameters(), "detach_clipped_weight": self.detach_clipped_weight}

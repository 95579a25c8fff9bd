"""Drop-in replacement for ``torchrl.objectives.llm.SFTLoss``; the math is
:func:`~torchrl_functional.functional.llm.sft_loss`.

``forward`` gathers the assistant masks (from the data or the chat template), runs the LLM
wrapper on the history for the log-probs, and calls the function on the ragged sequences."""

from __future__ import annotations

from tensordict import TensorDictBase
from torchrl.objectives.llm import sft as _trl

from ...functional.llm import SFTKeys, sft_loss
from .._binding import FunctionalCallMixin
from ._inputs import run_log_probs, sequences, stored_log_probs

__all__ = ["SFTLoss"]

#: flat names for the per-sequence entries handed to the function (cheap to stack and read)
_KEYS = SFTKeys(log_probs="log_probs", mask="mask", ref_log_prob="ref_log_prob")


class SFTLoss(FunctionalCallMixin, _trl.SFTLoss):
    """Drop-in ``torchrl.objectives.llm.SFTLoss`` computed by :func:`~torchrl_functional.functional.sft_loss`."""

    def forward(self, tensordict: TensorDictBase) -> _trl.SFTLossOutput:
        tk = self.tensor_keys
        scored = run_log_probs(self, tensordict, assistant_only=True, every=False,
                               history_hint="the chat history the model is trained on")
        entries = {_KEYS.log_probs: scored.log_probs, _KEYS.mask: scored.masks}
        if self.kl_to_ref_coeff is not None or self.loss_function == "minor_sft":
            entries[_KEYS.ref_log_prob] = stored_log_probs(
                self, tensordict, tk.ref_log_prob, "the reference log-probs, written by TorchRL's RetrieveLogProb"
            )
        out = sft_loss(
            sequences(entries),
            reduction=self.reduction,
            normalize_by_seq_length=self.normalize_by_seq_length,
            kl_to_ref_coeff=self.kl_to_ref_coeff,
            loss_function=self.loss_function,
            beta=self.beta,
            keys=_KEYS,
        )
        return _trl.SFTLossOutput(**dict(out.items()))

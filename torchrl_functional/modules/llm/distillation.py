"""Drop-in replacement for ``torchrl.objectives.llm.DistillationLoss``; the math is
:func:`~torchrl_functional.functional.llm.distillation_loss`.

``forward`` gathers the token masks (from the data or the chat template), runs the student
wrapper on the history for its log-probs, reads the teacher's, and calls the function on
the ragged sequences."""

from __future__ import annotations

from tensordict import TensorDictBase
from torchrl.objectives.llm import distillation as _trl

from ...functional.llm import DistillationKeys, distillation_loss
from .._binding import FunctionalCallMixin
from ._inputs import check_sequences, check_teacher_zero_fill, run_log_probs, sequences, stored_log_probs

__all__ = ["DistillationLoss"]

#: flat names for the per-sequence entries handed to the function (cheap to stack and read)
_KEYS = DistillationKeys(log_probs="log_probs", mask="mask", teacher_log_prob="teacher_log_prob")


class DistillationLoss(FunctionalCallMixin, _trl.DistillationLoss):
    """Drop-in ``torchrl.objectives.llm.DistillationLoss`` computed by
    :func:`~torchrl_functional.functional.distillation_loss`."""

    def forward(self, tensordict: TensorDictBase) -> _trl.DistillationLossOutput:
        tk = self.tensor_keys
        scored = run_log_probs(self, tensordict, assistant_only=self.assistant_only, every=True,
                               history_hint="the chat history the student is scored on")
        teacher = stored_log_probs(
            self, tensordict, tk.teacher_log_prob,
            "the teacher log-probs: RetrieveLogProb(teacher, log_probs_full_key=('teacher_log_probs', 'full'))",
        )
        check_sequences(self, tk.teacher_log_prob, teacher, scored.log_probs, tk.log_probs)
        if not self.assistant_only and scored.assistant is not None:
            check_teacher_zero_fill(self, tk.teacher_log_prob, teacher, scored.attention, scored.assistant)
        out = distillation_loss(
            sequences({_KEYS.log_probs: scored.log_probs, _KEYS.mask: scored.masks, _KEYS.teacher_log_prob: teacher}),
            kl_direction=self.kl_direction,
            reduction=self.reduction,
            normalize_by_seq_length=self.normalize_by_seq_length,
            keys=_KEYS,
        )
        return _trl.DistillationLossOutput(**dict(out.items()))

"""Drop-in replacements for ``torchrl.objectives.llm``'s losses: ``forward`` runs TorchRL's
LLM wrapper (the impure part), then calls the function of
:mod:`torchrl_functional.functional.llm`."""

from .distillation import DistillationLoss
from .grpo import DAPO, CISPOLoss, GRPOLoss
from .sft import SFTLoss

__all__ = ["GRPOLoss", "DAPO", "CISPOLoss", "SFTLoss", "DistillationLoss"]

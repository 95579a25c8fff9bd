"""Drop-in replacements for TorchRL's imitation-learning losses: ``forward`` runs the policy
(the impure part), then calls the function of :mod:`torchrl_functional.functional.imitation`."""

from .act import ACTLoss
from .bc import BCLoss
from .diffusion import DiffusionBCLoss
from .dt import DTLoss, OnlineDTLoss

__all__ = ["BCLoss", "DTLoss", "OnlineDTLoss", "ACTLoss", "DiffusionBCLoss"]

"""Drop-in replacements for TorchRL's model-based losses (world models, Dreamer)."""

from .dreamer_v3 import DreamerV3ActorLoss, DreamerV3ModelLoss, DreamerV3ValueLoss

__all__ = ["DreamerV3ModelLoss", "DreamerV3ActorLoss", "DreamerV3ValueLoss"]

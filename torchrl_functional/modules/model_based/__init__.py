"""Drop-in replacements for TorchRL's model-based losses: ``forward`` runs the world model,
the imagined rollout and the value model (the impure part), then calls the function of
:mod:`torchrl_functional.functional.model_based`."""

# Dreamer (v1)
from .dreamer import DreamerActorLoss, DreamerModelLoss, DreamerValueLoss

# DreamerV3
from .dreamer_v3 import DreamerV3ActorLoss, DreamerV3ModelLoss, DreamerV3ValueLoss

# general world model
from .world_model import WorldModelLoss

__all__ = [
    "DreamerModelLoss", "DreamerActorLoss", "DreamerValueLoss",
    "WorldModelLoss",
    "DreamerV3ModelLoss", "DreamerV3ActorLoss", "DreamerV3ValueLoss",
]

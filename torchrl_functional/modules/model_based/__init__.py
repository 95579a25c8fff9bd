"""Drop-in replacements for TorchRL's model-based losses: ``forward`` runs the world model,
the imagined rollout and the value model (the impure part), then calls the function of
:mod:`torchrl_functional.functional.model_based`."""

# Dreamer (v1)
from .dreamer import DreamerActorLoss, DreamerModelLoss, DreamerValueLoss

# general world model
from .world_model import WorldModelLoss

__all__ = [
    # Dreamer (v1)
    "DreamerModelLoss",
    "DreamerActorLoss",
    "DreamerValueLoss",
    # general world model
    "WorldModelLoss",
]

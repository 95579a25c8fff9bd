"""Model-based losses as pure functions of precomputed world-model, rollout and value outputs.

Dreamer (:mod:`.dreamer`): :func:`dreamer_model_loss`, :func:`dreamer_actor_loss`,
:func:`dreamer_value_loss` (TorchRL's ``DreamerModelLoss``, ``DreamerActorLoss``,
``DreamerValueLoss``); :func:`world_model_loss` (``WorldModelLoss``: reward, done,
reconstruction and latent heads). The imagined rollout is run by the caller (the drop-in modules run
it in TorchRL's ``DreamerEnv``); the functions read its rewards, values and flags.
"""

# Dreamer (v1)
from .dreamer import dreamer_actor_loss, dreamer_model_loss, dreamer_value_loss
from .keys import DreamerActorKeys, DreamerModelKeys, DreamerValueKeys, WorldModelKeys

# general world model
from .world_model import world_model_loss

__all__ = [
    # Dreamer (v1)
    "dreamer_model_loss",
    "dreamer_actor_loss",
    "dreamer_value_loss",
    "DreamerModelKeys",
    "DreamerActorKeys",
    "DreamerValueKeys",
    # general world model
    "world_model_loss",
    "WorldModelKeys",
]

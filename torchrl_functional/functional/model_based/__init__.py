"""Model-based losses as pure functions of precomputed world-model, rollout and value outputs.

Dreamer (:mod:`.dreamer`): :func:`dreamer_model_loss`, :func:`dreamer_actor_loss`,
:func:`dreamer_value_loss` (TorchRL's ``DreamerModelLoss``, ``DreamerActorLoss``,
``DreamerValueLoss``); :func:`world_model_loss` (``WorldModelLoss``: reward, done,
reconstruction and latent heads); DreamerV3 (:mod:`.dreamer_v3`, :mod:`.dreamer_v3_actor`,
kernels in :mod:`.dreamer_v3_kernels`: symlog, two-hot, balanced KL, return normalisation).
The imagined rollout is run by the caller (the drop-in modules run it as TorchRL does); the
functions read its rewards, values and flags.
"""

from __future__ import annotations

# Dreamer (v1)
from .dreamer import dreamer_actor_loss, dreamer_model_loss, dreamer_value_loss

# DreamerV3
from .dreamer_v3 import (
    DreamerV3ValueOptions,
    dreamer_v3_model_loss,
    dreamer_v3_replay_value_loss,
    dreamer_v3_value_loss,
)
from .dreamer_v3_actor import dreamer_v3_actor_loss, dreamer_v3_lambda_target
from .dreamer_v3_kernels import (
    categorical_kl_balanced,
    categorical_kl_terms,
    return_percentile_update,
    return_scale,
    symexp,
    symlog,
    two_hot_bins,
    two_hot_cross_entropy,
    two_hot_decode,
    two_hot_encode,
)
from .keys import DreamerActorKeys, DreamerModelKeys, DreamerValueKeys, WorldModelKeys
from .keys_v3 import DreamerV3ActorKeys, DreamerV3ModelKeys, DreamerV3ValueKeys

# general world model
from .world_model import world_model_loss

__all__ = [
    # Dreamer (v1)
    "dreamer_model_loss", "dreamer_actor_loss", "dreamer_value_loss",
    "DreamerModelKeys", "DreamerActorKeys", "DreamerValueKeys",
    # general world model
    "world_model_loss", "WorldModelKeys",
    # DreamerV3
    "dreamer_v3_model_loss", "dreamer_v3_value_loss", "dreamer_v3_replay_value_loss", "DreamerV3ValueOptions",
    "dreamer_v3_actor_loss", "dreamer_v3_lambda_target",
    "symlog", "symexp", "two_hot_bins", "two_hot_encode", "two_hot_decode", "two_hot_cross_entropy",
    "categorical_kl_balanced", "categorical_kl_terms", "return_percentile_update", "return_scale",
    "DreamerV3ModelKeys", "DreamerV3ActorKeys", "DreamerV3ValueKeys",
]

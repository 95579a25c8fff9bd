"""Model-based objectives (world models, Dreamer) as pure functions of precomputed outputs."""

from __future__ import annotations

from .dreamer_v3 import dreamer_v3_model_loss, dreamer_v3_replay_value_loss, dreamer_v3_value_loss
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
from .keys_v3 import DreamerV3ActorKeys, DreamerV3ModelKeys, DreamerV3ValueKeys

__all__ = [
    "dreamer_v3_model_loss", "dreamer_v3_value_loss", "dreamer_v3_replay_value_loss",
    "dreamer_v3_actor_loss", "dreamer_v3_lambda_target",
    "symlog", "symexp", "two_hot_bins", "two_hot_encode", "two_hot_decode", "two_hot_cross_entropy",
    "categorical_kl_balanced", "categorical_kl_terms", "return_percentile_update", "return_scale",
    "DreamerV3ModelKeys", "DreamerV3ActorKeys", "DreamerV3ValueKeys",
]

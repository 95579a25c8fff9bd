"""Pure layer: tensor kernels and TensorDict losses. No parameters, no state, no modules.

Tensor kernels (tensors in, tensors out) live in :mod:`.value`, :mod:`.vtrace`,
:mod:`.policy_gradient`, :mod:`.value_learning`, :mod:`.value_norm`, :mod:`.standardization`
and :mod:`.distributions`; TensorDict losses (precomputed network outputs in, a TensorDict of
losses out) in one module each (:mod:`.ppo`, :mod:`.a2c`, :mod:`.dqn`, :mod:`.sac` ...), with
the LLM post-training losses in :mod:`.llm`, imitation in :mod:`.imitation` and model-based
RL in :mod:`.model_based`.

Every public name (``__all__``) of a loss or kernel module is public here; of the keys,
estimator, distribution, value-learning, LLM and imitation modules, the names listed below.
"""

from . import (
    a2c,
    cql,
    crossq,
    ddpg,
    distributional_dqn,
    dqn,
    gail,
    iql,
    mappo,
    model_based,
    policy_gradient,
    ppo,
    qmixer,
    redq,
    reinforce,
    rnd,
    sac,
    standardization,
    td3,
    td3bc,
    tqc,
    value,
    value_norm,
    vtrace,
)
from ._offpolicy import OffPolicyOptions, PrioritizedOffPolicyOptions, PrioritizedReplayOptions, ReplayOptions
from ._td import time_dim_of
from ._terms import A2COptions, OnPolicyOptions, PPOOptions
from ._validation import check_finite, set_check_finite
from .a2c import *  # noqa: F403
from .cql import *  # noqa: F403
from .crossq import *  # noqa: F403
from .ddpg import *  # noqa: F403
from .distributional_dqn import *  # noqa: F403
from .distributions import build_distribution, entropy, kl_divergence, sample_and_log_prob
from .dqn import *  # noqa: F403
from .estimators import EstimatorOptions, estimate_advantage, estimator_name, value_target
from .gail import *  # noqa: F403
from .imitation import (
    ACTKeys,
    BCKeys,
    DiffusionBCKeys,
    DTKeys,
    OnlineDTKeys,
    act_loss,
    bc_loss,
    ddpm_add_noise,
    diffusion_bc_loss,
    dt_loss,
    gaussian_kl_to_standard,
    online_dt_loss,
    sample_diffusion_inputs,
)
from .iql import *  # noqa: F403
from .keys import (
    A2CKeys,
    CQLKeys,
    CrossQKeys,
    DDPGKeys,
    DiscreteCQLKeys,
    DiscreteSACKeys,
    DistributionalDQNKeys,
    DQNKeys,
    GAILKeys,
    IQLKeys,
    OffPolicyKeys,
    OnPolicyKeys,
    PPOKeys,
    QMixerKeys,
    REDQKeys,
    ReinforceKeys,
    RNDKeys,
    SACKeys,
    SACV1Keys,
    TD3BCKeys,
    TD3Keys,
    TQCKeys,
)
from .llm import (
    DistillationKeys,
    GRPOKeys,
    GRPOOptions,
    SFTKeys,
    aggregate_token_loss,
    cispo_loss,
    clipped_importance_loss,
    dapo_loss,
    distillation_loss,
    dynamic_sampling_mask,
    group_relative_advantage,
    grpo_loss,
    kl_token_estimate,
    sft_loss,
    token_entropy,
    token_log_probs,
    trajectory_return,
)
from .mappo import *  # noqa: F403
from .model_based import *  # noqa: F403
from .policy_gradient import *  # noqa: F403
from .ppo import *  # noqa: F403
from .qmixer import *  # noqa: F403
from .redq import *  # noqa: F403
from .reinforce import *  # noqa: F403
from .rnd import *  # noqa: F403
from .sac import *  # noqa: F403
from .standardization import *  # noqa: F403
from .td3 import *  # noqa: F403
from .td3bc import *  # noqa: F403
from .tqc import *  # noqa: F403
from .value import *  # noqa: F403
from .value_learning import (
    categorical_projection,
    clipped_value_loss,
    distance_loss,
    ensemble_distance,
    ensemble_min,
    explained_variance,
    quantile_huber_loss,
    truncated_quantiles,
)
from .value_norm import *  # noqa: F403
from .vtrace import *  # noqa: F403

__all__ = [
    # opt-in input checks and TorchRL's rule for the time dimension
    "check_finite", "set_check_finite", "time_dim_of",
    # the keyword options the losses share
    "OnPolicyOptions", "A2COptions", "PPOOptions", "ReplayOptions", "PrioritizedReplayOptions", "OffPolicyOptions",
    "PrioritizedOffPolicyOptions",
    # .keys
    "OnPolicyKeys", "PPOKeys", "A2CKeys", "ReinforceKeys", "OffPolicyKeys", "DQNKeys", "DDPGKeys",
    "TD3Keys", "SACKeys", "SACV1Keys", "DiscreteSACKeys", "IQLKeys", "CQLKeys", "DiscreteCQLKeys",
    "GAILKeys", "DistributionalDQNKeys", "QMixerKeys", "TQCKeys", "RNDKeys", "TD3BCKeys",
    "REDQKeys", "CrossQKeys",
    # .llm
    "grpo_loss", "dapo_loss", "cispo_loss", "sft_loss", "distillation_loss", "GRPOKeys", "GRPOOptions", "SFTKeys",
    "DistillationKeys", "clipped_importance_loss", "token_log_probs", "token_entropy",
    "kl_token_estimate", "group_relative_advantage", "trajectory_return", "dynamic_sampling_mask",
    "aggregate_token_loss",
    # .imitation
    "bc_loss", "dt_loss", "online_dt_loss", "act_loss", "diffusion_bc_loss", "ddpm_add_noise",
    "sample_diffusion_inputs", "gaussian_kl_to_standard", "BCKeys", "DTKeys", "OnlineDTKeys",
    "ACTKeys", "DiffusionBCKeys",
    # .distributions
    "build_distribution", "sample_and_log_prob", "entropy", "kl_divergence",
    # .estimators
    "estimator_name", "value_target", "EstimatorOptions", "estimate_advantage",
    # .value_learning
    "distance_loss", "clipped_value_loss", "explained_variance", "ensemble_min",
    "ensemble_distance", "categorical_projection", "truncated_quantiles", "quantile_huber_loss",
]
__all__ += a2c.__all__
__all__ += reinforce.__all__
__all__ += ppo.__all__
__all__ += mappo.__all__
__all__ += dqn.__all__
__all__ += distributional_dqn.__all__
__all__ += qmixer.__all__
__all__ += ddpg.__all__
__all__ += td3.__all__
__all__ += td3bc.__all__
__all__ += sac.__all__
__all__ += crossq.__all__
__all__ += redq.__all__
__all__ += iql.__all__
__all__ += cql.__all__
__all__ += tqc.__all__
__all__ += gail.__all__
__all__ += rnd.__all__
__all__ += policy_gradient.__all__
__all__ += value.__all__
__all__ += vtrace.__all__
__all__ += standardization.__all__
__all__ += value_norm.__all__
__all__ += model_based.__all__

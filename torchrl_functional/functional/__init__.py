"""Pure layer: tensor kernels and TensorDict losses. No parameters, no state, no modules.

Tensor kernels (tensors in, tensors out) live in :mod:`.value`, :mod:`.policy_gradient`,
:mod:`.value_learning` and :mod:`.distributions`; TensorDict losses (precomputed network
outputs in, a TensorDict of losses out) in :mod:`.ppo`, :mod:`.a2c`, :mod:`.reinforce`, and the off-policy :mod:`.dqn`,
:mod:`.ddpg`, :mod:`.td3`, :mod:`.sac`, :mod:`.iql`, :mod:`.cql`; LLM post-training losses
and their kernels in :mod:`.llm`.
"""

from ._offpolicy import OffPolicyOptions, PrioritizedOffPolicyOptions
from ._td import time_dim_of
from ._terms import A2COptions, OnPolicyOptions, PPOOptions
from ._validation import check_finite, set_check_finite
from .a2c import a2c_loss
from .cql import cql_loss, discrete_cql_loss
from .ddpg import ddpg_loss
from .distributions import build_distribution, entropy, kl_divergence, sample_and_log_prob
from .dqn import dqn_loss
from .estimators import EstimatorOptions, estimate_advantage, estimator_name, value_target
from .iql import discrete_iql_loss, expectile_loss, iql_loss
from .keys import (
    A2CKeys,
    CQLKeys,
    DDPGKeys,
    DiscreteCQLKeys,
    DiscreteSACKeys,
    DQNKeys,
    IQLKeys,
    OffPolicyKeys,
    OnPolicyKeys,
    PPOKeys,
    ReinforceKeys,
    SACKeys,
    TD3Keys,
)
from .llm import (
    DistillationKeys,
    GRPOKeys,
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
from .policy_gradient import (
    adapt_kl_beta,
    clip_bounds,
    clipped_surrogate_loss,
    effective_sample_size,
    importance_weighted_loss,
    kl_penalty_loss,
    policy_gradient_loss,
)
from .ppo import clip_ppo_loss, klpen_ppo_loss, ppo_loss
from .reinforce import reinforce_loss
from .sac import discrete_sac_loss, sac_loss
from .standardization import standardize, standardize_by_group
from .td3 import td3_loss, td3_target_action
from .value import (
    generalized_advantage_estimate,
    reverse_discounted_scan,
    td0_advantage_estimate,
    td0_return_estimate,
    td1_advantage_estimate,
    td1_return_estimate,
    td_lambda_advantage_estimate,
    td_lambda_return_estimate,
)
from .value_learning import clipped_value_loss, distance_loss, explained_variance
from .vtrace import vtrace_advantage_estimate

__all__ = [
    # opt-in input checks
    "check_finite",
    "set_check_finite",
    # TorchRL's rule for the time dimension
    "time_dim_of",
    # TensorDict losses
    "ppo_loss",
    "clip_ppo_loss",
    "klpen_ppo_loss",
    "a2c_loss",
    "reinforce_loss",
    "dqn_loss",
    "ddpg_loss",
    "td3_loss",
    "sac_loss",
    "discrete_sac_loss",
    "iql_loss",
    "discrete_iql_loss",
    "cql_loss",
    "discrete_cql_loss",
    # LLM post-training losses (functional.llm)
    "grpo_loss",
    "dapo_loss",
    "cispo_loss",
    "sft_loss",
    "distillation_loss",
    # keys
    "OnPolicyKeys",
    "PPOKeys",
    "A2CKeys",
    "ReinforceKeys",
    "OffPolicyKeys",
    "OffPolicyOptions",
    "OnPolicyOptions",
    "A2COptions",
    "PPOOptions",
    "PrioritizedOffPolicyOptions",
    "DQNKeys",
    "DDPGKeys",
    "TD3Keys",
    "SACKeys",
    "DiscreteSACKeys",
    "IQLKeys",
    "CQLKeys",
    "DiscreteCQLKeys",
    "GRPOKeys",
    "SFTKeys",
    "DistillationKeys",
    # LLM kernels
    "token_log_probs",
    "token_entropy",
    "kl_token_estimate",
    "group_relative_advantage",
    "trajectory_return",
    "dynamic_sampling_mask",
    "aggregate_token_loss",
    "clipped_importance_loss",
    # off-policy kernels
    "td3_target_action",
    "expectile_loss",
    # value estimation kernels
    "reverse_discounted_scan",
    "generalized_advantage_estimate",
    "td0_return_estimate",
    "td0_advantage_estimate",
    "td1_return_estimate",
    "td1_advantage_estimate",
    "td_lambda_return_estimate",
    "td_lambda_advantage_estimate",
    "vtrace_advantage_estimate",
    # the value-target dispatcher and TorchRL's estimator options
    "value_target",
    "estimate_advantage",
    "estimator_name",
    "EstimatorOptions",
    # standardisation kernels
    "standardize",
    "standardize_by_group",
    # policy-gradient kernels
    "clip_bounds",
    "clipped_surrogate_loss",
    "importance_weighted_loss",
    "kl_penalty_loss",
    "adapt_kl_beta",
    "policy_gradient_loss",
    "effective_sample_size",
    # critic kernels
    "distance_loss",
    "clipped_value_loss",
    "explained_variance",
    # distributions
    "build_distribution",
    "entropy",
    "kl_divergence",
    "sample_and_log_prob",
]

# SAC with a value network (TorchRL's SACLoss version 1)
from .keys import SACV1Keys  # noqa: E402
from .sac import sac_v1_loss  # noqa: E402

__all__ += ["sac_v1_loss", "SACV1Keys"]

# critic-ensemble kernels
from .value_learning import ensemble_distance, ensemble_min  # noqa: E402

__all__ += ["ensemble_min", "ensemble_distance"]
# multi-agent PPO and the value normalisers
from .mappo import ippo_loss, mappo_loss  # noqa: E402
from .value_norm import (  # noqa: E402
    ValueNormalizer,
    percentile_denormalize,
    percentile_normalize,
    percentile_scale,
    percentile_update,
    popart_denormalize,
    popart_normalize,
    popart_scale,
    popart_update,
    running_denormalize,
    running_normalize,
    running_scale,
    running_update,
)

__all__ += [
    "mappo_loss", "ippo_loss", "ValueNormalizer",
    "popart_update", "popart_normalize", "popart_denormalize", "popart_scale",
    "running_update", "running_normalize", "running_denormalize", "running_scale",
    "percentile_update", "percentile_normalize", "percentile_denormalize", "percentile_scale",
]
# imitation: GAIL
from .gail import gail_loss, gradient_penalty  # noqa: E402
from .keys import GAILKeys  # noqa: E402

__all__ += ["gail_loss", "gradient_penalty", "GAILKeys"]

# model-based: DreamerV3 losses, keys and kernels
from .model_based import (  # noqa: E402
    DreamerV3ActorKeys,
    DreamerV3ModelKeys,
    DreamerV3ValueKeys,
    categorical_kl_balanced,
    categorical_kl_terms,
    dreamer_v3_actor_loss,
    dreamer_v3_lambda_target,
    dreamer_v3_model_loss,
    dreamer_v3_replay_value_loss,
    dreamer_v3_value_loss,
    return_percentile_update,
    return_scale,
    symexp,
    symlog,
    two_hot_bins,
    two_hot_cross_entropy,
    two_hot_decode,
    two_hot_encode,
)

__all__ += [
    "dreamer_v3_model_loss", "dreamer_v3_value_loss", "dreamer_v3_replay_value_loss", "dreamer_v3_actor_loss",
    "dreamer_v3_lambda_target", "DreamerV3ModelKeys", "DreamerV3ActorKeys", "DreamerV3ValueKeys",
    "symlog", "symexp", "two_hot_bins", "two_hot_encode", "two_hot_decode", "two_hot_cross_entropy",
    "categorical_kl_balanced", "categorical_kl_terms", "return_percentile_update", "return_scale",
]

# distributional DQN, QMixer, TQC
from .distributional_dqn import distributional_dqn_loss  # noqa: E402
from .keys import DistributionalDQNKeys, QMixerKeys, TQCKeys  # noqa: E402
from .qmixer import qmixer_loss  # noqa: E402
from .tqc import tqc_loss, tqc_target  # noqa: E402
from .value_learning import categorical_projection, quantile_huber_loss, truncated_quantiles  # noqa: E402

__all__ += ["distributional_dqn_loss", "DistributionalDQNKeys", "categorical_projection", "qmixer_loss", "QMixerKeys",
            "tqc_loss", "tqc_target", "TQCKeys", "truncated_quantiles", "quantile_huber_loss"]

# model-based losses (functional.model_based)
from .model_based import (  # noqa: E402
    DreamerActorKeys,
    DreamerModelKeys,
    DreamerValueKeys,
    WorldModelKeys,
    dreamer_actor_loss,
    dreamer_model_loss,
    dreamer_value_loss,
    world_model_loss,
)

__all__ += [
    "dreamer_model_loss", "dreamer_actor_loss", "dreamer_value_loss",
    "DreamerModelKeys", "DreamerActorKeys", "DreamerValueKeys",
    "world_model_loss", "WorldModelKeys",
]

# exploration losses (Random Network Distillation)
from .keys import RNDKeys  # noqa: E402
from .rnd import rnd_loss, rnd_normalize_observation, running_mean_std_update  # noqa: E402

__all__ += ["rnd_loss", "RNDKeys", "rnd_normalize_observation", "running_mean_std_update"]

# imitation learning (functional.imitation)
from .imitation import (  # noqa: E402
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

__all__ += [
    "bc_loss", "dt_loss", "online_dt_loss", "act_loss", "diffusion_bc_loss",
    "ddpm_add_noise", "sample_diffusion_inputs", "gaussian_kl_to_standard",
    "BCKeys", "DTKeys", "OnlineDTKeys", "ACTKeys", "DiffusionBCKeys"]

# TD3+BC, REDQ and CrossQ, and the per-sample pieces of TD3 they share
from .crossq import crossq_loss  # noqa: E402
from .keys import CrossQKeys, REDQKeys, TD3BCKeys  # noqa: E402
from .redq import redq_critic_subset, redq_loss  # noqa: E402
from .td3 import TD3Terms, td3_terms  # noqa: E402
from .td3bc import td3bc_loss  # noqa: E402

__all__ += ["td3bc_loss", "td3_terms", "TD3Terms", "TD3BCKeys", "redq_loss", "redq_critic_subset", "REDQKeys",
            "crossq_loss", "CrossQKeys"]

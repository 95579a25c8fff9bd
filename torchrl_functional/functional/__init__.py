"""Pure layer: tensor kernels and TensorDict losses. No parameters, no state, no modules.

Tensor kernels (tensors in, tensors out) live in :mod:`.value`, :mod:`.policy_gradient`,
:mod:`.value_learning` and :mod:`.distributions`; TensorDict losses (precomputed network
outputs in, a TensorDict of losses out) in :mod:`.ppo`, :mod:`.a2c`, :mod:`.reinforce`.
"""

from .a2c import a2c_loss
from .distributions import build_distribution, entropy, kl_divergence, sample_and_log_prob
from .keys import A2CKeys, OnPolicyKeys, PPOKeys, ReinforceKeys
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
from .value import (
    generalized_advantage_estimate,
    reverse_discounted_scan,
    td0_advantage_estimate,
    td0_return_estimate,
    td1_advantage_estimate,
    td1_return_estimate,
    td_lambda_advantage_estimate,
    td_lambda_return_estimate,
    vtrace_advantage_estimate,
)
from ._validation import check_finite, set_check_finite
from .value_learning import clipped_value_loss, distance_loss, explained_variance

__all__ = [
    # opt-in input checks
    "check_finite",
    "set_check_finite",
    # TensorDict losses
    "ppo_loss",
    "clip_ppo_loss",
    "klpen_ppo_loss",
    "a2c_loss",
    "reinforce_loss",
    # keys
    "OnPolicyKeys",
    "PPOKeys",
    "A2CKeys",
    "ReinforceKeys",
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

"""torchrl-functional: TorchRL loss objectives as pure functions.

- :mod:`torchrl_functional.functional`: stateless TensorDict losses and tensor kernels
  (``clip_ppo_loss(td, dist_class, **hyper)``), ``torch.func``/``torch.compile`` friendly,
  hyperparameters may be tensors with gradients.
- :mod:`torchrl_functional.modules`: drop-in subclasses of ``torchrl.objectives`` losses
  whose ``forward`` runs the networks and calls the functional loss.
- :mod:`torchrl_functional.pai`: PerforatedAI adapter for several networks sharing one
  PAI-managed optimizer (extra ``pai``).
"""

from . import errors, functional
from .errors import (
    EntryDtypeError,
    EntryRequiresGradError,
    EntryShapeError,
    HyperparameterError,
    LossInputError,
    MissingEntryError,
    NonFiniteEntryError,
)
from .functional import (
    A2CKeys,
    CQLKeys,
    DDPGKeys,
    DiscreteCQLKeys,
    DiscreteSACKeys,
    DistillationKeys,
    DQNKeys,
    GRPOKeys,
    IQLKeys,
    PPOKeys,
    ReinforceKeys,
    SACKeys,
    SFTKeys,
    TD3Keys,
    a2c_loss,
    check_finite,
    cispo_loss,
    clip_ppo_loss,
    cql_loss,
    dapo_loss,
    ddpg_loss,
    discrete_cql_loss,
    discrete_iql_loss,
    discrete_sac_loss,
    distillation_loss,
    dqn_loss,
    grpo_loss,
    iql_loss,
    klpen_ppo_loss,
    ppo_loss,
    reinforce_loss,
    sac_loss,
    sft_loss,
    td3_loss,
)

__version__ = "0.1.0"

__all__ = [
    "functional",
    "errors",
    "check_finite",
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
    "grpo_loss",
    "dapo_loss",
    "cispo_loss",
    "sft_loss",
    "distillation_loss",
    "GRPOKeys",
    "SFTKeys",
    "DistillationKeys",
    "DQNKeys",
    "DDPGKeys",
    "TD3Keys",
    "SACKeys",
    "DiscreteSACKeys",
    "IQLKeys",
    "CQLKeys",
    "DiscreteCQLKeys",
    "PPOKeys",
    "A2CKeys",
    "ReinforceKeys",
    "LossInputError",
    "MissingEntryError",
    "EntryShapeError",
    "EntryDtypeError",
    "EntryRequiresGradError",
    "NonFiniteEntryError",
    "HyperparameterError",
]

from .functional import SACV1Keys, sac_v1_loss  # noqa: E402

__all__ += ["sac_v1_loss", "SACV1Keys"]

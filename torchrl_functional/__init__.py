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
    PPOKeys,
    ReinforceKeys,
    a2c_loss,
    check_finite,
    clip_ppo_loss,
    klpen_ppo_loss,
    ppo_loss,
    reinforce_loss,
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

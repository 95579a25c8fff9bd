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
from .errors import *  # noqa: F403  (the exceptions raised for bad input)
from .functional import *  # noqa: F403  (every loss, keys object and kernel)

__version__ = "0.1.0"

__all__ = ["functional", "errors"]
__all__ += errors.__all__
__all__ += functional.__all__

"""Drop-in replacements for ``torchrl.objectives`` loss modules.

Each class subclasses the TorchRL 0.14.1 class of the same name (same constructor,
keys, value estimators, buffers and outputs); its ``forward`` runs the networks and
the value estimator, then calls the matching function of
:mod:`torchrl_functional.functional`. Swap the import and keep the rest::

    from torchrl_functional.modules import ClipPPOLoss
"""

from .a2c import A2CLoss
from .cql import CQLLoss, DiscreteCQLLoss
from .ddpg import DDPGLoss
from .dqn import DQNLoss
from .iql import DiscreteIQLLoss, IQLLoss
from .llm import DAPO, CISPOLoss, DistillationLoss, GRPOLoss, SFTLoss
from .ppo import ClipPPOLoss, KLPENPPOLoss, PPOLoss
from .reinforce import ReinforceLoss
from .sac import DiscreteSACLoss, SACLoss
from .td3 import TD3Loss

__all__ = [
    "PPOLoss", "ClipPPOLoss", "KLPENPPOLoss", "A2CLoss", "ReinforceLoss",
    "DQNLoss", "DDPGLoss", "TD3Loss", "SACLoss", "DiscreteSACLoss", "IQLLoss", "DiscreteIQLLoss",
    "CQLLoss", "DiscreteCQLLoss",
    "GRPOLoss", "DAPO", "CISPOLoss", "SFTLoss", "DistillationLoss",
]

# TD3+BC, REDQ and CrossQ
from .crossq import CrossQLoss  # noqa: E402
from .redq import REDQLoss  # noqa: E402
from .td3bc import TD3BCLoss  # noqa: E402

__all__ += ["TD3BCLoss", "REDQLoss", "CrossQLoss"]

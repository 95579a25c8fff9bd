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
# multi-agent PPO
from .mappo import IPPOLoss, MAPPOLoss  # noqa: E402

__all__ += ["MAPPOLoss", "IPPOLoss"]
# imitation: GAIL
from .gail import GAILLoss  # noqa: E402

__all__ += ["GAILLoss"]

# model-based: DreamerV3
from .model_based import DreamerV3ActorLoss, DreamerV3ModelLoss, DreamerV3ValueLoss  # noqa: E402

__all__ += ["DreamerV3ModelLoss", "DreamerV3ActorLoss", "DreamerV3ValueLoss"]

# distributional DQN, QMixer, TQC
from .distributional_dqn import DistributionalDQNLoss  # noqa: E402
from .qmixer import QMixerLoss  # noqa: E402
from .tqc import TQCLoss  # noqa: E402

__all__ += ["DistributionalDQNLoss", "QMixerLoss", "TQCLoss"]

# model-based losses (modules.model_based)
from .model_based import DreamerActorLoss, DreamerModelLoss, DreamerValueLoss, WorldModelLoss  # noqa: E402

__all__ += ["DreamerModelLoss", "DreamerActorLoss", "DreamerValueLoss", "WorldModelLoss"]

# exploration losses
from .rnd import RNDLoss  # noqa: E402

__all__ += ["RNDLoss"]

# imitation learning (modules.imitation)
from .imitation import ACTLoss, BCLoss, DiffusionBCLoss, DTLoss, OnlineDTLoss  # noqa: E402

__all__ += ["BCLoss", "DTLoss", "OnlineDTLoss", "ACTLoss", "DiffusionBCLoss"]

# TD3+BC, REDQ and CrossQ
from .crossq import CrossQLoss  # noqa: E402
from .redq import REDQLoss  # noqa: E402
from .td3bc import TD3BCLoss  # noqa: E402

__all__ += ["TD3BCLoss", "REDQLoss", "CrossQLoss"]

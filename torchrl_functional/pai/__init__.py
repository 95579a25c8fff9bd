"""PerforatedAI adapter: dendrites on several RL networks with one shared optimizer.

:class:`PAIGroup` owns PerforatedAI (PAI) for a named group of networks (actor, critic,
value net, meta-net ...): one PAI-managed optimizer with a param group and learning rate
per network (Case 1), networks with optimizers of other types whose lr follows PAI's
schedule (Case 2) or their own scheduler (Case 3), rebuilding everything after PAI
restructures the networks, TorchRL loss modules kept on the current parameters,
non-interactive and silent defaults, and checkpoints that resume in a fresh process::

    from torchrl_functional.pai import NetworkSpec, PAIGroup, PAISettings

    group = PAIGroup(
        "ppo",
        {"actor": NetworkSpec(actor, lr=3e-4), "critic": NetworkSpec(critic, lr=1e-3)},
        directory="runs/pai",
        settings=PAISettings(switch_mode="fixed", fixed_switch_num=20),
    )
    loss = group.track_loss(ClipPPOLoss(group["actor"], group["critic"]))
    ...
    group.optimizer.zero_grad(); loss_value.backward(); group.optimizer.step()
    result = group.add_score(mean_return)   # may restructure; optimizers rebuilt

Needs the ``pai`` extra (``perforatedai>=3.2.9,<3.3``); importing this module does not
import perforatedai, building a group does.
"""

from .checkpoint import read_checkpoint, write_checkpoint
from .config import NetworkSpec, PAISettings
from .errors import (
    PAICheckpointError,
    PAIConfigError,
    PAIError,
    PAIInterruptError,
    PAINotInstalledError,
    PAIShapeError,
    PAIStateError,
)
from .group import PAIGroup, ScoreResult
from .losses import disable_value_estimator_vmap, refresh_loss_module

__all__ = [
    "PAIGroup",
    "NetworkSpec",
    "PAISettings",
    "ScoreResult",
    "refresh_loss_module",
    "disable_value_estimator_vmap",
    "read_checkpoint",
    "write_checkpoint",
    "PAIError",
    "PAINotInstalledError",
    "PAIConfigError",
    "PAIShapeError",
    "PAIStateError",
    "PAIInterruptError",
    "PAICheckpointError",
]

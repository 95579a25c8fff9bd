"""PerforatedAI adapter: dendrites on several RL networks, one PAI-managed optimizer.

:class:`PAIGroup` owns PerforatedAI (PAI) for a named group of ``n`` networks (actor,
critics, value net, meta-net ...), covering the three cases of PAI's guide with one
:class:`NetworkSpec` per network: a param group of the shared PAI-managed optimizer
(Case 1), an optimizer of another type whose lr follows PAI's schedule (Case 2), or one
whose lr is left to you (Case 3, ``follow_pai_lr=False``). The group rebuilds every
optimizer after PAI restructures the networks, keeps TorchRL loss modules
(:meth:`PAIGroup.track_loss`) and target networks (:meth:`PAIGroup.target`) on the
current parameters, runs PAI non-interactively without touching the working directory,
stdout or warnings of the process, and saves checkpoints that resume in a fresh process::

    from torchrl_functional.pai import NetworkSpec, PAIGroup, PAISettings

    with PAIGroup(
        "ppo",
        {"actor": NetworkSpec(actor, lr=3e-4), "critic": NetworkSpec(critic, lr=1e-3)},
        directory="runs/ppo_pai",
        settings=PAISettings(switch_mode="fixed", fixed_switch_num=20),
    ) as group:
        loss = group.track_loss(ClipPPOLoss(group["actor"], group["critic"]))
        ...
        group.zero_grad(); loss_value.backward(); group.step()
        result = group.add_score(mean_return)   # may restructure; optimizers rebuilt

Needs the ``pai`` extra (``perforatedai>=3.2.9,<3.3``); importing this module does not
import perforatedai, building a group does.
"""

from . import errors
from .config import NetworkSpec, PAISettings
from .errors import *  # noqa: F403  (every error class)
from .group import PAIGroup, ScoreResult
from .targets import TargetNetwork

__all__ = ["PAIGroup", "NetworkSpec", "PAISettings", "ScoreResult", "TargetNetwork"]
__all__ += errors.__all__

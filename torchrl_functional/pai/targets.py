"""Target networks of a group's networks that follow PAI's restructures.

A target network (DQN, DDPG, TD3, SAC ...) is a slowly updated copy of a network. With
PAI the network grows dendrites in place; a ``copy.deepcopy`` made earlier keeps the old
structure. :class:`TargetNetwork` holds only the target's parameter values and runs the
network itself with them (``torch.func.functional_call``), so it always has the network's
current structure: after a restructure, entries that still exist with the same shape keep
their target values and new entries (dendrites) start as copies of the network's values.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .errors import PAIConfigError

__all__ = ["TargetNetwork"]


class TargetNetwork:
    """Target copy of network ``name`` of a :class:`~torchrl_functional.pai.PAIGroup`
    (create it with ``group.target(name)``; the group refreshes it after every
    restructure and load, and saves it in checkpoints).

    Calling it runs the network under ``torch.no_grad()`` with the target's parameter
    values and the network's buffers: ``q_next = target(obs, action)``, same inputs and
    output shapes as the network. PAI's frozen and template parameters are included.
    """

    def __init__(self, group: Any, name: str) -> None:
        self._group = group
        self.name = name
        self._params: dict[str, torch.Tensor] = {}
        self.refresh()

    def _network(self) -> nn.Module:
        return self._group[self.name]

    @property
    def params(self) -> dict[str, torch.Tensor]:
        """The target's values by parameter name of the network (detached tensors)."""
        return self._params

    def refresh(self) -> None:
        """Match the network's current structure (called by the group after restructures)."""
        old = self._params
        new = {}
        for pname, p in self._network().named_parameters():
            kept = old.get(pname)
            new[pname] = kept if kept is not None and kept.shape == p.shape else p.detach().clone()
        self._params = new

    def load(self, values: dict[str, torch.Tensor]) -> None:
        """Set the target's values from ``values`` (e.g. a checkpoint), by parameter name.

        Args:
            values: ``{parameter name: tensor}`` of the network's current structure.

        Raises:
            PAIConfigError: names or shapes differ from the network's parameters.
        """
        mine = {k: v.shape for k, v in self._params.items()}
        theirs = {k: v.shape for k, v in values.items()}
        if mine != theirs:
            diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            raise PAIConfigError(f"target of {self.name!r}: parameters differ from the network's: {diff[:5]}")
        self._params = {k: v.detach().clone() for k, v in values.items()}

    @torch.no_grad()
    def update(self, tau: float = 1.0) -> None:
        """Polyak update ``target <- (1 - tau) target + tau network`` (``tau=1``: copy).

        Args:
            tau: weight of the network's values, in ``(0, 1]`` (SAC uses 0.005).
        """
        if not 0.0 < tau <= 1.0:
            raise PAIConfigError(f"target of {self.name!r}: tau must be in (0, 1], got {tau!r}")
        current = dict(self._network().named_parameters())
        if current.keys() != self._params.keys():
            self.refresh()
        for pname, target in self._params.items():
            target.lerp_(current[pname].detach(), tau)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the network with the target's values (no gradients).

        Args:
            args, kwargs: the network's inputs (e.g. ``[B, obs]`` and ``[B, act]`` for a
                Q network); the output has the network's shape (e.g. ``[B, 1]``).
        """
        with torch.no_grad():
            return torch.func.functional_call(self._network(), self._params, args, kwargs, strict=False)

    def __repr__(self) -> str:
        return f"TargetNetwork({self.name!r}, {len(self._params)} tensors)"

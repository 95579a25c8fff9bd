"""Settings of a :class:`~torchrl_functional.pai.PAIGroup`, checked before PAI sees them.

:class:`PAISettings` says when PAI adds dendrites; :class:`NetworkSpec` says, per network,
its learning rate, whether it gets dendrites, and which optimizer trains it (the shared
PAI-managed one, or one of its own). Every mistake PAI would answer with ``pdb`` or
``sys.exit`` (a ``/`` in the save name, an invalid ``output_dimensions``) or with a printed
warning only (a misspelt setting) raises :class:`~torchrl_functional.pai.errors.PAIConfigError`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from .errors import PAIConfigError

__all__ = ["PAISettings", "NetworkSpec", "SwitchMode", "GroupModel", "check_networks", "scheduler_kwargs_for"]

SwitchMode = Literal["history", "fixed", "every_time", "none"]

#: PAI's constants for the switch modes (``GPA.pc.DOING_*``).
SWITCH_MODES: dict[str, str] = {
    "every_time": "DOING_SWITCH_EVERY_TIME",
    "history": "DOING_HISTORY",
    "fixed": "DOING_FIXED_SWITCH",
    "none": "DOING_NO_SWITCH",
}

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_NETWORK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
#: PAI settings ``extra`` may not set: the adapter sets them (safety) or a field does.
_RESERVED = {
    "save_name": "the group name and directory",
    "device": "PAIGroup(device=...)",
    "use_cuda": "PAIGroup(device=...)",
    "silent": "PAIGroup(verbose=...)",
    "verbose": "PAIGroup(verbose=...)",
    "maximizing_score": "PAIGroup(maximize=...)",
    "configuration_confirmed": "always True (no interactive configuration)",
    "unwrapped_modules_confirmed": "always True (no pdb on an unwrapped parameter)",
    "testing_dendrite_capacity": "always False (a restructure at every score otherwise)",
    "config_file": "the group's own configuration",
    "module_ids_to_track": "NetworkSpec(dendrites=False)",
    "switch_mode": "PAISettings.switch_mode",
    "n_epochs_to_switch": "PAISettings.n_epochs_to_switch",
    "fixed_switch_num": "PAISettings.fixed_switch_num",
    "first_fixed_switch_num": "PAISettings.first_fixed_switch_num",
    "max_dendrites": "PAISettings.max_dendrites",
    "max_dendrite_tries": "PAISettings.max_dendrite_tries",
    "find_best_lr": "PAISettings.find_best_lr",
    "test_saves": "PAISettings.save_intermediate",
}


@dataclass(frozen=True)
class PAISettings:
    """When and how PAI adds dendrites (applied to a fresh PAI configuration per group).

    Attributes:
        switch_mode: ``"history"`` (PAI's default: add dendrites once the score stopped
            improving for ``n_epochs_to_switch`` scores), ``"fixed"`` (every
            ``fixed_switch_num`` scores), ``"every_time"`` (every score, for debugging)
            or ``"none"`` (never; plain training with PAI's scheduler).
        n_epochs_to_switch: scores without improvement before a switch (``"history"``).
        fixed_switch_num: scores between switches (``"fixed"``).
        first_fixed_switch_num: scores before the first switch (``"fixed"``; ``-1``: same).
        max_dendrites: stop adding dendrites after this many.
        max_dendrite_tries: new random dendrites tried when the last ones did not improve
            the score, before PAI declares training complete.
        find_best_lr: after a switch, let PAI search the restart learning rate (it
            reloads weights and may restructure again without adding dendrites).
        save_intermediate: PAI's ``test_saves``: extra snapshots (``latest.pt``, ...).
        graphs: PAI's CSV/PNG graphs (0.7-2.5 s per score).
        extra: any other PAI setting, by the name of its ``GPA.pc.set_<name>`` setter
            (e.g. ``{"improvement_threshold": [0.01, 0.001, 0.0]}``); unknown names raise.
    """

    switch_mode: SwitchMode = "history"
    n_epochs_to_switch: int = 10
    fixed_switch_num: int = 250
    first_fixed_switch_num: int = -1
    max_dendrites: int = 100
    max_dendrite_tries: int = 2
    find_best_lr: bool = True
    save_intermediate: bool = False
    graphs: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.switch_mode not in SWITCH_MODES:
            raise PAIConfigError(
                f"PAISettings.switch_mode must be one of {sorted(SWITCH_MODES)}, got {self.switch_mode!r}"
            )
        for name in ("n_epochs_to_switch", "fixed_switch_num", "max_dendrites", "max_dendrite_tries"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise PAIConfigError(f"PAISettings.{name} must be a positive int, got {value!r}")
        if not isinstance(self.first_fixed_switch_num, int) or self.first_fixed_switch_num < -1:
            raise PAIConfigError(
                f"PAISettings.first_fixed_switch_num must be an int >= -1, got {self.first_fixed_switch_num!r}"
            )
        if not isinstance(self.extra, Mapping):
            raise PAIConfigError(f"PAISettings.extra must be a mapping, got {type(self.extra).__name__}")
        for key in self.extra:
            if key in _RESERVED:
                raise PAIConfigError(f"PAISettings.extra[{key!r}] is set by the adapter ({_RESERVED[key]})")

    def fingerprint(self) -> dict[str, Any]:
        """Plain-data summary stored in checkpoints (``extra`` values as ``repr``)."""
        return {
            "switch_mode": self.switch_mode,
            "n_epochs_to_switch": self.n_epochs_to_switch,
            "fixed_switch_num": self.fixed_switch_num,
            "first_fixed_switch_num": self.first_fixed_switch_num,
            "max_dendrites": self.max_dendrites,
            "max_dendrite_tries": self.max_dendrite_tries,
            "find_best_lr": self.find_best_lr,
            "extra": {str(k): repr(v) for k, v in sorted(self.extra.items())},
        }


@dataclass
class NetworkSpec:
    """One network of a group: its learning rate, its dendrites and its optimizer.

    The three ways of PAI's guide to give ``n`` networks their optimizers:

    - Case 1 (recommended), ``optimizer=None``: a param group of the group's shared
      PAI-managed optimizer, scheduled by PAI.
    - Case 2, ``optimizer=cls``: an optimizer of its own (another type), whose lr follows
      PAI's schedule at this network's ratio (``lr / base lr`` is PAI's factor).
    - Case 3 (not recommended), ``optimizer=cls, follow_pai_lr=False``: an optimizer of its
      own whose lr the group never changes; step your own scheduler on
      ``group.optimizers[name]`` (the same object for the group's lifetime).

    Attributes:
        module: the network (any ``nn.Module`` holding PAI-convertible layers: an MLP, a
            ``ProbabilisticActor``, a ``ValueOperator`` ...). PAI modifies it in place. A
            network that is itself a single layer PAI converts (a bare ``nn.Linear``) is
            refused with dendrites: PAI would replace it by a new object.
        lr: its learning rate (the base rate: PAI's scheduler scales it).
        dendrites: ``False`` keeps the network as it is (PAI only tracks it), e.g.
            dendrites on the actor only.
        output_dimensions: PAI's layout of the outputs of its layers, one entry per
            output dimension: ``0`` marks the neuron (feature) dimension, ``-1`` a
            dimension PAI averages over. Default ``[-1, 0]`` for ``[B, F]`` outputs of
            ``Linear`` layers; use ``[-1, -1, 0]`` for ``[B, T, F]``.
        optimizer: ``None`` (Case 1) or an optimizer class (Cases 2 and 3).
        optimizer_kwargs: keyword arguments of ``optimizer`` besides ``params``/``lr``.
        follow_pai_lr: with ``optimizer`` only; ``False`` for Case 3.
    """

    module: nn.Module
    lr: float
    dendrites: bool = True
    output_dimensions: Sequence[int] | None = None
    optimizer: type[torch.optim.Optimizer] | None = None
    optimizer_kwargs: Mapping[str, Any] = field(default_factory=dict)
    follow_pai_lr: bool = True

    @property
    def case(self) -> int:
        """1: shared optimizer; 2: own optimizer following PAI's lr; 3: own lr."""
        if self.optimizer is None:
            return 1
        return 2 if self.follow_pai_lr else 3

    def validate(self, group: str, name: str) -> None:
        """Raise :class:`PAIConfigError` naming ``group`` and network ``name`` if invalid.

        Args:
            group: the group's name.
            name: the network's name in the group.
        """
        where = f"PAIGroup({group!r}): network {name!r}"
        if not isinstance(self.module, nn.Module):
            raise PAIConfigError(f"{where}: module must be an nn.Module, got {type(self.module).__name__}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not math.isfinite(self.lr) or self.lr <= 0:
            raise PAIConfigError(f"{where}: lr must be a positive finite number, got {self.lr!r}")
        for flag in ("dendrites", "follow_pai_lr"):
            if not isinstance(getattr(self, flag), bool):
                raise PAIConfigError(f"{where}: {flag} must be True or False, got {getattr(self, flag)!r}")
        if self.output_dimensions is not None:
            check_output_dimensions(where, self.output_dimensions)
            if not self.dendrites:
                raise PAIConfigError(f"{where}: output_dimensions only applies to networks with dendrites")
        if self.optimizer is not None and not (
            isinstance(self.optimizer, type) and issubclass(self.optimizer, torch.optim.Optimizer)
        ):
            raise PAIConfigError(f"{where}: optimizer must be a torch.optim.Optimizer subclass, got {self.optimizer!r}")
        if self.optimizer is None and not self.follow_pai_lr:
            raise PAIConfigError(
                f"{where}: follow_pai_lr=False needs an optimizer of its own (Case 3); "
                "networks on the shared optimizer follow PAI's scheduler"
            )
        if self.optimizer is None and self.optimizer_kwargs:
            raise PAIConfigError(
                f"{where}: optimizer_kwargs need optimizer=...; the shared optimizer takes "
                "PAIGroup(optimizer_kwargs=...)"
            )
        for key in ("params", "lr"):
            if key in self.optimizer_kwargs:
                raise PAIConfigError(f"{where}: optimizer_kwargs must not contain {key!r} (set by the group)")

    def fingerprint(self) -> dict[str, Any]:
        """Plain-data summary stored in checkpoints (the module itself excluded)."""
        return {
            "lr": float(self.lr),
            "dendrites": self.dendrites,
            "output_dimensions": None if self.output_dimensions is None else [int(d) for d in self.output_dimensions],
            "optimizer": None if self.optimizer is None else _qualname(self.optimizer),
            "optimizer_kwargs": {k: repr(v) for k, v in sorted(self.optimizer_kwargs.items())},
            "follow_pai_lr": self.follow_pai_lr,
        }


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def check_output_dimensions(where: str, dims: Sequence[int]) -> None:
    """PAI needs exactly one ``0`` (the neuron dimension); other entries ``-1``, ``1`` or a size.

    Args:
        where: names the network in error messages.
        dims: one entry per output dimension of the network's layers.
    """
    try:
        values = [int(d) for d in dims]
    except (TypeError, ValueError):
        raise PAIConfigError(f"{where}: output_dimensions must be a sequence of ints, got {dims!r}") from None
    if any(v != d for v, d in zip(values, dims)) or len(values) < 1:
        raise PAIConfigError(f"{where}: output_dimensions must be a non-empty sequence of ints, got {dims!r}")
    if values.count(0) != 1:
        raise PAIConfigError(
            f"{where}: output_dimensions needs exactly one 0 (the feature dimension), got {values}"
        )
    if any(v < -1 for v in values):
        raise PAIConfigError(f"{where}: output_dimensions entries must be -1, 0, 1 or a size, got {values}")


def check_group_name(name: Any) -> str:
    """The group name is PAI's save name: a folder under the output directory.

    Args:
        name: the name given to :class:`~torchrl_functional.pai.PAIGroup`.
    """
    if not isinstance(name, str) or not name:
        raise PAIConfigError(f"PAIGroup: name must be a non-empty string, got {name!r}")
    if "/" in name or "\\" in name:
        raise PAIConfigError(
            f"PAIGroup({name!r}): the name must not contain a path separator (PAI would call "
            "sys.exit); choose the location with directory=..."
        )
    if not _NAME.match(name) or name in (".", ".."):
        raise PAIConfigError(
            f"PAIGroup({name!r}): the name may only contain letters, digits, '_', '-' and '.' "
            "(PAI would silently rename the folder)"
        )
    return name


class GroupModel(nn.Module):
    """The top-level module PAI converts and tracks: the networks as attributes."""

    def forward(self, *args, **kwargs):  # pragma: no cover - never called
        raise RuntimeError("call the networks of the group, not the group module")


_RESERVED_NAMES = set(dir(GroupModel())) | {"tracker_string", "member_vars", "networks"}


def check_network_name(group: str, name: Any) -> str:
    """A network name is an attribute of PAI's top-level module: an identifier, not ``module``
    (PAI then takes the model for a wrapper and stops in pdb), not an ``nn.Module`` attribute.

    Args:
        group: the group's name (for messages).
        name: the network's name.
    """
    if not isinstance(name, str) or not _NETWORK_NAME.match(name):
        raise PAIConfigError(
            f"PAIGroup({group!r}): network names must be identifiers (letters, digits, '_'), got {name!r}"
        )
    if name == "module":
        raise PAIConfigError(
            f"PAIGroup({group!r}): a network may not be called 'module': PAI treats a top-level "
            "model with a .module attribute as a DataParallel/TensorDictModule wrapper and stops "
            "in pdb; pick another name"
        )
    if name in _RESERVED_NAMES:
        raise PAIConfigError(f"PAIGroup({group!r}): network name {name!r} clashes with an nn.Module attribute")
    return name


def check_networks(group: str, networks: Any) -> dict[str, NetworkSpec]:
    """The group's ``{name: NetworkSpec}``, each checked; at least one on the shared optimizer.

    Args:
        group: the group's name (for messages).
        networks: what was given as ``PAIGroup(networks=...)``.
    """
    where = f"PAIGroup({group!r})"
    if not isinstance(networks, Mapping) or not networks:
        raise PAIConfigError(f"{where}: networks must be a non-empty mapping of name -> NetworkSpec")
    specs: dict[str, NetworkSpec] = {}
    seen: dict[int, str] = {}
    for net_name, spec in networks.items():
        check_network_name(group, net_name)
        if not isinstance(spec, NetworkSpec):
            raise PAIConfigError(
                f"{where}: network {net_name!r} must be a NetworkSpec (e.g. NetworkSpec(module, lr=1e-3)), "
                f"got {type(spec).__name__}"
            )
        spec.validate(group, net_name)
        if id(spec.module) in seen:
            raise PAIConfigError(f"{where}: networks {seen[id(spec.module)]!r} and {net_name!r} are the same module")
        seen[id(spec.module)] = net_name
        specs[net_name] = spec
    if not any(spec.case == 1 for spec in specs.values()):
        raise PAIConfigError(
            f"{where}: at least one network must use the shared PAI-managed optimizer "
            "(NetworkSpec(optimizer=None)); PAI schedules learning rates through it"
        )
    return specs


def scheduler_kwargs_for(where: str, cls: Any, kwargs: Mapping[str, Any] | None, maximize: bool) -> dict[str, Any]:
    """``kwargs`` of a scheduler class, with ``mode`` from ``maximize`` for ``ReduceLROnPlateau``.

    Args:
        where: names the caller in error messages.
        cls: the scheduler class (or ``None``).
        kwargs: its arguments as given.
        maximize: whether a higher score is better.
    """
    kwargs = dict(kwargs or {})
    if cls is not None and isinstance(cls, type) and issubclass(cls, torch.optim.lr_scheduler.ReduceLROnPlateau):
        mode = "max" if maximize else "min"
        if kwargs.setdefault("mode", mode) != mode:
            raise PAIConfigError(f"{where}: ReduceLROnPlateau(mode={kwargs['mode']!r}) contradicts maximize={maximize}")
    return kwargs

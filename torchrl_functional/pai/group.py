"""A named group of networks that grow dendrites together under one PAI tracker.

PerforatedAI (PAI) keeps one global tracker, one optimizer and one scheduler. RL needs
several networks (actor, critic, value net, meta-net ...), each with its own learning rate,
some with an optimizer of another kind. :class:`PAIGroup` owns PAI for such a group:

- **Case 1 (recommended)**: one PAI-managed optimizer with one param group per network
  (own lr) and PAI's scheduler; :meth:`PAIGroup.train_only` freezes the other networks
  for alternating updates and restores every ``requires_grad`` flag afterwards.
- **Case 2**: a network with an optimizer of another class; rebuilt after each
  restructure, its lr follows PAI's schedule (``lr / shared lr`` stays constant).
- **Case 3** (not recommended): a network with its own optimizer *and* scheduler.
- :meth:`PAIGroup.add_score` feeds PAI the score and, when PAI restructures the networks,
  rebuilds every optimizer from fresh parameter lists and refreshes the loss modules
  registered with :meth:`PAIGroup.track_loss`.
- Safe defaults: no interactive configuration, silent, CPU unless told, every PAI file
  under ``directory/<name>/``, a fresh PAI configuration per group; PAI's ``pdb`` and
  ``sys.exit`` become exceptions.
- :meth:`PAIGroup.save_checkpoint` / :meth:`PAIGroup.load_checkpoint`: resume in a fresh
  process, after restructures, with optimizer, scheduler and PAI tracker state.

Only one group is driven by PAI's globals at a time; every call (and every forward pass
of a layer with dendrites) first installs the calling group's PAI state, so several
groups can be used in turn in one process (not from several threads).
"""

from __future__ import annotations

import contextlib
import math
import re
import shutil
import warnings
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._runtime import PAIModules, import_pai, pai_call
from .checkpoint import read_checkpoint, write_checkpoint
from .config import SWITCH_MODES, NetworkSpec, PAISettings, check_group_name, check_network_name
from .errors import PAICheckpointError, PAIConfigError, PAIShapeError, PAIStateError
from .losses import disable_value_estimator_vmap, refresh_loss_module

__all__ = ["PAIGroup", "ScoreResult"]

_PLATEAU = torch.optim.lr_scheduler.ReduceLROnPlateau
_DEFAULT = object()


@dataclass(frozen=True)
class ScoreResult:
    """What :meth:`PAIGroup.add_score` did.

    Attributes:
        restructured: PAI changed the networks (dendrites added, or weights reloaded for
            a learning-rate restart); every optimizer was rebuilt.
        training_complete: PAI considers training finished (best model loaded).
        param_counts: parameters per network as PAI counts them (its internal template
            copies of each layer excluded).
        lrs: current learning rate of every network.
        num_dendrites: dendrite sets added so far (PAI's ``num_dendrites_added``).
        num_scores: scores given to the group so far, this one included.
    """

    restructured: bool
    training_complete: bool
    param_counts: Mapping[str, int]
    lrs: Mapping[str, float]
    num_dendrites: int
    num_scores: int

    @property
    def total_params(self) -> int:
        return sum(self.param_counts.values())


class _ActivateGroup:
    """Forward pre-hook installing the group's PAI state before a layer with dendrites runs.

    Holds the group weakly; a deep copy of a network keeps pointing at the same group, a
    pickled network (e.g. sent to a collector worker) drops the link.
    """

    def __init__(self, group: PAIGroup) -> None:
        self._ref: weakref.ref | None = weakref.ref(group)

    def __call__(self, module: nn.Module, args: tuple) -> None:
        group = self._ref() if self._ref is not None else None
        if group is not None:
            group._activate()

    def __deepcopy__(self, memo: dict) -> _ActivateGroup:
        return self

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self._ref = None


def _rank_preserving(layer: nn.Module) -> bool:
    """Layers whose output has the rank of their input (PAI's default targets)."""
    main = getattr(layer, "main_module", None)
    if type(main).__name__ == "PAISequential" and len(getattr(main, "model", ())):
        main = main.model[0]
    return isinstance(main, (nn.Linear, nn.modules.conv._ConvNd))


class _ShapeCheck:
    """Forward hooks checking a layer with dendrites against PAI's ``output_dimensions``.

    PAI checks them in its first backward pass and calls ``sys.exit`` on a mismatch; once
    it has added dendrites it silently broadcasts other ranks to wrong shapes. The
    dimensions are read when the hooks are installed: inside ``torch.func`` transforms
    the layer's buffer may be a batched tensor.
    """

    def __init__(self, group: str, network: str, layer: nn.Module) -> None:
        self.group = group
        self.network = network
        self.dims = [int(d) for d in layer.this_output_dimensions.tolist()]
        self.check_input = _rank_preserving(layer)

    def message(self, layer: nn.Module, what: str, shape) -> str:
        return (
            f"PAIGroup({self.group!r}): network {self.network!r}, layer {layer.name!r}: {what} of shape "
            f"{tuple(shape)} does not match PAI's output_dimensions {self.dims} (one entry per "
            "output dimension, 0 = features). Give NetworkSpec(output_dimensions=...) "
            "(e.g. [-1, -1, 0] for [B, T, F] inputs) and call the network with inputs of "
            "that rank only: PAI stops the process at the first backward pass otherwise, and "
            "once it has added dendrites it silently broadcasts other ranks to wrong shapes."
        )

    def before(self, module: nn.Module, args: tuple) -> None:
        x = args[0] if args else None
        if self.check_input and isinstance(x, torch.Tensor) and x.dim() != len(self.dims):
            raise PAIShapeError(self.message(module, "input", x.shape))

    def after(self, module: nn.Module, args: tuple, out: Any) -> None:
        if not isinstance(out, torch.Tensor):
            return
        dims = self.dims
        if out.dim() != len(dims) or any(d not in (-1, 0, 1) and out.shape[i] != d for i, d in enumerate(dims)):
            raise PAIShapeError(self.message(module, "output", out.shape))


class _GroupModel(nn.Module):
    """The top-level module PAI converts and tracks: the networks as attributes."""

    def forward(self, *args, **kwargs):  # pragma: no cover - never called
        raise RuntimeError("call the networks of the group, not the group module")


_RESERVED_NAMES = set(dir(_GroupModel())) | {"tracker_string", "member_vars", "networks"}


def _is_pai_run(path: Path, name: str) -> bool:
    """A folder PAI (or this adapter) wrote: safe to delete with ``overwrite=True``."""
    if not path.is_dir():
        return False
    entries = {p.name for p in path.iterdir()}
    return f"{name}_config.json" in entries or "pai_output.log" in entries or any(e.endswith(".pt") for e in entries)


def _is_template(param_name: str) -> bool:
    """PAI keeps an untrained copy of each layer as a template for new dendrites."""
    return ".parent_module." in f".{param_name}."


def _sched_kwargs(where: str, cls: Any, kwargs: Mapping[str, Any] | None, maximize: bool) -> dict[str, Any]:
    kwargs = dict(kwargs or {})
    if cls is not None and isinstance(cls, type) and issubclass(cls, _PLATEAU):
        mode = "max" if maximize else "min"
        if kwargs.setdefault("mode", mode) != mode:
            raise PAIConfigError(
                f"{where}: ReduceLROnPlateau(mode={kwargs['mode']!r}) contradicts maximize={maximize}"
            )
    return kwargs


class PAIGroup:
    """A named group of ``n`` networks that get dendrites from PerforatedAI together.

    Args:
        name: the group's name, PAI's save name: its files go to ``directory/name/``.
            Letters, digits, ``_``, ``-``, ``.``.
        networks: ``{name: NetworkSpec}`` (or ``{name: module}`` with ``lr=`` given),
            e.g. ``{"actor": NetworkSpec(actor, lr=3e-4), "critic": NetworkSpec(critic, lr=1e-3)}``.
            Each network is modified in place by PAI; use :attr:`networks` afterwards.
        directory: where every PAI file goes (required: never the current directory by
            accident). Created if missing.
        optimizer: class of the shared PAI-managed optimizer (Case 1 networks).
        optimizer_kwargs: its arguments besides ``params`` (lrs come from the specs).
        scheduler: PAI's scheduler class (stepped by PAI inside :meth:`add_score`), or
            ``None``. Default ``ReduceLROnPlateau`` with ``mode`` set from ``maximize``.
        scheduler_kwargs: its arguments (e.g. ``{"patience": 5, "factor": 0.5}``).
        maximize: ``True`` if a higher score is better (returns), ``False`` for losses.
        settings: when PAI adds dendrites (:class:`PAISettings`).
        lr: learning rate of networks given as bare modules.
        device: where PAI creates dendrite parameters (default CPU; the networks must be
            there already).
        verbose: echo PAI's output (it always goes to ``directory/name/pai_output.log``).
        overwrite: delete an existing ``directory/name/`` folder instead of refusing to
            start (PAI would silently reuse its configuration and snapshots).

    Raises:
        PAIConfigError: a bad name, setting or network (before PAI is touched).
        PAINotInstalledError: perforatedai is not installed.
    """

    def __init__(
        self,
        name: str,
        networks: Mapping[str, NetworkSpec | nn.Module],
        *,
        directory: str | Path,
        optimizer: type[torch.optim.Optimizer] = torch.optim.Adam,
        optimizer_kwargs: Mapping[str, Any] | None = None,
        scheduler: type | None = _DEFAULT,  # type: ignore[assignment]
        scheduler_kwargs: Mapping[str, Any] | None = None,
        maximize: bool = True,
        settings: PAISettings | None = None,
        lr: float | None = None,
        device: str | torch.device = "cpu",
        verbose: bool = False,
        overwrite: bool = False,
    ) -> None:
        self.name = check_group_name(name)
        where = f"PAIGroup({name!r})"
        self.settings = settings if settings is not None else PAISettings()
        if not isinstance(self.settings, PAISettings):
            raise PAIConfigError(f"{where}: settings must be a PAISettings, got {type(settings).__name__}")
        self.maximize = bool(maximize)
        self.verbose = bool(verbose)
        self.device = torch.device(device)
        if not (isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer)):
            raise PAIConfigError(f"{where}: optimizer must be a torch.optim.Optimizer subclass, got {optimizer!r}")
        self._optimizer_cls = optimizer
        self._optimizer_kwargs = dict(optimizer_kwargs or {})
        for key in ("params", "lr"):
            if key in self._optimizer_kwargs:
                raise PAIConfigError(f"{where}: optimizer_kwargs must not contain {key!r} (set per network)")
        self._scheduler_cls = _PLATEAU if scheduler is _DEFAULT else scheduler
        self._scheduler_kwargs = _sched_kwargs(where, self._scheduler_cls, scheduler_kwargs, self.maximize)
        if self._scheduler_cls is None and scheduler_kwargs:
            raise PAIConfigError(f"{where}: scheduler_kwargs given without a scheduler")

        if not isinstance(networks, Mapping) or not networks:
            raise PAIConfigError(f"{where}: networks must be a non-empty mapping of name -> NetworkSpec")
        specs: dict[str, NetworkSpec] = {}
        seen_modules: dict[int, str] = {}
        for net_name, spec in networks.items():
            check_network_name(name, net_name, _RESERVED_NAMES)
            if isinstance(spec, nn.Module):
                if lr is None:
                    raise PAIConfigError(f"{where}: network {net_name!r} is a bare module: give lr= or a NetworkSpec")
                spec = NetworkSpec(spec, lr=lr)
            if not isinstance(spec, NetworkSpec):
                raise PAIConfigError(f"{where}: network {net_name!r} must be a NetworkSpec or an nn.Module")
            spec.validate(name, net_name)
            if id(spec.module) in seen_modules:
                raise PAIConfigError(
                    f"{where}: networks {seen_modules[id(spec.module)]!r} and {net_name!r} are the same module"
                )
            seen_modules[id(spec.module)] = net_name
            specs[net_name] = spec
        if not any(spec.case == 1 for spec in specs.values()):
            raise PAIConfigError(
                f"{where}: at least one network must use the shared PAI-managed optimizer "
                "(NetworkSpec(optimizer=None)); PAI schedules learning rates through it"
            )
        self._specs = specs
        for spec in specs.values():
            if spec.case == 3:
                warnings.warn(
                    f"{where}: an independent scheduler (Case 3) ignores PAI's learning-rate "
                    "schedule around dendrite additions; this is supported but not recommended",
                    UserWarning,
                    stacklevel=2,
                )
                break
        self._own_sched_kwargs = {
            n: _sched_kwargs(f"{where}: network {n!r}", s.scheduler, s.scheduler_kwargs, self.maximize)
            for n, s in specs.items()
            if s.case == 3
        }

        self._pai: PAIModules = import_pai()
        self.directory = Path(directory).expanduser().resolve()
        self.run_directory = self.directory / self.name
        if self.run_directory.exists() and (not self.run_directory.is_dir() or any(self.run_directory.iterdir())):
            if not overwrite:
                raise PAIConfigError(
                    f"{where}: {str(self.run_directory)!r} already exists (PAI would reuse the "
                    "configuration and snapshots of an earlier run); pass overwrite=True, another "
                    "name or another directory"
                )
            if not _is_pai_run(self.run_directory, self.name):
                raise PAIConfigError(
                    f"{where}: {str(self.run_directory)!r} does not look like a PAI run folder "
                    f"(no {self.name}_config.json, pai_output.log or .pt files); not deleting it"
                )
            shutil.rmtree(self.run_directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._log_file = self.run_directory / "pai_output.log"

        self._broken: str | None = None
        self._frozen_depth = 0
        self._num_scores = 0
        self._training_complete = False
        self._losses: list[nn.Module] = []
        self._own_opts: dict[str, torch.optim.Optimizer | None] = {}
        self._own_scheds: dict[str, Any] = {}
        self._hooks: list[Any] = []

        model = _GroupModel()
        for net_name, spec in specs.items():
            setattr(model, net_name, spec.module)
        self._perforate(model)
        self._install_hooks()
        self._build_shared()
        self._build_own(carry=False)

    # ------------------------------------------------------------------ PAI state
    def _activate(self) -> None:
        gpa = self._pai.gpa
        if gpa.pc is not self._pc or gpa.pai_tracker is not self._tracker:
            gpa.pc = self._pc
            gpa.pai_tracker = self._tracker

    @contextlib.contextmanager
    def _call(self, what: str, *, activate: bool = True) -> Iterator[Any]:
        if activate:
            self._activate()
        with pai_call(f"PAIGroup({self.name!r}).{what}", self.directory, self._log_file, self.verbose) as out:
            yield out

    def _check_usable(self, what: str) -> None:
        if self._broken is not None:
            raise PAIStateError(
                f"PAIGroup({self.name!r}).{what}: an earlier PAI call failed ({self._broken}); "
                "the PAI state may be half-updated: load a checkpoint or build a new group"
            )

    def _perforate(self, model: _GroupModel) -> None:
        gpa, upa = self._pai.gpa, self._pai.upa
        s = self.settings
        with self._call("perforate", activate=False):
            gpa.pc = gpa.PAIConfig()
            gpa.pai_tracker = []
            pc = gpa.pc
            for key in s.extra:
                if f"_{key}" not in pc.__dict__ or f"set_{key}" not in pc.__dict__:
                    raise PAIConfigError(f"PAIGroup({self.name!r}): unknown PAI setting {key!r} in PAISettings.extra")
            pc.set_configuration_confirmed(True)
            pc.set_unwrapped_modules_confirmed(True)
            pc.set_testing_dendrite_capacity(False)
            pc.set_use_cuda(self.device.type == "cuda")
            pc.set_device(self.device)
            pc.set_silent(not self.verbose)
            pc.set_switch_mode(getattr(pc, SWITCH_MODES[s.switch_mode]))
            pc.set_n_epochs_to_switch(s.n_epochs_to_switch)
            pc.set_fixed_switch_num(s.fixed_switch_num)
            pc.set_first_fixed_switch_num(s.first_fixed_switch_num)
            pc.set_max_dendrites(s.max_dendrites)
            pc.set_max_dendrite_tries(s.max_dendrite_tries)
            pc.set_find_best_lr(s.find_best_lr)
            pc.set_test_saves(s.save_intermediate)
            for key, value in s.extra.items():
                getattr(pc, f"set_{key}")(value)
            tracked = [f".{n}" for n, spec in self._specs.items() if not spec.dendrites]
            if tracked:
                pc.set_module_ids_to_track(tracked)
            converted = upa.perforate_model(
                model,
                doing_pai=True,
                save_name=self.name,
                making_graphs=s.graphs,
                maximizing_score=self.maximize,
            )
            self._pc = gpa.pc
            self._tracker = gpa.pai_tracker
            self._tracker.set_optimizer(self._optimizer_cls)
            self._tracker.set_scheduler(self._scheduler_cls)
            self._model = converted if converted is not None else model
            for net_name, spec in self._specs.items():
                if spec.output_dimensions is not None:
                    for layer in self._neuron_layers(net_name):
                        layer.set_this_output_dimensions([int(d) for d in spec.output_dimensions])

    # ------------------------------------------------------------------ networks
    @property
    def networks(self) -> dict[str, nn.Module]:
        """The networks by name, as PAI modified them (call these)."""
        return {n: self[n] for n in self._specs}

    def __getitem__(self, name: str) -> nn.Module:
        if name not in self._specs:
            raise KeyError(f"PAIGroup({self.name!r}) has no network {name!r}; it has {list(self._specs)}")
        module = getattr(self._model, name)
        if isinstance(module, self._pai.tracked_module):
            return module.main_module
        return module

    @property
    def model(self) -> nn.Module:
        """The top-level module PAI tracks (the networks as attributes)."""
        return self._model

    @property
    def names(self) -> list[str]:
        return list(self._specs)

    def _neuron_layers(self, name: str) -> list[nn.Module]:
        seen, out = set(), []
        for module in getattr(self._model, name).modules():
            if isinstance(module, self._pai.neuron_module) and id(module) not in seen:
                seen.add(id(module))
                out.append(module)
        return out

    def _named_params(self) -> dict[str, list[tuple[str, nn.Parameter]]]:
        """Each network's parameters (templates excluded; a shared one goes to the first network)."""
        seen: set[int] = set()
        out: dict[str, list[tuple[str, nn.Parameter]]] = {}
        for name in self._specs:
            params = []
            for pname, p in getattr(self._model, name).named_parameters():
                if _is_template(pname) or id(p) in seen:
                    continue
                seen.add(id(p))
                params.append((f"{name}.{pname}", p))
            out[name] = params
        return out

    def parameters(self, name: str, *, trainable_only: bool = True) -> list[nn.Parameter]:
        """The parameters an optimizer of network ``name`` holds (PAI's frozen ones excluded)."""
        if name not in self._specs:
            raise KeyError(f"PAIGroup({self.name!r}) has no network {name!r}")
        return [p for _, p in self._named_params()[name] if p.requires_grad or not trainable_only]

    def param_counts(self) -> dict[str, int]:
        """Parameters per network as PAI counts them (``UPA.count_params``: templates excluded)."""
        counts = {}
        for name in self._specs:
            unique = {p.data_ptr(): p for pname, p in getattr(self._model, name).named_parameters() if not _is_template(pname)}
            counts[name] = sum(p.numel() for p in unique.values())
        return counts

    # ------------------------------------------------------------------ hooks
    def _install_hooks(self) -> None:
        for handle in self._hooks:
            handle.remove()
        self._hooks = []
        activate = _ActivateGroup(self)
        for net_name in self._specs:
            for layer in self._neuron_layers(net_name):
                check = _ShapeCheck(self.name, net_name, layer)
                self._hooks.append(layer.register_forward_pre_hook(activate))
                self._hooks.append(layer.register_forward_pre_hook(check.before))
                self._hooks.append(layer.register_forward_hook(check.after))

    # ------------------------------------------------------------------ optimizers
    def _build_shared(self, order: Mapping[str, list[str]] | None = None) -> None:
        named = self._named_params()
        groups = []
        for name, spec in self._specs.items():
            if spec.case != 1:
                continue
            params = self._ordered(name, named[name], order)
            if params:
                groups.append({"params": params, "lr": float(spec.lr), "network": name})
        if not groups:
            raise PAIStateError(f"PAIGroup({self.name!r}): no trainable parameter is left for the shared optimizer")
        opt_args = {**self._optimizer_kwargs, "params": groups}
        with self._call("setup_optimizer"):
            opt, sched = self._tracker.setup_optimizer(self._model, opt_args, dict(self._scheduler_kwargs))
        self._shared_opt = opt
        self._shared_sched = sched

    def _ordered(self, name: str, named: list[tuple[str, nn.Parameter]], order: Mapping[str, list[str]] | None):
        if order is None or name not in order:
            return [p for _, p in named if p.requires_grad]
        by_name = dict(named)
        missing = [n for n in order[name] if n not in by_name]
        if missing:
            raise PAICheckpointError(
                f"PAIGroup({self.name!r}): the checkpoint's optimizer holds parameters this group "
                f"does not have: {missing[:5]}"
            )
        return [by_name[n] for n in order[name]]

    def _pai_factor(self) -> float:
        """Current shared lr over its base lr: PAI's schedule, the same for every param group."""
        group = self._shared_opt.param_groups[0]
        return group["lr"] / float(self._specs[group["network"]].lr)

    def _build_own(self, carry: bool, order: Mapping[str, list[str]] | None = None) -> None:
        named = self._named_params()
        factor = self._pai_factor()
        for name, spec in self._specs.items():
            if spec.case == 1:
                continue
            old_opt = self._own_opts.get(name)
            old_sched = self._own_scheds.get(name)
            params = self._ordered(name, named[name], order)
            if not params:
                self._own_opts[name] = None
                self._own_scheds[name] = None
                continue
            if spec.case == 2:
                lr = float(spec.lr) * factor
            elif carry and old_opt is not None:
                lr = old_opt.param_groups[0]["lr"]
            else:
                lr = float(spec.lr)
            opt = spec.optimizer([{"params": params, "lr": lr, "network": name}], **dict(spec.optimizer_kwargs))
            self._own_opts[name] = opt
            if spec.case == 3:
                if carry and old_opt is not None and "initial_lr" in old_opt.param_groups[0]:
                    opt.param_groups[0]["initial_lr"] = old_opt.param_groups[0]["initial_lr"]
                sched = spec.scheduler(opt, **self._own_sched_kwargs[name])
                if carry and old_sched is not None:
                    sched.load_state_dict(old_sched.state_dict())
                    opt.param_groups[0]["lr"] = lr
                self._own_scheds[name] = sched

    def _sync_following(self) -> None:
        """Case 2: lr = base lr x PAI's current factor."""
        factor = self._pai_factor()
        for name, spec in self._specs.items():
            opt = self._own_opts.get(name)
            if spec.case == 2 and opt is not None:
                for group in opt.param_groups:
                    group["lr"] = float(spec.lr) * factor

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The shared PAI-managed optimizer (a new object after every restructure)."""
        return self._shared_opt

    @property
    def scheduler(self) -> Any:
        """PAI's scheduler of the shared optimizer (stepped by PAI inside :meth:`add_score`)."""
        return self._shared_sched

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer | None]:
        """The optimizer of each network (the shared one for Case 1 networks)."""
        return {
            name: self._shared_opt if spec.case == 1 else self._own_opts.get(name)
            for name, spec in self._specs.items()
        }

    @property
    def schedulers(self) -> dict[str, Any]:
        """Each network's scheduler: PAI's for Cases 1 and 2, its own for Case 3."""
        return {
            name: self._own_scheds.get(name) if spec.case == 3 else self._shared_sched
            for name, spec in self._specs.items()
        }

    def lrs(self) -> dict[str, float]:
        """The current learning rate of every network."""
        out = {}
        for name, spec in self._specs.items():
            if spec.case == 1:
                groups = [g for g in self._shared_opt.param_groups if g.get("network") == name]
            else:
                opt = self._own_opts.get(name)
                groups = opt.param_groups if opt is not None else []
            out[name] = float(groups[0]["lr"]) if groups else math.nan
        return out

    def zero_grad(self, set_to_none: bool = True) -> None:
        """``zero_grad`` on every optimizer of the group."""
        seen = set()
        for opt in self.optimizers.values():
            if opt is not None and id(opt) not in seen:
                seen.add(id(opt))
                opt.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        """``step`` on every optimizer of the group (frozen networks have no gradient and
        are left alone by PyTorch's optimizers, as long as gradients were zeroed to ``None``)."""
        seen = set()
        for opt in self.optimizers.values():
            if opt is not None and id(opt) not in seen:
                seen.add(id(opt))
                opt.step()

    # ------------------------------------------------------------------ freezing
    @contextlib.contextmanager
    def train_only(self, *names: str) -> Iterator[None]:
        """Freeze every network but ``names`` inside the block; restore all flags after.

        Call ``backward()`` inside the block (autograd reads ``requires_grad`` of the
        parameters then; gradients still flow *through* frozen networks to trained ones,
        e.g. from a frozen critic into the actor). Parameters shared with a trained
        network stay trainable. On exit (also on an exception)
        every parameter gets back exactly the ``requires_grad`` it had on entry,
        including PAI's frozen dendrite weights.
        """
        unknown = [n for n in names if n not in self._specs]
        if unknown or not names:
            raise PAIConfigError(
                f"PAIGroup({self.name!r}).train_only: expected network names among {list(self._specs)}, got {list(names)}"
            )
        keep = {id(p) for n in names for p in getattr(self._model, n).parameters()}
        saved = {id(p): (p, p.requires_grad) for p in self._model.parameters()}
        self._frozen_depth += 1
        try:
            for p, _ in saved.values():
                if id(p) not in keep:
                    p.requires_grad_(False)
            yield
        finally:
            for p, flag in saved.values():
                p.requires_grad_(flag)
            self._frozen_depth -= 1

    # ------------------------------------------------------------------ losses
    def track_loss(self, loss: nn.Module) -> nn.Module:
        """Refresh ``loss`` (a TorchRL ``LossModule``) after every restructure and load.

        See :func:`~torchrl_functional.pai.refresh_loss_module`. Its value estimator is
        also switched to ``deactivate_vmap=True`` (layers with dendrites cannot run under
        ``vmap``; see :func:`~torchrl_functional.pai.losses.disable_value_estimator_vmap`),
        now and after every refresh, so an estimator made later is covered once PAI
        restructures. Returns the loss: ``loss = group.track_loss(ClipPPOLoss(actor, critic))``.
        """
        if not isinstance(loss, nn.Module):
            raise PAIConfigError(f"PAIGroup({self.name!r}).track_loss: expected an nn.Module, got {type(loss).__name__}")
        if not any(loss is tracked for tracked in self._losses):
            self._losses.append(loss)
        disable_value_estimator_vmap(loss)
        return loss

    def _refresh_losses(self) -> None:
        for loss in self._losses:
            refresh_loss_module(loss)
            disable_value_estimator_vmap(loss)

    # ------------------------------------------------------------------ scoring
    @property
    def training_complete(self) -> bool:
        return self._training_complete

    @property
    def num_dendrites(self) -> int:
        return int(self._tracker.member_vars["num_dendrites_added"])

    def _untrained_layers(self) -> list[str]:
        out = []
        for name in self._specs:
            for layer in self._neuron_layers(name):
                values = layer.dendrite_module.dendrite_values
                if values and not bool(values[0].current_d_init.item()) and str(layer.name) not in out:
                    out.append(str(layer.name))
        return out

    def add_score(
        self,
        score: float | torch.Tensor,
        *,
        extra_scores: Mapping[str, float] | None = None,
        test_scores: Mapping[str, float] | None = None,
        force_restructure: bool = False,
    ) -> ScoreResult:
        """Give PAI the validation score (e.g. the mean return); handle a restructure.

        PAI steps its scheduler with the score, may add dendrites (reloading the best
        weights seen so far), and may declare training complete. After a restructure
        every optimizer is rebuilt from fresh parameter lists (new dendrite parameters
        in, PAI's frozen ones out) at each network's lr under PAI's schedule, Case 3
        networks keep their own lr and scheduler state, and tracked losses are refreshed.
        Case 2 learning rates follow PAI's schedule after every score.

        Args:
            score: a finite number (``float``, ``int`` or one-element tensor).
            extra_scores: other metrics to record (``add_extra_score``).
            test_scores: test metrics to record (``add_test_score``).
            force_restructure: make PAI switch now.

        Raises:
            PAIStateError: called inside :meth:`train_only` (the frozen networks would be
                left out of the rebuilt optimizers), after a failed PAI call, or when a
                switch is due while a layer with dendrites never received a gradient.
        """
        self._check_usable("add_score")
        where = f"PAIGroup({self.name!r}).add_score"
        if self._frozen_depth:
            raise PAIStateError(f"{where}: called inside train_only(); score after the block")
        score = self._as_score(where, "score", score)
        extra = {k: self._as_score(where, f"extra_scores[{k!r}]", v) for k, v in (extra_scores or {}).items()}
        test = {k: self._as_score(where, f"test_scores[{k!r}]", v) for k, v in (test_scores or {}).items()}
        untrained = self._untrained_layers()
        if untrained:
            with self._call("switch_time"):
                due = force_restructure or bool(self._tracker.switch_time())
            if due:
                raise PAIStateError(
                    f"{where}: PAI is due to add dendrites but these layers never received a "
                    f"gradient: {untrained}; run a backward pass through every network with "
                    "dendrites first, or give NetworkSpec(dendrites=False) to networks you do not train"
                )
        try:
            with self._call("add_score"):
                for key, value in extra.items():
                    self._tracker.add_extra_score(value, key)
                for key, value in test.items():
                    self._tracker.add_test_score(value, key)
                model, restructured, complete = self._tracker.add_validation_score(
                    score, self._model, force_switch=bool(force_restructure)
                )
        except BaseException as err:
            self._broken = f"add_score: {type(err).__name__}: {err}"
            raise
        if model is not None and model is not self._model:  # PAI modifies in place; be safe
            self._model = model
        restructured, complete = bool(restructured), bool(complete)
        self._num_scores += 1
        self._training_complete = self._training_complete or complete
        for sched in self._own_scheds.values():
            if sched is not None:
                if isinstance(sched, _PLATEAU):
                    sched.step(score)
                else:
                    sched.step()
        if restructured or complete or self._tracker.member_vars.get("optimizer_instance") is None:
            try:
                self._rebuild()
            except BaseException as err:
                self._broken = f"rebuild after restructure: {type(err).__name__}: {err}"
                raise
        else:
            self._sync_following()
        return ScoreResult(
            restructured=restructured,
            training_complete=complete,
            param_counts=self.param_counts(),
            lrs=self.lrs(),
            num_dendrites=self.num_dendrites,
            num_scores=self._num_scores,
        )

    @staticmethod
    def _as_score(where: str, what: str, value: Any) -> float:
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise PAIConfigError(f"{where}: {what} must be a single number, got a tensor of shape {tuple(value.shape)}")
            value = value.item()
        if isinstance(value, bool):
            raise PAIConfigError(f"{where}: {what} must be a number, got a bool")
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise PAIConfigError(f"{where}: {what} must be a number, got {type(value).__name__}") from None
        if not math.isfinite(out):
            raise PAIConfigError(f"{where}: {what} must be finite, got {out}")
        return out

    def _rebuild(self, order: Mapping[str, Mapping[str, list[str]]] | None = None) -> None:
        order = order or {}
        self._build_shared(order.get("shared"))
        self._build_own(carry=True, order=order.get("own"))
        self._refresh_losses()

    # ------------------------------------------------------------------ checkpoints
    def fingerprint(self) -> dict[str, Any]:
        """Plain-data description a checkpoint must match to be loaded into this group."""
        return {
            "networks": {name: spec.fingerprint() for name, spec in self._specs.items()},
            "settings": self.settings.fingerprint(),
            "optimizer": f"{self._optimizer_cls.__module__}.{self._optimizer_cls.__qualname__}",
            "optimizer_kwargs": {k: repr(v) for k, v in sorted(self._optimizer_kwargs.items())},
            "scheduler": None
            if self._scheduler_cls is None
            else f"{self._scheduler_cls.__module__}.{self._scheduler_cls.__qualname__}",
            "scheduler_kwargs": {k: repr(v) for k, v in sorted(self._scheduler_kwargs.items())},
            "maximize": self.maximize,
        }

    def _param_names(self, opt: torch.optim.Optimizer) -> dict[str, list[str]]:
        """``{network: [parameter names in optimizer order]}`` for each param group."""
        names = {id(p): n for plist in self._named_params().values() for n, p in plist}
        return {group["network"]: [names[id(p)] for p in group["params"]] for group in opt.param_groups}

    def _pai_files(self) -> dict[str, dict[str, torch.Tensor]]:
        from safetensors.torch import load_file

        switches = len(self._tracker.member_vars["switch_epochs"])
        pattern = re.compile(
            rf"^(best_model|switch_{switches}|PBCount_{self.num_dendrites}_startSteps_-?\d+)\.pt$"
        )
        files = {}
        if self.run_directory.is_dir():
            for path in sorted(self.run_directory.iterdir()):
                if pattern.match(path.name):
                    files[path.name] = load_file(str(path))
        return files

    def save_checkpoint(self, path: str | Path) -> Path:
        """Save the group (networks with their dendrites, optimizers, schedulers, PAI
        tracker and the PAI snapshots it reads later) to one file, atomically.

        The format is described in :mod:`torchrl_functional.pai.checkpoint`.
        """
        self._check_usable("save_checkpoint")
        if self._frozen_depth:
            raise PAIStateError(f"PAIGroup({self.name!r}).save_checkpoint: called inside train_only()")
        upa = self._pai.upa
        with self._call("save_checkpoint"):
            tracker = self._tracker.to_string()
            text = upa.string_to_tensor(tracker)
            if hasattr(self._model, "tracker_string"):
                self._model.tracker_string = text
            else:
                self._model.register_buffer("tracker_string", text)
        payload = {
            "group": {"name": self.name, "networks": list(self._specs), "fingerprint": self.fingerprint()},
            "model": {k: v.detach().clone() for k, v in self._model.state_dict().items()},
            "tracker": tracker,
            "optimizers": {
                "shared": self._shared_opt.state_dict(),
                "own": {n: o.state_dict() for n, o in self._own_opts.items() if o is not None},
            },
            "optimizer_params": {
                "shared": self._param_names(self._shared_opt),
                "own": {n: self._param_names(o)[n] for n, o in self._own_opts.items() if o is not None},
            },
            "schedulers": {
                "shared": None if self._shared_sched is None else self._shared_sched.state_dict(),
                "own": {n: s.state_dict() for n, s in self._own_scheds.items() if s is not None},
            },
            "pai_files": self._pai_files(),
            "adapter": {"num_scores": self._num_scores, "training_complete": self._training_complete},
            # PAI draws new dendrite weights from torch's global generator
            "rng": {"torch": torch.get_rng_state()},
        }
        return write_checkpoint(path, payload)

    def load_checkpoint(self, path: str | Path, *, restore_rng: bool = True) -> None:
        """Load a checkpoint saved by :meth:`save_checkpoint` into this group.

        The group must have been built like the one that saved it (same network names,
        architectures, settings and optimizers; the networks' current weights do not
        matter): PAI's dendrites are re-created to the saved structure, the weights,
        optimizer, scheduler and PAI tracker states restored, PAI's snapshots written
        back under ``directory/name/``, and tracked losses refreshed. With
        ``restore_rng`` (default) torch's global CPU generator gets back its state at the
        save, since PAI draws new dendrite weights from it: training then continues
        exactly as it would have in the saving process (same data, same code).

        Raises:
            PAICheckpointError: unreadable file, or saved by a different group.
        """
        where = f"PAIGroup({self.name!r}).load_checkpoint"
        if self._frozen_depth:
            raise PAIStateError(f"{where}: called inside train_only()")
        ckpt = read_checkpoint(path)
        group = ckpt["group"]
        if group.get("networks") != list(self._specs):
            raise PAICheckpointError(
                f"{where}: the checkpoint holds networks {group.get('networks')}, this group {list(self._specs)}"
            )
        if group.get("fingerprint") != self.fingerprint():
            theirs, ours = group.get("fingerprint") or {}, self.fingerprint()
            diff = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
            raise PAICheckpointError(f"{where}: the checkpoint was saved by a group configured differently ({diff})")
        if "tracker_string" not in ckpt["model"]:
            raise PAICheckpointError(f"{where}: the checkpoint's model state lacks PAI's tracker_string")
        from safetensors.torch import save_file

        upa = self._pai.upa
        try:
            with self._call("load_checkpoint"):
                upa.load_net_from_dict(self._model, ckpt["model"])
                self._tracker.reset_module_vector(self._model, False)
                self.run_directory.mkdir(parents=True, exist_ok=True)
                for name, tensors in ckpt["pai_files"].items():
                    if not re.match(r"^[A-Za-z0-9_.-]+\.pt$", name):
                        raise PAICheckpointError(f"{where}: unexpected PAI file name {name!r} in the checkpoint")
                    save_file({k: v.contiguous() for k, v in tensors.items()}, str(self.run_directory / name))
            self._install_hooks()
            self._rebuild(order=ckpt["optimizer_params"])
            with self._call("load_checkpoint"):
                opt_instance = self._tracker.member_vars["optimizer_instance"]
                sched_instance = self._tracker.member_vars["scheduler_instance"]
                self._tracker.from_string(ckpt["tracker"])
                self._tracker.member_vars["optimizer_instance"] = opt_instance
                self._tracker.member_vars["scheduler_instance"] = sched_instance
            self._shared_opt.load_state_dict(ckpt["optimizers"]["shared"])
            if self._shared_sched is not None and ckpt["schedulers"]["shared"] is not None:
                self._shared_sched.load_state_dict(ckpt["schedulers"]["shared"])
            for name, opt in self._own_opts.items():
                if opt is not None and name in ckpt["optimizers"]["own"]:
                    opt.load_state_dict(ckpt["optimizers"]["own"][name])
            for sched in self._own_scheds.values():
                if sched is not None and name in ckpt["schedulers"]["own"]:
                    sched.load_state_dict(ckpt["schedulers"]["own"][name])
        except PAICheckpointError:
            self._broken = "load_checkpoint failed half-way"
            raise
        except (KeyError, ValueError, RuntimeError) as err:
            self._broken = "load_checkpoint failed half-way"
            raise PAICheckpointError(f"{where}: the checkpoint does not fit this group: {err}") from err
        rng = ckpt.get("rng") or {}
        if restore_rng and isinstance(rng.get("torch"), torch.Tensor):
            torch.set_rng_state(rng["torch"])
        adapter = ckpt["adapter"]
        self._num_scores = int(adapter.get("num_scores", 0))
        self._training_complete = bool(adapter.get("training_complete", False))
        self._broken = None

    def __repr__(self) -> str:
        nets = ", ".join(f"{n}(case {s.case}, dendrites={s.dendrites})" for n, s in self._specs.items())
        return f"PAIGroup({self.name!r}, [{nets}], num_dendrites={self.num_dendrites}, directory={str(self.directory)!r})"

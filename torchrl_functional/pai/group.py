"""A named group of networks that grow dendrites together under one PAI tracker.

PerforatedAI (PAI) keeps one global tracker, one optimizer and one scheduler. RL needs
several networks (actor, critics, value net, meta-net ...), each with its own learning
rate, some with an optimizer of another kind. :class:`PAIGroup` owns PAI for such a group
and delegates by idea: :mod:`._setup` (converting the networks), :mod:`._hooks`
(forward hooks), :mod:`._optimizers` (building and rebuilding optimizers),
:mod:`.scoring` (scores and restructures), :mod:`._resume` (checkpoints), :mod:`._rundir`
(the run folder), :mod:`.losses` / :mod:`.targets` (loss modules and target networks).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import _optimizers as opts
from . import _resume
from ._hooks import install_hooks
from ._rundir import _LIVE, LOG, claim, release
from ._runtime import LOCK, PAIModules, import_pai, pai_call
from ._setup import perforate
from .config import GroupModel, NetworkSpec, PAISettings, check_group_name, check_networks, scheduler_kwargs_for
from .errors import PAIConfigError, PAIStateError
from .losses import disable_value_estimator_vmap, group_networks, refresh_loss_module
from .scoring import ScoreResult, add_score
from .targets import TargetNetwork

__all__ = ["PAIGroup", "ScoreResult"]

_PLATEAU = torch.optim.lr_scheduler.ReduceLROnPlateau
_DEFAULT: Any = object()


class PAIGroup:
    """A named group of ``n`` networks that get dendrites from PerforatedAI together.

    Args:
        name: the group's name, PAI's save name: its files go to ``directory/name/``.
            Letters, digits, ``_``, ``-``, ``.``.
        networks: ``{name: NetworkSpec}``, e.g. ``{"actor": NetworkSpec(actor, lr=3e-4),
            "critic": NetworkSpec(critic, lr=1e-3)}``. PAI modifies each network in place.
        directory: where every PAI file goes (required: never the working directory by
            accident). Created if missing. PAI is given absolute paths.
        optimizer: class of the shared PAI-managed optimizer (Case 1 networks).
        optimizer_kwargs: its arguments besides ``params`` (lrs come from the specs).
        scheduler: PAI's scheduler class (stepped by PAI inside :meth:`add_score`), or
            ``None``. Default ``ReduceLROnPlateau`` with ``mode`` set from ``maximize``.
        scheduler_kwargs: its arguments (e.g. ``{"patience": 5, "factor": 0.5}``).
        maximize: ``True`` if a higher score is better (returns), ``False`` for losses.
        settings: when PAI adds dendrites (:class:`PAISettings`).
        device: where PAI creates dendrite parameters (default CPU; the networks must be
            there already).
        verbose: echo PAI's output (it always goes to ``directory/name/pai_output.log``).
        overwrite: delete PAI's files in an existing run folder of this adapter instead of
            refusing to start (other files are kept; unmarked folders are refused).

    Raises:
        PAIConfigError: a bad name, setting or network, or a run folder in use (before PAI
            is touched).
        PAINotInstalledError: perforatedai is not installed.
    """

    def __init__(
        self,
        name: str,
        networks: Mapping[str, NetworkSpec],
        *,
        directory: str | Path,
        optimizer: type[torch.optim.Optimizer] = torch.optim.Adam,
        optimizer_kwargs: Mapping[str, Any] | None = None,
        scheduler: type | None = _DEFAULT,
        scheduler_kwargs: Mapping[str, Any] | None = None,
        maximize: bool = True,
        settings: PAISettings | None = None,
        device: str | torch.device = "cpu",
        verbose: bool = False,
        overwrite: bool = False,
    ) -> None:
        self.name = check_group_name(name)
        where = f"PAIGroup({name!r})"
        self.settings = settings if settings is not None else PAISettings()
        if not isinstance(self.settings, PAISettings):
            raise PAIConfigError(f"{where}: settings must be a PAISettings, got {type(settings).__name__}")
        self.maximize, self.verbose, self.device = bool(maximize), bool(verbose), torch.device(device)
        if not (isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer)):
            raise PAIConfigError(f"{where}: optimizer must be a torch.optim.Optimizer subclass, got {optimizer!r}")
        self._optimizer_cls, self._optimizer_kwargs = optimizer, dict(optimizer_kwargs or {})
        for key in ("params", "lr"):
            if key in self._optimizer_kwargs:
                raise PAIConfigError(f"{where}: optimizer_kwargs must not contain {key!r} (set per network)")
        self._scheduler_cls = _PLATEAU if scheduler is _DEFAULT else scheduler
        if self._scheduler_cls is None and scheduler_kwargs:
            raise PAIConfigError(f"{where}: scheduler_kwargs given without a scheduler")
        self._scheduler_kwargs = scheduler_kwargs_for(where, self._scheduler_cls, scheduler_kwargs, self.maximize)
        self._specs = check_networks(self.name, networks)

        self._pai: PAIModules = import_pai()
        self.directory = Path(directory).expanduser().resolve()
        self.run_directory = self.directory / self.name
        self._log_file = self.run_directory / LOG
        self._broken: str | None = None
        self._closed = False
        self._num_scores, self._training_complete = 0, False
        self._losses: list[tuple[nn.Module, list[str]]] = []
        self._targets: dict[str, TargetNetwork] = {}
        self._saved_targets: dict[str, dict[str, torch.Tensor]] = {}
        self._own_opts: dict[str, torch.optim.Optimizer | None] = {}
        self._shared_opt: torch.optim.Optimizer | None = None
        self._hooks: list[Any] = []
        with LOCK:
            gpa = self._pai.gpa
            owner = next((g() for g in _LIVE.values() if getattr(g(), "_pc", None) is gpa.pc), None)
            self._outside = owner._outside if owner is not None else (gpa.pc, gpa.pai_tracker)
            claim(self, where, self.run_directory, self.name, overwrite)
            try:
                model = GroupModel()
                for net_name, spec in self._specs.items():
                    setattr(model, net_name, spec.module)
                perforate(self, model)
                self._install_hooks()
                opts.build_shared(self)
                opts.build_own(self)
            except BaseException:
                self._restore_outside()
                release(self.run_directory, self, self.name)
                raise

    # ------------------------------------------------------------------ PAI state
    def _activate(self) -> None:
        gpa = self._pai.gpa
        if gpa.pc is not self._pc or gpa.pai_tracker is not self._tracker:
            gpa.pc, gpa.pai_tracker = self._pc, self._tracker

    def _restore_outside(self) -> None:
        gpa = self._pai.gpa
        if not hasattr(self, "_pc") or gpa.pc is self._pc or gpa.pai_tracker is self._tracker:
            gpa.pc, gpa.pai_tracker = self._outside

    @contextlib.contextmanager
    def _call(self, what: str, *, activate: bool = True) -> Iterator[Any]:
        with pai_call(f"PAIGroup({self.name!r}).{what}", self._log_file, self.verbose) as out:
            if activate:
                self._activate()
            yield out

    def _check_usable(self, what: str) -> None:
        if self._closed:
            raise PAIStateError(f"PAIGroup({self.name!r}).{what}: the group is closed")
        if self._broken is not None:
            raise PAIStateError(
                f"PAIGroup({self.name!r}).{what}: an earlier PAI call failed ({self._broken}); "
                "the PAI state may be half-updated: load a checkpoint or build a new group"
            )

    def close(self) -> None:
        """Release the run folder and put PAI's globals (``GPA.pc``, ``GPA.pai_tracker``)
        back as they were before the group (unless another group is active in them).

        The networks keep their dendrites and shape checks and stay usable for inference
        and training; the group's own calls raise :class:`PAIStateError` afterwards.
        Also called on leaving ``with PAIGroup(...) as group:``.
        """
        with LOCK:
            if self._closed:
                return
            self._closed = True
            self._restore_outside()
            self._install_hooks(activate=False)
            release(self.run_directory, self)

    def __enter__(self) -> PAIGroup:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ networks
    @property
    def names(self) -> list[str]:
        """The network names, in the order given."""
        return list(self._specs)

    @property
    def networks(self) -> dict[str, nn.Module]:
        """The networks by name (the objects given, modified in place by PAI)."""
        return {n: self[n] for n in self._specs}

    def __getitem__(self, name: str) -> nn.Module:
        if name not in self._specs:
            raise KeyError(f"PAIGroup({self.name!r}) has no network {name!r}; it has {list(self._specs)}")
        return self._specs[name].module

    @property
    def model(self) -> nn.Module:
        """The top-level module PAI tracks (the networks as attributes)."""
        return self._model

    def _neuron_layers(self, name: str) -> list[nn.Module]:
        seen, out = set(), []
        for module in getattr(self._model, name).modules():
            if isinstance(module, self._pai.neuron_module) and id(module) not in seen:
                seen.add(id(module))
                out.append(module)
        return out

    def parameters(self, *names: str) -> list[nn.Parameter]:
        """Trainable parameters of the named networks (all by default), each once;
        PAI's frozen weights and its template copies are excluded.

        For alternating updates, ``loss.backward(inputs=group.parameters("critic"))``
        accumulates gradients into the critic only (gradients still flow *through* the
        other networks), without touching any ``requires_grad`` flag.

        Args:
            names: network names; none means every network.
        """
        unknown = [n for n in names if n not in self._specs]
        if unknown:
            raise KeyError(f"PAIGroup({self.name!r}) has no network {unknown[0]!r}; it has {list(self._specs)}")
        seen, out = set(), []
        for name in names or self._specs:
            for pname, p in getattr(self._model, name).named_parameters():
                if p.requires_grad and not opts.is_template(pname) and id(p) not in seen:
                    seen.add(id(p))
                    out.append(p)
        return out

    def param_counts(self) -> dict[str, int]:
        """Parameters per network as PAI counts them (``UPA.count_params``: templates excluded)."""
        counts = {}
        for name in self._specs:
            params = getattr(self._model, name).named_parameters()
            unique = {p.data_ptr(): p for pname, p in params if not opts.is_template(pname)}
            counts[name] = sum(p.numel() for p in unique.values())
        return counts

    def _install_hooks(self, activate: bool = True) -> None:
        for handle in self._hooks:
            handle.remove()
        self._hooks = install_hooks(self, {n: self._neuron_layers(n) for n in self._specs}, activate)

    # ------------------------------------------------------------------ optimizers
    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The shared PAI-managed optimizer: a new object after every restructure (the
        previous one then raises :class:`PAIStateError`); read it after ``add_score``."""
        return self._shared_opt

    @property
    def scheduler(self) -> Any:
        """PAI's scheduler of the shared optimizer (stepped by PAI inside :meth:`add_score`)."""
        return self._shared_sched

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer | None]:
        """The optimizer of each network: the shared one (Case 1) or its own (Cases 2, 3;
        the same object for the group's lifetime, refilled in place at restructures)."""
        return {n: self._shared_opt if s.case == 1 else self._own_opts.get(n) for n, s in self._specs.items()}

    def lrs(self) -> dict[str, float]:
        """The current learning rate of every network."""
        return opts.lrs(self)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """``zero_grad`` on every optimizer of the group.

        Args:
            set_to_none: as ``torch.optim.Optimizer.zero_grad`` (keep ``True`` for
                one-network updates: a parameter without a gradient is not stepped).
        """
        for opt in {id(o): o for o in self.optimizers.values() if o is not None}.values():
            opt.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        """``step`` on every optimizer of the group (parameters without a gradient are
        left alone, as long as gradients were zeroed to ``None``)."""
        for opt in {id(o): o for o in self.optimizers.values() if o is not None}.values():
            opt.step()

    # ------------------------------------------------------------------ losses, targets
    def track_loss(self, loss: nn.Module) -> nn.Module:
        """Keep a TorchRL ``LossModule`` on the group's current parameters.

        After every restructure and load, the loss's parameter copies of the group's
        networks are rebuilt (see :func:`~torchrl_functional.pai.losses.refresh_loss_module`;
        its other networks are left alone) and its value estimator loops instead of using
        ``vmap`` (layers with dendrites cannot run under ``vmap``).

        Args:
            loss: e.g. ``ClipPPOLoss(group["actor"], group["critic"])``.

        Returns:
            ``loss``.

        Raises:
            PAIConfigError: the loss trains stacked copies of a network of the group
                (``SACLoss``, ``TD3Loss``, ``REDQLoss``, ``CQLLoss``, ``IQLLoss`` with the
                Q network in the group); the message gives the supported ways.
        """
        where = f"PAIGroup({self.name!r}).track_loss"
        if not isinstance(loss, nn.Module):
            raise PAIConfigError(f"{where}: expected an nn.Module, got {type(loss).__name__}")
        modules = [m for n in self._specs for m in getattr(self._model, n).modules()]
        names = group_networks(loss, modules, where)
        self._losses = [(tracked, n) for tracked, n in self._losses if tracked is not loss] + [(loss, names)]
        refresh_loss_module(loss, names)
        disable_value_estimator_vmap(loss)
        return loss

    def target(self, name: str) -> TargetNetwork:
        """The target network of ``name`` (created on first call, starting as a copy).

        Kept to the network's structure after restructures and loads, saved in
        checkpoints; ``target.update(tau)`` for Polyak updates, ``target(x)`` to run it.

        Args:
            name: a network of the group.
        """
        self._check_usable("target")
        if name not in self._specs:
            raise KeyError(f"PAIGroup({self.name!r}) has no network {name!r}; it has {list(self._specs)}")
        if name not in self._targets:
            target = TargetNetwork(self, name)
            if name in self._saved_targets:
                target.load(self._saved_targets[name])
            self._targets[name] = target
        return self._targets[name]

    def _refresh_after_restructure(self) -> None:
        for loss, names in self._losses:
            refresh_loss_module(loss, names)
            disable_value_estimator_vmap(loss)
        for target in self._targets.values():
            target.refresh()

    # ------------------------------------------------------------------ scoring
    @property
    def training_complete(self) -> bool:
        """PAI has declared training complete (sticky)."""
        return self._training_complete

    @property
    def num_dendrites(self) -> int:
        """Dendrite sets added so far (PAI's ``num_dendrites_added``)."""
        return int(self._tracker.member_vars["num_dendrites_added"])

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
        in, PAI's frozen ones out) at each network's lr under PAI's schedule (Case 3
        networks keep theirs), tracked losses and targets are refreshed. Case 2 learning
        rates follow PAI's schedule after every score.

        Args:
            score: a finite number (``float``, ``int`` or one-element tensor).
            extra_scores: other metrics to record (``add_extra_score``).
            test_scores: test metrics to record (``add_test_score``).
            force_restructure: make PAI switch now.

        Raises:
            PAIStateError: the group is closed, an earlier PAI call failed, or a switch is
                due while a layer with dendrites never received a gradient.
        """
        return add_score(self, score, extra_scores, test_scores, force_restructure)

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, path: str | Path) -> Path:
        """Save the group to one file, atomically: networks with their dendrites,
        optimizers, PAI's scheduler and tracker, the PAI snapshots it reads later, the
        target networks and torch's CPU random state. The format is described in
        :mod:`torchrl_functional.pai.checkpoint`.

        Args:
            path: the checkpoint file (its folder is created if missing).

        Returns:
            ``path``.

        Raises:
            PAIStateError: the group is closed or broken, or a layer with dendrites has
                not had a backward pass yet (PAI could not load it back).
        """
        self._check_usable("save_checkpoint")
        return _resume.save(self, path)

    def load_checkpoint(self, path: str | Path, *, restore_rng: bool = True) -> None:
        """Load a checkpoint saved by :meth:`save_checkpoint` into this group.

        The group must have been built like the one that saved it (same network names,
        architectures, settings and optimizers; the networks' current weights do not
        matter): PAI's dendrites are re-created to the saved structure; weights,
        optimizer states (matched by parameter name), PAI's scheduler and tracker, target
        networks and PAI's snapshots are restored; tracked losses are refreshed. With
        ``restore_rng`` torch's global CPU generator gets back its state at the save (PAI
        draws new dendrite weights from it), so training continues exactly as it would
        have in the saving process. A checkpoint refused by the checks leaves the group
        unchanged. Schedulers you attached to Case 3 optimizers are yours to save.

        Args:
            path: a file written by :meth:`save_checkpoint`.
            restore_rng: also restore torch's global CPU random state.

        Raises:
            PAICheckpointError: unreadable file, or saved by a different group.
        """
        if self._closed:
            raise PAIStateError(f"PAIGroup({self.name!r}).load_checkpoint: the group is closed")
        _resume.load(self, path, restore_rng)

    def __repr__(self) -> str:
        nets = ", ".join(f"{n}(case {s.case}, dendrites={s.dendrites})" for n, s in self._specs.items())
        state = ", closed" if self._closed else ""
        return f"PAIGroup({self.name!r}, [{nets}], directory={str(self.directory)!r}{state})"

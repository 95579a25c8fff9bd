"""Saving a group to one checkpoint and loading it back (the format is in
:mod:`torchrl_functional.pai.checkpoint`).

Loading first checks everything it can without touching the group (networks, settings,
PAI's per-layer state, file names, targets); a checkpoint that fails those checks leaves
the group as it was. A failure after that point (PAI itself refusing) marks the group
unusable, since PAI's state is then half-updated.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from . import _optimizers as opts
from .checkpoint import read_checkpoint, write_checkpoint
from .errors import PAICheckpointError, PAIStateError

__all__ = ["save", "load", "fingerprint"]

_STORAGE = "dendrite_module.dendrite_values.0.dendrite_storage_shape"
_FILE_NAME = re.compile(r"^[A-Za-z0-9_.-]+\.pt$")


def fingerprint(group: Any) -> dict[str, Any]:
    """Plain-data description a checkpoint must match to be loaded into ``group``.

    Args:
        group: the group.
    """

    def qualname(cls: Any) -> str | None:
        return None if cls is None else f"{cls.__module__}.{cls.__qualname__}"

    return {
        "networks": {name: spec.fingerprint() for name, spec in group._specs.items()},
        "settings": group.settings.fingerprint(),
        "optimizer": qualname(group._optimizer_cls),
        "optimizer_kwargs": {k: repr(v) for k, v in sorted(group._optimizer_kwargs.items())},
        "scheduler": qualname(group._scheduler_cls),
        "scheduler_kwargs": {k: repr(v) for k, v in sorted(group._scheduler_kwargs.items())},
        "maximize": group.maximize,
    }


def _storage_keys(group: Any) -> dict[str, str]:
    """``{layer name: state-dict key of its storage shape}`` for every layer with dendrites.

    PAI sets that buffer up at a layer's first backward pass and cannot load a layer
    without it.
    """
    prefixes = {id(m): n for n, m in group._model.named_modules()}
    return {
        str(layer.name): f"{prefixes[id(layer)]}.{_STORAGE}"
        for name in group._specs
        for layer in group._neuron_layers(name)
    }


def _pai_files(group: Any) -> dict[str, dict[str, torch.Tensor]]:
    """PAI's snapshots that it reads back later (best model, latest switch, PBCount)."""
    from safetensors.torch import load_file

    switches = len(group._tracker.member_vars["switch_epochs"])
    pattern = re.compile(rf"^(best_model|switch_{switches}|PBCount_{group.num_dendrites}_startSteps_-?\d+)\.pt$")
    files = {}
    for path in sorted(group.run_directory.iterdir()):
        if pattern.match(path.name):
            files[path.name] = load_file(str(path))
    return files


def save(group: Any, path: str | Path) -> Path:
    """Write ``group`` to ``path`` (see :meth:`PAIGroup.save_checkpoint`).

    Args:
        group: the group.
        path: the checkpoint file.
    """
    where = f"PAIGroup({group.name!r}).save_checkpoint"
    state = group._model.state_dict()
    untrained = [layer for layer, key in _storage_keys(group).items() if key not in state]
    if untrained:
        raise PAIStateError(
            f"{where}: these layers with dendrites have not had a backward pass yet: {untrained}; "
            "PAI sets up a layer's state at its first backward pass and cannot load a layer "
            "without it. Save after a training step through every network with dendrites "
            "(or give NetworkSpec(dendrites=False) to networks you do not train)"
        )
    upa = group._pai.upa
    with group._call("save_checkpoint"):
        tracker = group._tracker.to_string()
        text = upa.string_to_tensor(tracker)
        if hasattr(group._model, "tracker_string"):
            group._model.tracker_string = text
        else:
            group._model.register_buffer("tracker_string", text)
    own = {n: o for n, o in group._own_opts.items() if o is not None}
    payload = {
        "group": {"name": group.name, "networks": list(group._specs), "fingerprint": fingerprint(group)},
        "model": {k: v.detach().clone() for k, v in group._model.state_dict().items()},
        "tracker": tracker,
        "optimizers": {"shared": group._shared_opt.state_dict(), "own": {n: o.state_dict() for n, o in own.items()}},
        "optimizer_params": {
            "shared": opts.param_names(group, group._shared_opt),
            "own": {n: opts.param_names(group, o).get(n, []) for n, o in own.items()},
        },
        "scheduler": None if group._shared_sched is None else group._shared_sched.state_dict(),
        "targets": {n: {k: v.clone() for k, v in t.params.items()} for n, t in group._targets.items()},
        "pai_files": _pai_files(group),
        "adapter": {"num_scores": group._num_scores, "training_complete": group._training_complete},
        # PAI draws new dendrite weights from torch's global generator
        "rng": {"torch": torch.get_rng_state()},
    }
    return write_checkpoint(path, payload)


def _check(group: Any, ckpt: dict, where: str) -> None:
    """Every check that does not need to change the group."""
    saved = ckpt["group"]
    if saved.get("networks") != list(group._specs):
        raise PAICheckpointError(f"{where}: the checkpoint holds networks {saved.get('networks')}, this group {list(group._specs)}")
    theirs, ours = saved.get("fingerprint") or {}, fingerprint(group)
    if theirs != ours:
        diff = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
        raise PAICheckpointError(f"{where}: the checkpoint was saved by a group configured differently ({diff})")
    model = ckpt["model"]
    if "tracker_string" not in model:
        raise PAICheckpointError(f"{where}: the checkpoint's model state lacks PAI's tracker_string")
    missing = [layer for layer, key in _storage_keys(group).items() if key not in model]
    if missing:
        raise PAICheckpointError(
            f"{where}: the checkpoint lacks PAI's state of the layers {missing} (saved before "
            "their first backward pass); PAI cannot load it"
        )
    bad = [name for name in ckpt["pai_files"] if not _FILE_NAME.match(name)]
    if bad:
        raise PAICheckpointError(f"{where}: unexpected PAI file names {bad} in the checkpoint")
    unknown = sorted(set(ckpt["targets"]) - set(group._specs))
    if unknown:
        raise PAICheckpointError(f"{where}: the checkpoint holds targets of unknown networks {unknown}")


def load(group: Any, path: str | Path, restore_rng: bool) -> None:
    """Load ``path`` into ``group`` (see :meth:`PAIGroup.load_checkpoint`).

    Args:
        group: the group.
        path: a file written by :func:`save`.
        restore_rng: also restore torch's global CPU random state.
    """
    from safetensors.torch import save_file

    where = f"PAIGroup({group.name!r}).load_checkpoint"
    ckpt = read_checkpoint(path)
    _check(group, ckpt, where)
    upa = group._pai.upa
    try:
        with group._call("load_checkpoint"):
            upa.load_net_from_dict(group._model, ckpt["model"])
            group._tracker.reset_module_vector(group._model, False)
            for name, tensors in ckpt["pai_files"].items():
                save_file({k: v.contiguous() for k, v in tensors.items()}, str(group.run_directory / name))
        group._install_hooks()
        order = ckpt["optimizer_params"]
        opts.build_shared(group, order.get("shared"))
        opts.build_own(group, order.get("own"))
        with group._call("load_checkpoint"):
            member_vars = group._tracker.member_vars
            opt_instance, sched_instance = member_vars["optimizer_instance"], member_vars["scheduler_instance"]
            group._tracker.from_string(ckpt["tracker"])
            group._tracker.member_vars["optimizer_instance"] = opt_instance
            group._tracker.member_vars["scheduler_instance"] = sched_instance
        group._shared_opt.load_state_dict(ckpt["optimizers"]["shared"])
        if group._shared_sched is not None and ckpt["scheduler"] is not None:
            group._shared_sched.load_state_dict(ckpt["scheduler"])
        for name, opt in group._own_opts.items():
            if opt is not None and name in ckpt["optimizers"]["own"]:
                opt.load_state_dict(ckpt["optimizers"]["own"][name])
        group._refresh_after_restructure()
        group._saved_targets = dict(ckpt["targets"])
        for name, target in group._targets.items():
            if name in group._saved_targets:
                target.load(group._saved_targets[name])
    except PAICheckpointError:
        group._broken = "load_checkpoint failed half-way"
        raise
    except (KeyError, ValueError, RuntimeError) as err:
        group._broken = "load_checkpoint failed half-way"
        raise PAICheckpointError(f"{where}: the checkpoint does not fit this group: {err}") from err
    rng = ckpt.get("rng") or {}
    if restore_rng and isinstance(rng.get("torch"), torch.Tensor):
        torch.set_rng_state(rng["torch"])
    adapter = ckpt["adapter"]
    group._num_scores = int(adapter.get("num_scores", 0))
    group._training_complete = bool(adapter.get("training_complete", False))
    group._broken = None

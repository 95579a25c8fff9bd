"""Checkpoint files of a :class:`~torchrl_functional.pai.PAIGroup`: format, atomic write, safe read.

A checkpoint is one file written by ``torch.save`` and read back with
``torch.load(weights_only=True)``: it holds only tensors and plain Python data (``dict``,
``list``, ``str``, ``int``, ``float``, ``bool``, ``None``), never pickled classes or code.
It is written to a temporary file in the same directory, flushed to disk, then renamed
over the target (``os.replace``), so a crash leaves either the old file or the new one.

A temporary file left by a process killed mid-save (``.<name>.<pid>.tmp``, the pid of a
process that no longer runs) is removed by the next save to the same path.

Format (``version`` 2), a ``dict`` with:

- ``"format"``: ``"torchrl_functional.pai.checkpoint"``; ``"version"``: ``2``.
- ``"group"``: ``{"name", "networks": [names in order], "fingerprint": {...}}``; the
  fingerprint (per-network lr, dendrites, output dimensions, optimizer class and
  arguments, ``follow_pai_lr``; PAI settings; shared optimizer/scheduler classes and
  arguments; ``maximize``) must match the group the checkpoint is loaded into.
- ``"model"``: ``state_dict()`` of the module PAI tracks (the networks as attributes),
  including PAI's dendrite structure (``dendrite_module.num_cycles``,
  ``dendrite_storage_shape`` ...) and ``tracker_string`` (PAI's own tracker encoding).
- ``"tracker"``: PAI's tracker state as text (``pai_tracker.to_string()``).
- ``"optimizers"``: ``{"shared": state_dict, "own": {network: state_dict}}`` and
  ``"optimizer_params"``: the parameter names of every param group in optimizer order,
  ``{"shared": {network: [names]}, "own": {network: [names]}}``, so that the optimizer
  state is matched to parameters by name, not by their registration order.
- ``"scheduler"``: ``state_dict`` of PAI's scheduler of the shared optimizer, or ``None``.
- ``"targets"``: ``{network: {parameter name: tensor}}``, the values of the group's target
  networks (:class:`~torchrl_functional.pai.TargetNetwork`).
- ``"pai_files"``: ``{file name: {key: tensor}}``, the files of PAI's output folder that it
  reads back later (``best_model.pt``, the latest ``switch_<n>.pt``, ``PBCount_*.pt``);
  PAI writes them as safetensors and they are restored with safetensors.
- ``"adapter"``: ``{"num_scores": int, "training_complete": bool}``.
- ``"rng"``: ``{"torch": torch.get_rng_state()}`` at the save (PAI initializes new
  dendrites from torch's global generator; restored on load unless told otherwise).
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from .errors import PAICheckpointError

__all__ = ["FORMAT", "VERSION", "write_checkpoint", "read_checkpoint"]

FORMAT = "torchrl_functional.pai.checkpoint"
VERSION = 2
_REQUIRED = {
    "group": dict,
    "model": dict,
    "tracker": str,
    "optimizers": dict,
    "optimizer_params": dict,
    "targets": dict,
    "pai_files": dict,
    "adapter": dict,
}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _remove_stale_temporaries(path: Path) -> None:
    """Remove ``.<name>.<pid>.*.tmp`` files of ``path`` whose writer process is gone."""
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(\d+)\..*\.tmp$")
    for candidate in path.parent.iterdir():
        match = pattern.match(candidate.name)
        if match and int(match.group(1)) != os.getpid() and not _alive(int(match.group(1))):
            try:
                candidate.unlink()
            except OSError:
                pass


def write_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write a checkpoint atomically: a temporary file in the same folder, flushed to
    disk, then renamed over ``path`` (``os.replace``).

    Temporaries of earlier saves to ``path`` whose process was killed are removed first.

    Args:
        path: the checkpoint file (its folder is created if missing).
        payload: the checkpoint's entries (tensors and plain Python data only; see the
            module docstring); ``"format"`` and ``"version"`` are added.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    payload = {"format": FORMAT, "version": VERSION, **payload}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load and check a checkpoint (``weights_only=True``: no code is ever unpickled).

    Args:
        path: a file written by :func:`write_checkpoint`.

    Returns:
        The checkpoint's entries (see the module docstring), tensors on the CPU.

    Raises:
        PAICheckpointError: the file is missing, truncated, corrupted, not a checkpoint of
            this adapter, or of an unsupported version.
    """
    path = Path(path)
    if not path.is_file():
        raise PAICheckpointError(f"PAI checkpoint {str(path)!r}: no such file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, pickle.UnpicklingError, zipfile.BadZipFile) as err:
        raise PAICheckpointError(
            f"PAI checkpoint {str(path)!r} cannot be read as a weights-only checkpoint "
            f"(truncated or corrupted file, or one holding pickled objects): {err}"
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise PAICheckpointError(f"PAI checkpoint {str(path)!r}: not a torchrl_functional.pai checkpoint")
    if payload.get("version") != VERSION:
        raise PAICheckpointError(
            f"PAI checkpoint {str(path)!r}: format version {payload.get('version')!r}, expected {VERSION}"
        )
    for key, kind in _REQUIRED.items():
        if not isinstance(payload.get(key), kind):
            raise PAICheckpointError(
                f"PAI checkpoint {str(path)!r}: entry {key!r} is missing or not a {kind.__name__}"
            )
    return payload

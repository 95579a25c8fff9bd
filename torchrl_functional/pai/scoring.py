"""Giving PAI a score: checks before PAI sees it, the call, the rebuild after a
restructure, and what is reported (:class:`ScoreResult`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from . import _optimizers as opts
from .errors import PAIConfigError, PAIStateError

__all__ = ["ScoreResult", "add_score"]


@dataclass(frozen=True)
class ScoreResult:
    """What :meth:`PAIGroup.add_score` did.

    Attributes:
        restructured: PAI changed the networks (dendrites added or removed, or weights
            reloaded for a learning-rate restart or a retry); every optimizer was rebuilt.
        dendrites_added: change of :attr:`num_dendrites` at this score: ``1`` when PAI
            added dendrites, ``0`` for a restructure that added none (a retry with new
            random dendrites, a learning-rate restart), negative when PAI removed them.
        training_complete: PAI considers training finished (best model loaded).
        param_counts: parameters per network as PAI counts them (its internal template
            copies of each layer excluded).
        lrs: current learning rate of every network.
        num_dendrites: dendrite sets added so far (PAI's ``num_dendrites_added``).
        num_scores: scores given to the group so far, this one included.
    """

    restructured: bool
    dendrites_added: int
    training_complete: bool
    param_counts: Mapping[str, int]
    lrs: Mapping[str, float]
    num_dendrites: int
    num_scores: int

    @property
    def total_params(self) -> int:
        """Sum of :attr:`param_counts`."""
        return sum(self.param_counts.values())


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


def _untrained_layers(group: Any) -> list[str]:
    """Layers with dendrites that never received a gradient (PAI stops in pdb at a switch)."""
    out = []
    for name in group._specs:
        for layer in group._neuron_layers(name):
            values = layer.dendrite_module.dendrite_values
            if values and not bool(values[0].current_d_init.item()) and str(layer.name) not in out:
                out.append(str(layer.name))
    return out


def add_score(
    group: Any,
    score: Any,
    extra_scores: Mapping[str, Any] | None,
    test_scores: Mapping[str, Any] | None,
    force_restructure: bool,
) -> ScoreResult:
    """:meth:`PAIGroup.add_score` (see there)."""
    group._check_usable("add_score")
    where = f"PAIGroup({group.name!r}).add_score"
    score = _as_score(where, "score", score)
    extra = {k: _as_score(where, f"extra_scores[{k!r}]", v) for k, v in (extra_scores or {}).items()}
    test = {k: _as_score(where, f"test_scores[{k!r}]", v) for k, v in (test_scores or {}).items()}
    untrained = _untrained_layers(group)
    if untrained:
        with group._call("switch_time"):
            due = force_restructure or bool(group._tracker.switch_time())
        if due:
            raise PAIStateError(
                f"{where}: PAI is due to add dendrites but these layers never received a "
                f"gradient: {untrained}; run a backward pass through every network with "
                "dendrites first, or give NetworkSpec(dendrites=False) to networks you do not train"
            )
    before = group.num_dendrites
    try:
        with group._call("add_score"):
            for key, value in extra.items():
                group._tracker.add_extra_score(value, key)
            for key, value in test.items():
                group._tracker.add_test_score(value, key)
            model, restructured, complete = group._tracker.add_validation_score(
                score, group._model, force_switch=bool(force_restructure)
            )
        if model is not None and model is not group._model:  # pragma: no cover - PAI modifies in place
            raise PAIStateError(f"{where}: PAI returned a new model object instead of modifying it in place")
        restructured, complete = bool(restructured), bool(complete)
        group._num_scores += 1
        group._training_complete = group._training_complete or complete
        if restructured or complete or group._tracker.member_vars.get("optimizer_instance") is None:
            group._install_hooks()
            opts.build_shared(group)
            opts.build_own(group)
            group._refresh_after_restructure()
        else:
            opts.sync_following(group)
    except BaseException as err:
        group._broken = f"add_score: {type(err).__name__}: {err}"
        raise
    return ScoreResult(
        restructured=restructured,
        dendrites_added=group.num_dendrites - before,
        training_complete=complete,
        param_counts=group.param_counts(),
        lrs=group.lrs(),
        num_dendrites=group.num_dendrites,
        num_scores=group._num_scores,
    )


"""A general world-model loss (reward, done, reconstruction and latent heads) as a pure
function of precomputed predictions: TorchRL 0.14's ``WorldModelLoss``.

For the KL of an RSSM (VAE-style world models) see
:func:`~torchrl_functional.functional.dreamer_model_loss`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor

from ...errors import EntryDtypeError, HyperparameterError
from .._offpolicy import Number, check_input
from .._td import check_shape, next_key, pack, read_float, require
from .._validation import check_choice
from ..keys import resolve_keys
from ..value_learning import LOSS_FUNCTIONS, distance_loss
from .keys import NestedKey, WorldModelKeys

__all__ = ["world_model_loss", "WORLD_MODEL_LOSSES"]

#: the terms :func:`world_model_loss` can compute (TorchRL's ``losses`` choices)
WORLD_MODEL_LOSSES = ("reward", "done", "reconstruction", "latent")


def _pair(loss: str, td: TensorDictBase, pred_key: Any, true_key: Any, pred_hint: str, true_hint: str,
          *, flag: bool = False) -> tuple[Tensor, Tensor]:
    pred = read_float(loss, td, pred_key, pred_hint)
    if flag:  # observed flags: bool (or float 0/1), compared as floats as TorchRL does
        true = require(loss, td, true_key, true_hint)
        if not (true.dtype == torch.bool or true.is_floating_point()):
            raise EntryDtypeError(loss, true_key, f"expected a bool (or float) tensor, got {true.dtype}")
        true = true.to(pred.dtype)
    else:
        true = read_float(loss, td, true_key, true_hint)
    check_shape(loss, pred_key, pred, true.shape, f"the shape of {true_key!r}")
    return pred, true


def _head(keys: WorldModelKeys, term: str) -> tuple[NestedKey, NestedKey, str, str]:
    """A term's prediction and target entries, who writes the prediction, what the target is."""
    if term == "reward":
        return (next_key(keys.reward), next_key(keys.true_reward),
                "written by the world model's reward head under 'next'",
                "the observed reward (TorchRL's module renames ('next', 'reward') to it)")
    if term == "done":
        return (next_key(keys.done), next_key(keys.true_done), "written by the world model's done head under 'next'",
                "the observed done flag (TorchRL's module renames ('next', 'done') to it)")
    if term == "reconstruction":
        return keys.reconstructed_observation, keys.observation, "written by the world model's decoder", "the observation"
    return (keys.predicted_latent, keys.target_latent, "the dynamics model's predicted next latent",
            "the target next latent (e.g. the encoder's)")


def _plan(keys: WorldModelKeys, losses: Any, distances: tuple[str, ...]) -> tuple[tuple[Any, ...], ...]:
    """The requested terms, checked, in order: ``(term, index, distance, *_head(keys, term))``."""
    name = "world_model_loss"
    if isinstance(losses, str) or not all(isinstance(term, str) for term in losses):
        raise HyperparameterError(name, "losses", f"expected a list of term names, got {losses!r}")
    unknown = sorted(set(losses) - set(WORLD_MODEL_LOSSES))
    if unknown:
        raise HyperparameterError(name, "losses", f"unknown term(s) {unknown}; expected a subset of {WORLD_MODEL_LOSSES}")
    for term, distance in zip(WORLD_MODEL_LOSSES, distances):
        check_choice(name, f"{term}_loss", distance, LOSS_FUNCTIONS)
    return tuple((term, i, distances[i], *_head(keys, term)) for i, term in enumerate(WORLD_MODEL_LOSSES) if term in losses)


#: plans by (id of the keys object, losses, distances), each with its keys object (kept alive, so
#: its id is not reused while the plan is here): a module checks the same options on every call
_PLANS: dict = {}


def _cached_plan(keys: WorldModelKeys, losses: Any, distances: tuple[str, ...]) -> tuple[tuple[Any, ...], ...]:
    try:
        cache_key = (id(keys), tuple(losses) if type(losses) is list else losses, distances)
        hit = _PLANS.get(cache_key)
    except TypeError:  # unhashable options: checked (and refused) by the plan itself
        return _plan(keys, losses, distances)
    if hit is not None and hit[0] is keys:
        return hit[1]
    plan = _plan(keys, losses, distances)
    if len(_PLANS) >= 256:
        _PLANS.clear()
    _PLANS[cache_key] = (keys, plan)
    return plan


def world_model_loss(
    td: TensorDictBase,
    *,
    losses: Sequence[str] = ("reward",),
    reward_loss: str = "l2",
    done_loss: str = "l2",
    reconstruction_loss: str = "l2",
    latent_loss: str = "l2",
    reward_weight: Number = 1.0,
    done_weight: Number = 1.0,
    reconstruction_weight: Number = 1.0,
    latent_weight: Number = 1.0,
    keys: WorldModelKeys | Mapping[str, NestedKey] | None = None,
) -> TensorDict:
    """World-model loss: weighted mean distances between each head's prediction and its target.

    ``loss_<term> = <term>_weight * mean d(prediction, target)`` over every element, for each
    term of ``losses``. Nothing is detached: gradients reach the predictions (and the targets,
    where they come from a network, e.g. an encoder's ``target_latent``).

    Args:
        td: input TensorDict (not modified); entries (see :class:`WorldModelKeys`), each pair of
            one shape ``[*B, F]``: ``("next", "reward")`` vs ``("next", "true_reward")``;
            ``("next", "done")`` (float prediction) vs ``("next", "true_done")`` (bool or float);
            ``"reconstructed_observation"`` vs ``"observation"``; ``"predicted_latent"`` vs
            ``"target_latent"``. Only the entries of the requested terms are read.
        losses: the terms, a subset of ``("reward", "done", "reconstruction", "latent")``.
        reward_loss, done_loss, reconstruction_loss, latent_loss: ``"l2"``, ``"l1"`` or ``"smooth_l1"``.
        reward_weight, done_weight, reconstruction_weight, latent_weight: weights (numbers or tensors).
        keys: entry names (:class:`WorldModelKeys` or a mapping).

    Returns:
        TensorDict with ``loss_reward``, ``loss_done``, ``loss_reconstruction`` and/or
        ``loss_latent`` (scalars), one per requested term.
    """
    name = "world_model_loss"
    check_input(name, td)
    keys = resolve_keys(keys, WorldModelKeys, name)
    distances = (reward_loss, done_loss, reconstruction_loss, latent_loss)
    plan = _cached_plan(keys, losses, distances)
    weights = (reward_weight, done_weight, reconstruction_weight, latent_weight)
    out: dict[str, Tensor] = {}
    for term, i, distance, pred_key, true_key, pred_hint, true_hint in plan:
        pred, true = _pair(name, td, pred_key, true_key, pred_hint, true_hint, flag=term == "done")
        out[f"loss_{term}"] = weights[i] * distance_loss(pred, true, distance).mean()
    return pack(out)

"""Gathering the entries the imitation functions read (no loss math here)."""

from __future__ import annotations

import functools
from typing import Any

from tensordict import TensorDict, TensorDictBase

from .._onpolicy import _prebuilt, dist_class_of, find_dist_module, run_actor


def copy_loss_masks(loss_module, src: TensorDictBase, dst: TensorDictBase) -> None:
    """Copy the validity masks TorchRL's ``_reduce_loss`` would read from ``src`` (``loss_mask_key``)."""
    for key in loss_module._loss_mask_keys():
        mask = src.get(key, None)
        if mask is not None:
            dst.set(key, mask)


def run_policy(loss_module, td: TensorDictBase) -> tuple[TensorDict, Any]:
    """The actor's distribution parameters on ``td`` (current parameters) and the ``dist_class``
    rebuilding its distribution from them (an actor that only offers ``get_dist``: as built)."""
    dist_module = find_dist_module(loss_module.actor_network)
    params = run_actor(loss_module, td, dist_module)
    if "" in params:
        return TensorDict({}, batch_size=[]), functools.partial(_prebuilt, params.pop(""))
    return TensorDict(params, batch_size=[]), dist_class_of(dist_module)

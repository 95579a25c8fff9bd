"""The ``shifted=True`` value call of TorchRL's estimators: ``V(s)`` and ``V(s')`` from one
call of the critic on a ``T + shifted_budget`` sequence where the true next observation is
inserted after each internal reset (what a recurrent critic needs). Samples pushed past the
budget are marked invalid (``"shifted_valid"``). Network plumbing only: which slot holds
which observation; the estimates are computed by the functional layer."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from torch import Tensor, nn

from ..functional._td import time_dim_of
from ._binding import params_context


def _slots(done: Tensor, terminated: Tensor, time_idx: int, budget: int) -> dict[str, Tensor]:
    """Where each root and next observation goes in the ``T + budget`` sequence."""
    steps = done.shape[time_idx]
    if done.shape[-1] == 1:
        reset = done.squeeze(-1) & ~terminated.squeeze(-1)
    else:
        reset = done.any(-1) & ~terminated.any(-1)
    reset = reset.clone()
    reset[(slice(None),) * time_idx + (-1,)] = False
    reset_long = reset.to(torch.long)
    before_shape = list(reset.shape)
    before_shape[time_idx] = 1
    cumulative = reset_long.cumsum(time_idx)
    reset_before = torch.cat([cumulative.new_zeros(before_shape), cumulative.narrow(time_idx, 0, steps - 1)], time_idx)
    arange_shape = [1] * reset.ndim
    arange_shape[time_idx] = steps
    root_slot = torch.arange(steps, device=done.device).view(arange_shape) + reset_before
    next_slot = root_slot + 1
    length = steps + budget
    valid = next_slot < length
    later = torch.cat([valid.narrow(time_idx, 1, steps - 1), valid.new_ones(before_shape)], time_idx)
    last_valid = valid & ~later
    boundary_slot = steps + reset_long.sum(time_idx, keepdim=True)
    return dict(root=root_slot, next=next_slot, valid=valid, root_valid=root_slot < length,
                next_insert=(reset & valid) | last_valid, boundary=boundary_slot,
                boundary_valid=boundary_slot < length, length=torch.tensor(length))


def _expand(index: Tensor, like: Tensor) -> Tensor:
    while index.ndim < like.ndim:
        index = index.unsqueeze(-1)
    return index.expand_as(like)


def _scatter(dest: Tensor, index: Tensor, source: Tensor, mask: Tensor, time_idx: int, length: int) -> Tensor:
    extra = list(dest.shape)
    extra[time_idx] = 1
    dest = torch.cat([dest, dest.new_empty(extra)], dim=time_idx)  # a sentinel slot for masked writes
    index = torch.where(mask, index, index.new_full((), length)).clamp_max(length)
    return dest.scatter(time_idx, _expand(index, source), source).narrow(time_idx, 0, length)


def _gather(source: Tensor, index: Tensor, time_idx: int, length: int) -> Tensor:
    index = index.clamp_max(length - 1)
    while index.ndim < source.ndim:
        index = index.unsqueeze(-1)
    shape = list(source.shape)
    shape[time_idx] = index.shape[time_idx]
    return source.gather(time_idx, index.expand(shape))


def shifted_values(loss_module, est: nn.Module, data: TensorDictBase, params: Any, target: Any,
                   value_key: Any) -> tuple[Tensor, Tensor, Tensor]:
    """``(V(s), V(s'), valid)`` from one critic call, as TorchRL's ``_call_value_net_shifted``."""
    if target is not None and target is not params:
        raise ValueError(
            "the value at t and t+1 cannot be retrieved in a single call when both params and next params are passed."
        )
    net = est.value_network
    in_keys = list(net.in_keys)
    time_idx = time_dim_of(data, loss=type(est).__name__)  # TorchRL's single call ignores est.time_dim
    root = data.select(*in_keys, value_key, strict=False)
    nxt = data.get("next").select(*in_keys, value_key, strict=False)
    missing = [k for k in in_keys if nxt.get(k, None) is None and root.get(k, None) is not None]
    if missing:
        nxt = nxt.copy()
        for key in missing:
            nxt.set(key, root.get(key))
    if "is_init" in root.keys():
        nxt = nxt.copy()
        nxt["is_init"] = nxt["is_init"] | root["is_init"]
    done = data.get(("next", est.tensor_keys.done))
    terminated = data.get(("next", est.tensor_keys.terminated), done)
    slots = _slots(done, terminated, time_idx, est.shifted_budget)
    length = int(slots["length"])
    steps = data.shape[time_idx]
    batch = list(root.batch_size)
    batch[time_idx] = length
    data_in = root.new_zeros(batch)
    boundary_index = (slice(None),) * time_idx + (slice(steps - 1, steps),)
    for key in list(in_keys) + ([value_key] if value_key not in in_keys else []):
        root_value, slot_value = root.get(key, None), data_in.get(key, None)
        if root_value is None or slot_value is None:
            continue
        slot_value = _scatter(slot_value, slots["root"], root_value, slots["root_valid"], time_idx, length)
        next_value = nxt.get(key, None)
        if next_value is not None:
            slot_value = _scatter(slot_value, slots["next"], next_value, slots["next_insert"], time_idx, length)
            slot_value = _scatter(slot_value, slots["boundary"], next_value[boundary_index],
                                  slots["boundary_valid"], time_idx, length)
        data_in.set(key, slot_value)
    from ._estimate import _call

    with torch.no_grad(), params_context(loss_module, params, net):
        full = _call(est, net, data_in, value_key)
    value = _gather(full, slots["root"], time_idx, length)
    next_value = _gather(full, slots["next"], time_idx, length)
    try:
        value, next_value = value.view_as(done), next_value.view_as(done)
    except RuntimeError:
        pass
    return value, next_value, slots["valid"]

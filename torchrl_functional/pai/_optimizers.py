"""The optimizers of a group: built at the start, rebuilt after every restructure and load.

- The shared optimizer (Case 1 networks, one param group each) is made by PAI
  (``setup_optimizer``) together with its scheduler, as raw PAI code does; after a rebuild
  the previous object raises :class:`~torchrl_functional.pai.errors.PAIStateError` on
  ``step``/``zero_grad`` instead of silently training stale parameter lists.
- An optimizer of its own (Cases 2 and 3) stays the same object for the group's lifetime:
  a rebuild refills it in place (new parameter list, state cleared, as PAI does for the
  shared one), so a scheduler the user attached to it keeps working. Case 2 learning rates
  follow PAI's factor after every score; Case 3 keeps its learning rate.

Each function takes the :class:`~torchrl_functional.pai.PAIGroup` whose state it updates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .errors import PAICheckpointError, PAIStateError

__all__ = [
    "is_template",
    "named_params",
    "build_shared",
    "build_own",
    "sync_following",
    "param_names",
    "lrs",
]

Order = Mapping[str, list[str]]


def is_template(param_name: str) -> bool:
    """PAI keeps an untrained copy of each layer (``parent_module``) as a template for new dendrites."""
    return ".parent_module." in f".{param_name}."


def named_params(group: Any) -> dict[str, list[tuple[str, nn.Parameter]]]:
    """Each network's parameters as ``(qualified name, parameter)``, templates excluded; a
    parameter shared by two networks goes to the first one (one param group only).

    Args:
        group: the group.
    """
    seen: set[int] = set()
    out: dict[str, list[tuple[str, nn.Parameter]]] = {}
    for name in group._specs:
        params = []
        for pname, p in getattr(group._model, name).named_parameters():
            if is_template(pname) or id(p) in seen:
                continue
            seen.add(id(p))
            params.append((f"{name}.{pname}", p))
        out[name] = params
    return out


def _ordered(group: Any, name: str, named: list[tuple[str, nn.Parameter]], order: Order | None) -> list[nn.Parameter]:
    """Trainable parameters of ``name``, in the checkpoint's order when one is given."""
    if order is None or name not in order:
        return [p for _, p in named if p.requires_grad]
    by_name = dict(named)
    missing = [n for n in order[name] if n not in by_name]
    if missing:
        raise PAICheckpointError(
            f"PAIGroup({group.name!r}): the checkpoint's optimizer holds parameters this group "
            f"does not have: {missing[:5]}"
        )
    return [by_name[n] for n in order[name]]


def _retire(opt: torch.optim.Optimizer, group_name: str) -> None:
    def stale(*args: Any, **kwargs: Any) -> None:
        raise PAIStateError(
            f"PAIGroup({group_name!r}): this optimizer was replaced when PAI restructured the "
            "networks (or a checkpoint was loaded): it holds stale parameter lists. Read "
            "group.optimizer again after every add_score, or call group.zero_grad()/group.step()"
        )

    opt.step = stale  # type: ignore[method-assign]
    opt.zero_grad = stale  # type: ignore[method-assign]


def build_shared(group: Any, order: Order | None = None) -> None:
    """(Re)build the shared PAI-managed optimizer and PAI's scheduler from fresh lists.

    Args:
        group: the group.
        order: ``{network: [parameter names]}`` from a checkpoint (optimizer order).
    """
    named = named_params(group)
    groups = []
    for name, spec in group._specs.items():
        if spec.case != 1:
            continue
        params = _ordered(group, name, named[name], order)
        if params:
            groups.append({"params": params, "lr": float(spec.lr), "network": name})
    if not groups:
        raise PAIStateError(f"PAIGroup({group.name!r}): no trainable parameter is left for the shared optimizer")
    opt_args = {**group._optimizer_kwargs, "params": groups}  # PAI overwrites "params": a fresh dict
    with group._call("setup_optimizer"):
        opt, sched = group._tracker.setup_optimizer(group._model, opt_args, dict(group._scheduler_kwargs))
    old = getattr(group, "_shared_opt", None)
    if old is not None and old is not opt:
        _retire(old, group.name)
    group._shared_opt = opt
    group._shared_sched = sched


def pai_factor(group: Any) -> float:
    """Current shared lr over its base lr: PAI's schedule, the same for every param group.

    Args:
        group: the group.
    """
    first = group._shared_opt.param_groups[0]
    return first["lr"] / float(group._specs[first["network"]].lr)


def build_own(group: Any, order: Order | None = None) -> None:
    """(Re)fill the optimizers of Case 2 and 3 networks in place.

    Args:
        group: the group.
        order: ``{network: [parameter names]}`` from a checkpoint (optimizer order).
    """
    named = named_params(group)
    factor = pai_factor(group)
    for name, spec in group._specs.items():
        if spec.case == 1:
            continue
        params = _ordered(group, name, named[name], order)
        opt = group._own_opts.get(name)
        old = opt.param_groups[0] if opt is not None and opt.param_groups else None
        if spec.case == 2:
            lr = float(spec.lr) * factor
        else:  # Case 3 keeps its learning rate (the user's scheduler may have changed it)
            lr = old["lr"] if old is not None else float(spec.lr)
        if opt is None:
            if params:
                group._own_opts[name] = spec.optimizer(
                    [{"params": params, "lr": lr, "network": name}], **dict(spec.optimizer_kwargs)
                )
            continue
        # keys a scheduler added to the param group (e.g. ``initial_lr``) stay
        carried = {k: v for k, v in (old or {}).items() if k not in opt.defaults and k not in ("params", "network")}
        opt.state.clear()
        opt.param_groups.clear()
        if params:
            opt.add_param_group({**carried, "params": params, "lr": lr, "network": name})


def sync_following(group: Any) -> None:
    """Case 2: lr = base lr x PAI's current factor.

    Args:
        group: the group.
    """
    factor = pai_factor(group)
    for name, spec in group._specs.items():
        opt = group._own_opts.get(name)
        if spec.case == 2 and opt is not None:
            for param_group in opt.param_groups:
                param_group["lr"] = float(spec.lr) * factor


def param_names(group: Any, opt: torch.optim.Optimizer) -> dict[str, list[str]]:
    """``{network: [parameter names in optimizer order]}`` for each param group of ``opt``.

    Args:
        group: the group.
        opt: one of its optimizers (param groups tagged with ``"network"``).
    """
    names = {id(p): n for plist in named_params(group).values() for n, p in plist}
    return {pg["network"]: [names[id(p)] for p in pg["params"]] for pg in opt.param_groups}


def lrs(group: Any) -> dict[str, float]:
    """The current learning rate of every network (``nan`` for one without parameters).

    Args:
        group: the group.
    """
    out = {}
    for name, spec in group._specs.items():
        if spec.case == 1:
            groups = [g for g in group._shared_opt.param_groups if g.get("network") == name]
        else:
            opt = group._own_opts.get(name)
            groups = opt.param_groups if opt is not None else []
        out[name] = float(groups[0]["lr"]) if groups else math.nan
    return out

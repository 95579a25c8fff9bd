"""Forward hooks on the layers with dendrites of a group.

- :class:`ActivateGroup` (pre-hook): installs the group's PAI state in PAI's globals
  before the layer runs, so that several groups can be used in turn in one process.
- :class:`ShapeCheck` (pre- and post-hook): the layer's inputs and outputs must have the
  layout PAI was told (``output_dimensions``); PAI would ``sys.exit`` at the first backward
  pass, and once it has added dendrites it broadcasts other ranks to wrong shapes.

Both are picklable objects: a pickled network (e.g. sent to a collector worker) keeps the
shape checks and drops the link to the group.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch import nn

from .errors import PAIShapeError

__all__ = ["ActivateGroup", "ShapeCheck", "install_hooks"]


class ActivateGroup:
    """Forward pre-hook calling ``group._activate()`` (the group is held weakly; a deep
    copy of a network keeps pointing at the same group)."""

    def __init__(self, group: Any) -> None:
        self._ref: weakref.ref | None = weakref.ref(group)

    def __call__(self, module: nn.Module, args: tuple) -> None:
        group = self._ref() if self._ref is not None else None
        if group is not None:
            group._activate()

    def __deepcopy__(self, memo: dict) -> ActivateGroup:
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


class ShapeCheck:
    """Forward hooks checking a layer with dendrites against PAI's ``output_dimensions``.

    The dimensions are read when the hooks are installed: inside ``torch.func`` transforms
    the layer's buffer may be a batched tensor.
    """

    def __init__(self, group: str, network: str, layer: nn.Module) -> None:
        self.group = group
        self.network = network
        self.dims = [int(d) for d in layer.this_output_dimensions.tolist()]
        self.check_input = _rank_preserving(layer)

    def message(self, layer: nn.Module, what: str, shape: torch.Size) -> str:
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


def install_hooks(group: Any, layers: dict[str, list[nn.Module]], activate: bool = True) -> list[Any]:
    """Hooks on every layer with dendrites (``{network: [layers]}``); returns their handles.

    Args:
        group: the :class:`~torchrl_functional.pai.PAIGroup` (its name and ``_activate``).
        layers: the layers with dendrites of each network.
        activate: also install :class:`ActivateGroup` (not for a closed group).
    """
    handles = []
    activator = ActivateGroup(group) if activate else None
    for network, network_layers in layers.items():
        for layer in network_layers:
            check = ShapeCheck(group.name, network, layer)
            if activator is not None:
                handles.append(layer.register_forward_pre_hook(activator))
            handles.append(layer.register_forward_pre_hook(check.before))
            handles.append(layer.register_forward_hook(check.after))
    return handles

"""A loss module's TorchRL ``ValueNorm`` as a functional normaliser plus its statistics.

The module keeps the state (TorchRL's buffers, so ``state_dict`` is TorchRL's); the numbers
come from :mod:`torchrl_functional.functional.value_norm`, and the updated statistics it
returns are copied back into the buffers. A ``ValueNorm`` subclass of the user's own keeps
its own math (called as TorchRL calls it).
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.modules import value_norm as _vn

from ..functional.value_norm import STATISTICS, ValueNormalizer


class OwnNormalizer:
    """A user's ``ValueNorm`` behind the functional normaliser's interface (its own math, its
    own in-place update; the statistics handed around are empty)."""

    def __init__(self, module: _vn.ValueNorm) -> None:
        self.module = module

    def update(self, stats: TensorDictBase, value_target: torch.Tensor) -> TensorDict:
        self.module.update(value_target)
        return TensorDict({}, batch_size=[])

    def normalize(self, stats: TensorDictBase, x: torch.Tensor) -> torch.Tensor:
        return self.module.normalize(x)

    def scale(self, stats: TensorDictBase) -> torch.Tensor:
        return self.module.scale()


def functional_normalizer(module: Any) -> tuple[Any, TensorDict | None]:
    """``(normalizer, statistics)`` of a TorchRL ``ValueNorm`` (``(None, None)`` for ``None``)."""
    if module is None:
        return None, None
    kind = type(module)
    if kind is _vn.PopArtValueNorm:
        norm = ValueNormalizer("popart", beta=module.beta, epsilon=module.epsilon)
    elif kind is _vn.RunningValueNorm:
        norm = ValueNormalizer("running", epsilon=module.epsilon)
    elif kind is _vn.PercentileValueNorm:
        norm = ValueNormalizer("percentile", quantiles=module.quantiles, rate=module.rate,
                               min_scale=module.min_scale, center=module.center)
    else:
        return OwnNormalizer(module), TensorDict({}, batch_size=[])
    stats = TensorDict({name: getattr(module, name) for name in STATISTICS[norm.kind]}, batch_size=[])
    return norm, stats


def store_statistics(module: Any, stats: TensorDictBase | None) -> None:
    """Copy updated statistics into the module's buffers (no-op for a user's own normaliser)."""
    if stats is None or module is None:
        return
    with torch.no_grad():
        for name, value in stats.items():
            getattr(module, name).copy_(value)

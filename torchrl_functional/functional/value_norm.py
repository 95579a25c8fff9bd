"""Value normalisers as pure functions of their running statistics.

The three normalisers TorchRL 0.14.1 ships in ``torchrl.modules.value_norm``:

- PopArt (van Hasselt et al. 2016, "Learning values across many orders of magnitude",
  arXiv 1602.07714; the debiased EMA form used by MAPPO, Yu et al. 2022, arXiv 2103.01955):
  statistics ``running_mean``, ``running_mean_sq`` ``[*F]`` and ``debiasing_term`` ``[]``;
- running (Welford / Chan et al. 1979 parallel update, no decay): ``mean``, ``m2`` ``[*F]``
  and ``count`` ``[]``;
- percentile (DreamerV3's return normalisation, Hafner et al. 2023, arXiv 2301.04104):
  ``low``, ``high`` ``[*F]``.

Statistics are a TensorDict without batch dims whose entries carry the names of the TorchRL
module's buffers (``TensorDict.from_module(value_norm)`` gives them). ``*_update`` returns
new statistics (detached, as TorchRL updates under ``no_grad``) and never writes into its
input; ``*_normalize``/``*_denormalize``/``*_scale`` read them as given. ``F`` is the
normaliser's per-element shape (usually ``(1,)``); every leading dim of a value target is
reduced over.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor

from ..errors import EntryShapeError, HyperparameterError
from ._td import check_float, require
from ._validation import check_range

__all__ = [
    "ValueNormalizer",
    "popart_update", "popart_normalize", "popart_denormalize", "popart_scale",
    "running_update", "running_normalize", "running_denormalize", "running_scale",
    "percentile_update", "percentile_normalize", "percentile_denormalize", "percentile_scale",
]

Number = float | Tensor

STATISTICS = {
    "popart": ("running_mean", "running_mean_sq", "debiasing_term"),
    "running": ("mean", "m2", "count"),
    "percentile": ("low", "high"),
}


def _read(loss: str, stats: TensorDictBase, kind: str) -> tuple[Tensor, ...]:
    if not isinstance(stats, TensorDictBase):
        raise TypeError(f"{loss}: expected the statistics as a TensorDict, got {type(stats).__name__}")
    hint = f"a statistic of the {kind} value normaliser (TorchRL's buffer of that name)"
    out = tuple(require(loss, stats, name, hint) for name in STATISTICS[kind])
    for name, x in zip(STATISTICS[kind], out):
        check_float(loss, name, x)
    return out


def _reduce_dims(loss: str, value_target: Tensor, shape: torch.Size) -> tuple[int, ...]:
    """The leading dims of ``value_target`` (its trailing dims must be the statistics' shape)."""
    n = len(shape)
    if value_target.ndim < n or value_target.shape[value_target.ndim - n:] != shape:
        raise EntryShapeError(
            loss, "value_target",
            f"expected a trailing shape {tuple(shape)} (the normaliser's shape), got {tuple(value_target.shape)}",
        )
    return tuple(range(value_target.ndim - n))


def _new(like: TensorDictBase, **entries: Tensor) -> TensorDict:
    return TensorDict(entries, batch_size=like.batch_size, device=like.device)


# ----------------------------------------------------------------------------- PopArt


def popart_update(stats: TensorDictBase, value_target: Tensor, *, beta: Number = 0.99999) -> TensorDict:
    """PopArt statistics after one batch of value targets (TorchRL's ``PopArtValueNorm.update``).

    ``m <- beta m + (1 - beta) mean(x)``, ``m2 <- beta m2 + (1 - beta) mean(x^2)``,
    ``d <- beta d + (1 - beta)``; the value target is detached.

    Args:
        stats: ``running_mean``, ``running_mean_sq`` ``[*F]``, ``debiasing_term`` ``[]``.
        value_target: ``[*N, *F]`` (every leading dim is averaged over).
        beta: EMA decay in ``[0, 1]``.

    Returns:
        The new statistics (same entries).
    """
    loss = "popart_update"
    m, m2, d = _read(loss, stats, "popart")
    check_range(loss, "beta", beta, 0.0, 1.0)
    x = value_target.detach()
    dims = _reduce_dims(loss, x, m.shape)
    mean, mean_sq = (x.mean(dims), x.pow(2).mean(dims)) if dims else (x, x.pow(2))
    if isinstance(beta, Tensor):
        def ema(s: Tensor, x: Tensor | float) -> Tensor:
            return s * beta + x * (1 - beta)
    else:  # TorchRL's fused ``mul_(beta).add_(x, alpha=1 - beta)``, bit for bit
        def ema(s: Tensor, x: Tensor | float) -> Tensor:
            return torch.add(s * beta, x, alpha=1.0 - beta)
    return _new(stats, running_mean=ema(m, mean), running_mean_sq=ema(m2, mean_sq), debiasing_term=ema(d, 1.0))


def _popart_moments(stats: TensorDictBase, epsilon: Number, loss: str) -> tuple[Tensor, Tensor]:
    m, m2, d = _read(loss, stats, "popart")
    debias = d.clamp(min=epsilon)
    mean = m / debias
    var = (m2 / debias - mean.pow(2)).clamp(min=epsilon)
    return mean, var


def popart_normalize(stats: TensorDictBase, x: Tensor, *, epsilon: Number = 1e-5) -> Tensor:
    """``(x - mean) / std`` from PopArt statistics (debiased EMA moments, variance clamped at ``epsilon``).

    Args:
        stats: as :func:`popart_update`.
        x: ``[*N, *F]``.
        epsilon: floor of the debiasing term and of the variance.
    """
    mean, var = _popart_moments(stats, epsilon, "popart_normalize")
    return (x - mean) / var.sqrt()


def popart_denormalize(stats: TensorDictBase, x: Tensor, *, epsilon: Number = 1e-5) -> Tensor:
    """``x * std + mean``: the inverse of :func:`popart_normalize`.

    Args:
        stats: as :func:`popart_update`.
        x: ``[*N, *F]`` normalised values.
        epsilon: as :func:`popart_normalize`.
    """
    mean, var = _popart_moments(stats, epsilon, "popart_denormalize")
    return x * var.sqrt() + mean


def popart_scale(stats: TensorDictBase, *, epsilon: Number = 1e-5) -> Tensor:
    """The PopArt standard deviation ``[*F]`` (what :func:`popart_normalize` divides by).

    Args:
        stats: as :func:`popart_update`.
        epsilon: as :func:`popart_normalize`.
    """
    return _popart_moments(stats, epsilon, "popart_scale")[1].sqrt()


# ----------------------------------------------------------------------------- running


def running_update(stats: TensorDictBase, value_target: Tensor) -> TensorDict:
    """Exact running mean and variance after one batch (TorchRL's ``RunningValueNorm.update``).

    Chan et al.'s parallel update of Welford's ``(mean, M2, count)``; the batch variance is the
    population one, the value target is detached.

    Args:
        stats: ``mean``, ``m2`` ``[*F]``, ``count`` ``[]``.
        value_target: ``[*N, *F]`` (every leading dim is one sample).

    Returns:
        The new statistics.
    """
    loss = "running_update"
    mean, m2, count = _read(loss, stats, "running")
    x = value_target.detach()
    dims = _reduce_dims(loss, x, mean.shape)
    if dims:
        n = float(math.prod(x.shape[d] for d in dims))
        batch_mean, batch_var = x.mean(dims), x.var(dims, unbiased=False)
    else:
        n, batch_mean, batch_var = 1.0, x, torch.zeros_like(x)
    delta = batch_mean - mean
    total = count + n
    return _new(stats, mean=mean + delta * (n / total), m2=m2 + batch_var * n + delta.pow(2) * (count * n / total),
                count=total)


def _running_var(stats: TensorDictBase, epsilon: Number, loss: str) -> tuple[Tensor, Tensor]:
    mean, m2, count = _read(loss, stats, "running")
    return mean, (m2 / count.clamp(min=1.0)).clamp(min=epsilon)


def running_normalize(stats: TensorDictBase, x: Tensor, *, epsilon: Number = 1e-5) -> Tensor:
    """``(x - mean) / std`` from running statistics (population variance clamped at ``epsilon``).

    Args:
        stats: as :func:`running_update`.
        x: ``[*N, *F]``.
        epsilon: floor of the variance.
    """
    mean, var = _running_var(stats, epsilon, "running_normalize")
    return (x - mean) / var.sqrt()


def running_denormalize(stats: TensorDictBase, x: Tensor, *, epsilon: Number = 1e-5) -> Tensor:
    """``x * std + mean``: the inverse of :func:`running_normalize`.

    Args:
        stats: as :func:`running_update`.
        x: ``[*N, *F]`` normalised values.
        epsilon: floor of the variance.
    """
    mean, var = _running_var(stats, epsilon, "running_denormalize")
    return x * var.sqrt() + mean


def running_scale(stats: TensorDictBase, *, epsilon: Number = 1e-5) -> Tensor:
    """The running standard deviation ``[*F]``.

    Args:
        stats: as :func:`running_update`.
        epsilon: floor of the variance.
    """
    return _running_var(stats, epsilon, "running_scale")[1].sqrt()


# ----------------------------------------------------------------------------- percentile


def percentile_update(
    stats: TensorDictBase,
    value_target: Tensor,
    *,
    quantiles: tuple[float, float] = (0.05, 0.95),
    rate: Number = 0.01,
) -> TensorDict:
    """EMA of a low and a high quantile of the value targets (TorchRL's ``PercentileValueNorm.update``).

    ``low <- low + rate (q_low(x) - low)``, same for ``high``; the quantiles are taken over
    every leading dim; the value target is detached (and cast to the statistics' dtype).

    Args:
        stats: ``low``, ``high`` ``[*F]``.
        value_target: ``[*N, *F]``.
        quantiles: ``(q_low, q_high)`` with ``0 <= q_low < q_high <= 1``.
        rate: EMA rate in ``[0, 1]``.

    Returns:
        The new statistics.
    """
    loss = "percentile_update"
    low, high = _read(loss, stats, "percentile")
    q_low, q_high = quantiles
    if not 0 <= q_low < q_high <= 1:
        raise HyperparameterError(loss, "quantiles", f"must satisfy 0 <= low < high <= 1, got {quantiles!r}")
    check_range(loss, "rate", rate, 0.0, 1.0)
    x = value_target.detach()
    _reduce_dims(loss, x, low.shape)
    flat = x.reshape(-1, *low.shape).to(low.dtype)
    q = torch.tensor([float(q_low), float(q_high)], dtype=flat.dtype, device=flat.device)
    batch_low, batch_high = torch.quantile(flat, q, dim=0)
    return _new(stats, low=torch.lerp(low, batch_low, rate), high=torch.lerp(high, batch_high, rate))


def percentile_scale(stats: TensorDictBase, *, min_scale: Number = 1.0) -> Tensor:
    """``max(min_scale, high - low)`` ``[*F]``.

    Args:
        stats: as :func:`percentile_update`.
        min_scale: lower bound of the scale (positive).
    """
    low, high = _read("percentile_scale", stats, "percentile")
    return (high - low).clamp_min(min_scale)


def percentile_normalize(
    stats: TensorDictBase, x: Tensor, *, min_scale: Number = 1.0, center: bool = False
) -> Tensor:
    """``x / scale`` (``(x - low) / scale`` with ``center``), the scale from :func:`percentile_scale`.

    Args:
        stats: as :func:`percentile_update`.
        x: ``[*N, *F]``.
        min_scale: lower bound of the scale.
        center: subtract the low-quantile EMA first.
    """
    scale = percentile_scale(stats, min_scale=min_scale)
    return (x - stats["low"]) / scale if center else x / scale


def percentile_denormalize(
    stats: TensorDictBase, x: Tensor, *, min_scale: Number = 1.0, center: bool = False
) -> Tensor:
    """The inverse of :func:`percentile_normalize`.

    Args:
        stats: as :func:`percentile_update`.
        x: ``[*N, *F]`` normalised values.
        min_scale: lower bound of the scale.
        center: add the low-quantile EMA back.
    """
    scale = percentile_scale(stats, min_scale=min_scale)
    return x * scale + stats["low"] if center else x * scale


# ----------------------------------------------------------------------------- one object per normaliser


@dataclass(frozen=True)
class ValueNormalizer:
    """A normaliser's kind and options, holding no statistics (they are passed in and returned).

    The functional counterpart of TorchRL's ``PopArtValueNorm``/``RunningValueNorm``/
    ``PercentileValueNorm``: ``update(stats, x)`` returns new statistics,
    ``normalize``/``denormalize``/``scale`` read them.

    Attributes:
        kind: ``"popart"``, ``"running"`` or ``"percentile"``.
        beta: PopArt's EMA decay.
        epsilon: floor of the variance (PopArt, running) and of PopArt's debiasing term.
        quantiles, rate, min_scale, center: the percentile normaliser's options.
    """

    kind: Literal["popart", "running", "percentile"] = "popart"
    beta: float = 0.99999
    epsilon: float = 1e-5
    quantiles: tuple[float, float] = (0.05, 0.95)
    rate: float = 0.01
    min_scale: float = 1.0
    center: bool = False

    def __post_init__(self) -> None:
        if self.kind not in STATISTICS:
            raise HyperparameterError("ValueNormalizer", "kind", f"expected one of {tuple(STATISTICS)}, got {self.kind!r}")
        if self.kind == "percentile" and not self.min_scale > 0:
            raise HyperparameterError("ValueNormalizer", "min_scale", f"must be positive, got {self.min_scale!r}")

    def init(self, shape: int | tuple[int, ...] = 1, *, dtype: torch.dtype | None = None,
             device: torch.device | None = None) -> TensorDict:
        """Initial (zero) statistics, as TorchRL's module allocates its buffers.

        Args:
            shape: the per-element shape ``F``.
            dtype: their dtype (default: torch's default).
            device: their device.
        """
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        names = STATISTICS[self.kind]
        entries = {n: torch.zeros(() if n in ("debiasing_term", "count") else shape, dtype=dtype, device=device)
                   for n in names}
        return TensorDict(entries, batch_size=[], device=device)

    def update(self, stats: TensorDictBase, value_target: Tensor) -> TensorDict:
        """New statistics after ``value_target`` ``[*N, *F]`` (detached)."""
        if self.kind == "popart":
            return popart_update(stats, value_target, beta=self.beta)
        if self.kind == "running":
            return running_update(stats, value_target)
        return percentile_update(stats, value_target, quantiles=self.quantiles, rate=self.rate)

    def _fn(self, op: str) -> Callable[..., Tensor]:
        return {"popart": (popart_normalize, popart_denormalize),
                "running": (running_normalize, running_denormalize),
                "percentile": (percentile_normalize, percentile_denormalize)}[self.kind][op == "denormalize"]

    def _options(self) -> dict:
        if self.kind == "percentile":
            return {"min_scale": self.min_scale, "center": self.center}
        return {"epsilon": self.epsilon}

    def normalize(self, stats: TensorDictBase, x: Tensor) -> Tensor:
        """``x`` ``[*N, *F]`` normalised with ``stats``."""
        return self._fn("normalize")(stats, x, **self._options())

    def denormalize(self, stats: TensorDictBase, x: Tensor) -> Tensor:
        """``x`` ``[*N, *F]`` brought back to the real scale."""
        return self._fn("denormalize")(stats, x, **self._options())

    def scale(self, stats: TensorDictBase) -> Tensor:
        """The multiplicative scale ``[*F]`` of :meth:`normalize`."""
        if self.kind == "percentile":
            return percentile_scale(stats, min_scale=self.min_scale)
        fn = popart_scale if self.kind == "popart" else running_scale
        return fn(stats, epsilon=self.epsilon)

"""Distribution helpers: build a policy distribution from precomputed parameters,
entropy (analytic or Monte-Carlo) and KL with explicit randomness.

Monte-Carlo estimates draw from the global RNG exactly as TorchRL does when no
``generator`` is given (so a module wrapper reproduces TorchRL under the same seed),
or from the given :class:`torch.Generator` (deterministic and independent of the
global seed) for the Normal family and its transformed/independent variants,
which covers TorchRL's ``TanhNormal``, ``IndependentNormal`` and ``TruncatedNormal``-free
continuous policies.

Under ``torch.vmap`` (e.g. over tasks), a Monte-Carlo estimate needs randomness the transform
supports: with ``generator=`` the noise is drawn out of place, so ``randomness="different"``
(one independent draw per task) and ``randomness="same"`` (one draw shared by the tasks) both
work; with ``generator=None`` TorchRL's samplers draw in place (``normal_``), which ``vmap``
accepts with ``randomness="same"`` only. ``randomness="error"`` (the default) refuses any draw:
precompute the entry (``"entropy"``) or use a distribution with a closed form.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from tensordict import TensorDictBase
from torch import Tensor
from torch import distributions as D

from ..errors import EntryDtypeError, EntryShapeError, HyperparameterError
from ._validation import can_inspect_values

__all__ = ["build_distribution", "sample_and_log_prob", "entropy", "kl_divergence", "has_analytic_entropy"]


def _torchrl_utils() -> Any:
    """TorchRL's distribution helpers (``torchrl.modules.distributions.utils``), imported on
    first use: importing ``torchrl`` loads its environments, data and collectors, which the
    pure losses never need (``import torchrl_functional.functional`` stays light)."""
    from torchrl.modules.distributions import utils

    return utils


def has_analytic_entropy(dist: D.Distribution) -> bool:
    """Whether ``dist`` has a closed-form ``entropy()`` (TorchRL's rule: ``Independent``
    through its base, ``CompositeDistribution`` never).

    Args:
        dist: the distribution.

    Returns:
        ``True`` when the entropy is analytic.
    """
    return _torchrl_utils().has_analytic_entropy(dist)


def build_distribution(
    loss: str,
    entry: Any,
    dist_class: Callable[..., D.Distribution] | None,
    params: TensorDictBase | Mapping[str, Tensor],
) -> D.Distribution:
    """``dist_class(**params)``, with errors that name the loss and the entry.

    Args:
        loss: name of the calling loss, for error messages.
        entry: the TensorDict entry ``params`` came from.
        dist_class: a distribution class or any callable returning a distribution
            (e.g. ``functools.partial(TanhNormal, low=-2, high=2)``).
        params: keyword arguments, e.g. ``{"loc": [*B, A], "scale": [*B, A]}`` or ``{"logits": [*B, N]}``.

    Returns:
        The distribution, batch shape ``[*B]``.
    """
    if dist_class is None:
        raise HyperparameterError(
            loss, "dist_class",
            f"the input holds distribution parameters under {entry!r} but no dist_class was given",
        )
    if isinstance(params, Tensor):
        raise EntryShapeError(
            loss, entry,
            "expected a sub-TensorDict (or mapping) of keyword arguments for dist_class, "
            "e.g. {'loc': ..., 'scale': ...} or {'logits': ...}, got a tensor",
        )
    kwargs = dict(params.items()) if isinstance(params, TensorDictBase) else dict(params)
    for name, value in kwargs.items():
        _check_param_dtype(loss, _join(entry, name), name, value)
    name_of = getattr(dist_class, "__name__", dist_class)
    try:
        return dist_class(**kwargs)
    except (TypeError, RuntimeError, ValueError) as err:
        if isinstance(err, TypeError):
            raise HyperparameterError(
                loss, entry, f"could not build the distribution {name_of!r} from the keyword arguments {sorted(kwargs)}: {err}",
            ) from err
        raise EntryShapeError(
            loss, entry,
            f"could not build the distribution {name_of!r} from "
            + ", ".join(f"{k}{tuple(v.shape) if isinstance(v, Tensor) else ''}" for k, v in kwargs.items())
            + f": {err}",
        ) from err


#: structural parameters of TorchRL's masked distributions (``MaskedCategorical``): a bool
#: ``mask`` of allowed actions, or integer ``indices`` of them
_STRUCTURAL = {"mask": "a torch.bool mask", "indices": "an integer tensor of indices"}


def _check_param_dtype(loss: str, key: Any, name: str, value: Any) -> None:
    """Distribution parameters are floating point, except a ``mask`` (bool) and ``indices`` (integer);
    the parameters of a composite distribution (a sub-TensorDict) are checked leaf by leaf."""
    if isinstance(value, TensorDictBase):
        for sub, leaf in value.items(True, True):
            sub = sub if isinstance(sub, tuple) else (sub,)
            _check_param_dtype(loss, key + sub, sub[-1], leaf)
        return
    if not isinstance(value, Tensor):
        return
    if name == "mask":
        ok = value.dtype == torch.bool
    elif name == "indices":
        ok = not value.is_floating_point() and not value.is_complex() and value.dtype != torch.bool
    else:
        ok = value.is_floating_point()
    if not ok:
        expected = _STRUCTURAL.get(name, "a floating point tensor")
        raise EntryDtypeError(loss, key, f"distribution parameter {name!r} must be {expected}, got {value.dtype}")


def _join(entry: Any, name: str) -> tuple:
    return (entry if isinstance(entry, tuple) else (entry,)) + (name,)


def is_continuous(dist: D.Distribution) -> bool:
    """True when the distribution's samples must be floats (reparameterizable, or a continuous support)."""
    if getattr(dist, "has_rsample", False):
        return True
    try:
        support = dist.support
        return support is not None and not support.is_discrete
    except Exception:  # some distributions cannot report a support: do not guess
        return False


def _sum_rightmost(x: Tensor, dims: int) -> Tensor:
    return x.reshape(x.shape[: x.dim() - dims] + (-1,)).sum(-1) if dims > 0 else x


def _rsample_with_generator(
    loss: str, dist: D.Distribution, shape: torch.Size, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Reparameterised sample and its log-prob, drawing noise from ``generator``."""
    if isinstance(dist, D.Normal):
        shape = dist._extended_shape(shape)
        eps = torch.randn(shape, generator=generator, dtype=dist.loc.dtype, device=dist.loc.device)
        x = dist.loc + eps * dist.scale
        return x, dist.log_prob(x)
    if isinstance(dist, D.Independent):
        x, lp = _rsample_with_generator(loss, dist.base_dist, shape, generator)
        return x, _sum_rightmost(lp, dist.reinterpreted_batch_ndims)
    if isinstance(dist, D.TransformedDistribution):
        # score the pre-image (as TorchRL's TanhNormal.rsample_and_log_prob does) rather than
        # inverting a saturating transform
        x, base_lp = _rsample_with_generator(loss, dist.base_dist, shape, generator)
        event_dim = len(dist.event_shape)
        log_prob = 0.0
        for transform in dist.transforms:
            y = transform(x)
            log_prob = log_prob - _sum_rightmost(
                transform.log_abs_det_jacobian(x, y), event_dim - transform.codomain.event_dim
            )
            x = y
        log_prob = log_prob + _sum_rightmost(base_lp, event_dim - len(dist.base_dist.event_shape))
        return x, log_prob
    raise HyperparameterError(
        loss, "generator",
        f"Monte-Carlo sampling with an explicit generator is not implemented for "
        f"{type(dist).__name__}; pass generator=None (global RNG) or precompute the entry",
    )


def sample_and_log_prob(
    dist: D.Distribution,
    num_samples: int,
    *,
    reparameterize: bool,
    generator: torch.Generator | None = None,
    loss: str = "sample_and_log_prob",
) -> tuple[Tensor, Tensor]:
    """Draw ``num_samples`` samples and score the same draw.

    With ``generator=None`` this is TorchRL's ``sample_and_log_prob`` (same RNG calls).

    Args:
        dist: the distribution, batch shape ``[*batch]``, event shape ``[*event]``.
        num_samples: number of samples ``K`` drawn per batch element.
        reparameterize: draw with ``rsample`` (gradients reach the parameters) instead of ``sample``.
        generator: :class:`torch.Generator` for the draw; ``None`` uses the global RNG.
        loss: name of the calling loss, for error messages.

    Returns:
        ``(sample, log_prob)`` with shapes ``[num_samples, *batch, *event]`` and ``[num_samples, *batch]``.
    """
    shape = torch.Size((num_samples,))
    if generator is None:
        return _torchrl_utils().sample_and_log_prob(dist, shape, reparameterize=reparameterize)
    x, lp = _rsample_with_generator(loss, dist, shape, generator)
    if not reparameterize:
        x = x.detach()
    return x, lp


def entropy(
    dist: D.Distribution,
    samples_mc_entropy: int = 1,
    *,
    generator: torch.Generator | None = None,
    loss: str = "entropy",
) -> Tensor:
    """Policy entropy per sample: analytic when the distribution has it, else Monte-Carlo.

    The Monte-Carlo estimate ``-mean_k log pi(x_k)`` uses reparameterised samples when
    available (as TorchRL), so it carries gradients to the distribution parameters.
    As in TorchRL's PPO, a non-finite analytic entropy falls back to the estimate.

    Args:
        dist: the policy's distribution, batch shape ``[*B]``.
        samples_mc_entropy: samples ``K`` of the Monte-Carlo estimate (used only without a
            finite analytic entropy).
        generator: :class:`torch.Generator` for those samples; ``None`` uses the global RNG
            exactly as TorchRL does.
        loss: name of the calling loss, for error messages.

    Returns:
        ``dist.batch_shape`` tensor ``[*B]``.
    """
    if has_analytic_entropy(dist):
        value = dist.entropy()
        if not can_inspect_values(value) or bool(value.isfinite().all()):
            return value
    _, log_prob = sample_and_log_prob(
        dist, samples_mc_entropy, reparameterize=dist.has_rsample, generator=generator, loss=loss
    )
    return -log_prob.mean(0)


def kl_divergence(
    p: D.Distribution,
    q: D.Distribution,
    samples_mc_kl: int = 1,
    *,
    generator: torch.Generator | None = None,
    loss: str = "kl_divergence",
) -> Tensor:
    """``KL(p || q)`` per sample: analytic when registered, else ``mean_k log p(x_k) - log q(x_k)``, ``x_k ~ p``.

    Args:
        p: first distribution (e.g. the behaviour policy), batch shape ``[*B]``.
        q: second distribution (e.g. the current policy), same batch shape.
        samples_mc_kl: samples ``K`` of the Monte-Carlo estimate (used when no analytic KL
            is registered for the pair).
        generator: :class:`torch.Generator` for those samples; ``None`` uses the global RNG.
        loss: name of the calling loss, for error messages.

    Returns:
        ``p.batch_shape`` tensor ``[*B]``.
    """
    if _has_analytic_kl(p, q):
        if D.kl._dispatch_kl(type(p), type(q)) in _CATEGORICAL_KL:
            return _categorical_kl(p, q)
        return D.kl.kl_divergence(p, q)
    x, log_p = sample_and_log_prob(p, samples_mc_kl, reparameterize=False, generator=generator, loss=loss)
    return (log_p - q.log_prob(x)).mean(0)



_CATEGORICAL_KL = (D.kl._kl_categorical_categorical, D.kl._kl_onehotcategorical_onehotcategorical)


def _categorical_kl(p: D.Distribution, q: D.Distribution) -> Tensor:
    """torch's ``KL(Categorical || Categorical)`` with ``where`` instead of boolean-mask
    assignment, which ``vmap`` cannot batch. Same values (``inf`` where ``q`` has a zero
    the support of ``p`` reaches, ``0`` terms where ``p`` is zero)."""
    if isinstance(p, D.OneHotCategorical):
        p, q = p._categorical, q._categorical
    t = p.probs * (p.logits - q.logits)
    t = torch.where(q.probs == 0, torch.full_like(t, float("inf")), t)
    t = torch.where(p.probs == 0, torch.zeros_like(t), t)
    return t.sum(-1)


def _has_analytic_kl(p: D.Distribution, q: D.Distribution) -> bool:
    """TorchRL's ``has_analytic_kl``; while ``torch.compile`` traces, the same lookup without
    TorchRL's module-level cache: filling that cache during tracing makes dynamo guard on its
    contents, so the next call would recompile once."""
    if not torch.compiler.is_compiling():
        return _torchrl_utils().has_analytic_kl(p, q)
    if isinstance(p, D.Independent) and isinstance(q, D.Independent):
        return p.reinterpreted_batch_ndims == q.reinterpreted_batch_ndims and _has_analytic_kl(
            p.base_dist, q.base_dist
        )
    if isinstance(p, D.TransformedDistribution) and isinstance(q, D.TransformedDistribution):
        return (p.transforms == q.transforms and p.event_shape == q.event_shape
                and _has_analytic_kl(p.base_dist, q.base_dist))
    wrappers = (D.Independent, D.TransformedDistribution)
    return any(
        issubclass(type(p), super_p) and issubclass(type(q), super_q)
        for super_p, super_q in D.kl._KL_REGISTRY
        if super_p not in wrappers and super_q not in wrappers
    )

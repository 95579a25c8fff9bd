"""Composite (multi-head) action distributions, as TorchRL's on-policy losses treat them.

A :class:`tensordict.nn.CompositeDistribution` groups one distribution per action head;
each head ``("path", "to", "name")`` has its log-prob under ``("path", "to", "name_log_prob")``
and its entropy under ``("path", "to", "name_entropy")`` (TensorDict's naming, without
log-prob aggregation). The helpers here compute per-head log-probs, entropies and KL
divergences and reduce them to the loss's batch shape the way TorchRL's
``_sum_td_features`` does: each head summed over its dims beyond the batch, then the heads
summed. They do not depend on ``tensordict.nn.composite_lp_aggregate``: the per-head
structure is always kept until the reduction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.utils import unravel_key
from torch import Tensor
from torch import distributions as D

from ..errors import EntryDtypeError, EntryShapeError, HyperparameterError, MissingEntryError
from ._td import check_constant, entry, missing
from .distributions import entropy as dist_entropy
from .distributions import has_analytic_entropy, is_continuous, sample_and_log_prob

__all__ = [
    "is_composite",
    "head_key",
    "head_log_probs",
    "sum_to_batch",
    "sum_heads",
    "composite_entropy",
    "joint_entropy",
    "composite_kl",
    "entropy_loss",
]


def is_composite(dist: Any) -> bool:
    """True for a :class:`tensordict.nn.CompositeDistribution` (several action heads)."""
    from tensordict.nn import CompositeDistribution

    return isinstance(dist, CompositeDistribution)


def head_key(name: Any, suffix: str) -> Any:
    """``name`` with ``suffix`` appended to its last element (``("a", "b") -> ("a", "b_log_prob")``)."""
    name = unravel_key(name)
    if isinstance(name, str):
        return name + suffix
    return name[:-1] + (name[-1] + suffix,)


def head_log_probs(loss: str, dist: D.Distribution, action: TensorDictBase, params_key: Any = None) -> dict[Any, Tensor]:
    """``{head_log_prob_key: log pi_h(a_h)}`` for every head of a composite ``dist``.

    Args:
        loss: calling loss (error messages).
        dist: the composite distribution.
        action: TensorDict holding each head's action at the head's name (constants).
        params_key: the entry the distribution was built from (error messages).
    """
    out = {}
    for name, component in dist.dists.items():
        a = entry(action, name)
        if a is None:
            raise missing(loss, name, "the action of this head of the composite policy, written by the collector")
        check_constant(loss, name, a, "the action must be a constant of the data")
        if is_continuous(component) and not a.is_floating_point():
            raise EntryDtypeError(
                loss, name, f"{type(component).__name__} is continuous: expected a floating point action, got {a.dtype}"
            )
        try:
            out[head_key(name, "_log_prob")] = component.log_prob(a)
        except (RuntimeError, ValueError, IndexError) as err:
            raise EntryShapeError(
                loss, name, f"cannot be scored: action shape {tuple(a.shape)}, while the head built from "
                f"{params_key!r} has batch shape {tuple(component.batch_shape)} and event shape "
                f"{tuple(component.event_shape)} ({err})",
            ) from err
    return out


def sum_to_batch(loss: str, key: Any, x: Tensor, batch_shape: torch.Size) -> Tensor:
    """``x`` ``[*B, *extra]`` summed over its dims beyond the batch shape ``B``."""
    n = len(batch_shape)
    if x.ndim < n or x.shape[:n] != batch_shape:
        raise EntryShapeError(
            loss, key, f"a head's shape {tuple(x.shape)} does not start with the batch shape {tuple(batch_shape)} "
            "(the advantage's batch shape, or the behaviour log-prob's shape)",
        )
    return x.flatten(n).sum(-1) if x.ndim > n else x


def sum_heads(loss: str, heads: Mapping[Any, Tensor], batch_shape: torch.Size) -> Tensor:
    """Sum of every head, each reduced to ``batch_shape`` (TorchRL's ``_sum_td_features``)."""
    total = None
    for key, x in heads.items():
        part = sum_to_batch(loss, key, x, batch_shape)
        total = part if total is None else total + part
    if total is None:
        raise EntryShapeError(loss, "actor_output", "the composite distribution has no head")
    return total


def composite_entropy(
    loss: str,
    dist: D.Distribution,
    samples_mc: int,
    *,
    generator: torch.Generator | None,
    log_prob_keys: Any,
) -> dict[Any, Tensor]:
    """Per-head entropies of a composite policy, named and estimated as TorchRL's PPO does.

    When every head has an analytic entropy or a reparameterised sampler: each head's own
    entropy (analytic, else a ``samples_mc``-sample estimate), under ``"<head>_entropy"``.
    Otherwise one joint Monte-Carlo draw of every head (not reparameterised) scored per head,
    keeping the heads listed in ``log_prob_keys`` (the behaviour log-prob keys) under their
    log-prob names.

    Returns:
        ``{key: [*dist_batch, *extra]}`` entropies, with gradients to the parameters.
    """
    components = dist.dists
    if all(has_analytic_entropy(c) or c.has_rsample for c in components.values()):
        return {
            head_key(name, "_entropy"): dist_entropy(c, samples_mc, generator=generator, loss=loss)
            for name, c in components.items()
        }
    log_probs = {}
    for name, component in components.items():
        _, lp = sample_and_log_prob(component, samples_mc, reparameterize=False, generator=generator, loss=loss)
        log_probs[head_key(name, "_log_prob")] = lp
    wanted = log_prob_keys if isinstance(log_prob_keys, list) else [log_prob_keys]
    out = {}
    for key in wanted:
        key = unravel_key(key)
        if key not in log_probs:
            raise MissingEntryError(
                loss, key, f"names no head of the composite policy (heads: {sorted(map(str, log_probs))})"
            )
        out[key] = -log_probs[key].mean(0)
    return out


def joint_entropy(
    loss: str,
    dist: D.Distribution,
    samples_mc: int,
    batch_shape: torch.Size,
    *,
    generator: torch.Generator | None,
) -> Tensor:
    """Total entropy ``[*B]`` of a composite policy as TorchRL's ``A2CLoss`` estimates it: one
    reparameterised ``samples_mc``-sample estimate of every head, scored per head and summed.

    A head without a reparameterised sampler (TorchRL raises there) contributes its analytic
    entropy; without either, a :class:`HyperparameterError` names it.
    """
    shape = torch.Size((samples_mc,)) + batch_shape
    total = None
    for name, component in dist.dists.items():
        if component.has_rsample:
            _, lp = sample_and_log_prob(component, samples_mc, reparameterize=True, generator=generator, loss=loss)
            part = -sum_to_batch(loss, name, lp, shape).mean(0)
        elif has_analytic_entropy(component):
            part = sum_to_batch(loss, name, component.entropy(), batch_shape)
        else:
            raise HyperparameterError(
                loss, name, f"{type(component).__name__} has neither a reparameterised sampler nor an analytic "
                "entropy: set entropy_bonus=False",
            )
        total = part if total is None else total + part
    return total


def composite_kl(
    loss: str,
    p: D.Distribution,
    q: D.Distribution,
    samples_mc: int,
    batch_shape: torch.Size,
    *,
    generator: torch.Generator | None,
) -> Tensor:
    """Monte-Carlo ``KL(p || q)`` ``[*B]`` between two composite policies with the same heads.

    ``samples_mc`` joint draws from ``p`` (not reparameterised); each side's log-prob is the
    sum over heads reduced to ``batch_shape`` (TorchRL's ``KLPENPPOLoss``).
    """
    shape = torch.Size((samples_mc,)) + batch_shape
    log_p, log_q = {}, {}
    for name, component in p.dists.items():
        other = q.dists.get(name)
        if other is None:
            raise EntryShapeError(loss, name, "this head of the behaviour policy is missing from the current policy")
        x, lp = sample_and_log_prob(component, samples_mc, reparameterize=False, generator=generator, loss=loss)
        key = head_key(name, "_log_prob")
        log_p[key], log_q[key] = lp, other.log_prob(x)
    return (sum_heads(loss, log_p, shape) - sum_heads(loss, log_q, shape)).mean(0)


def entropy_loss(
    loss: str,
    entropy: Tensor,
    heads: TensorDictBase | None,
    entropy_coeff: Any,
) -> Tensor:
    """``-entropy_coeff * H``; a mapping ``{head: coeff}`` weighs each head's entropy.

    Args:
        entropy: total per-sample entropy ``[*B, 1]``.
        heads: per-head entropies (TensorDict of batch ``[*B, 1]``), for a mapping.
        entropy_coeff: number or tensor, or a mapping from each head's entropy key (as in the
            ``"composite_entropy"`` output) to its coefficient (TorchRL's per-head ``entropy_coeff``).
    """
    if isinstance(entropy_coeff, (int, float, Tensor)) or not isinstance(entropy_coeff, Mapping):
        return -entropy_coeff * entropy
    if heads is None:
        raise HyperparameterError(
            loss, "entropy_coeff", "a per-head mapping needs a composite policy (several action heads)"
        )
    coeffs = {unravel_key(k): v for k, v in entropy_coeff.items()}
    total = None
    for key, value in heads.items(True, True):
        key = unravel_key(key)
        if key not in coeffs:
            raise MissingEntryError(
                loss, ("entropy_coeff", key) if isinstance(key, str) else ("entropy_coeff", *key),
                f"Missing entropy coeff for head {key!r}: the mapping names {sorted(map(str, coeffs))}",
            )
        coeff = coeffs[key]
        if not isinstance(coeff, Tensor):
            coeff = torch.as_tensor(coeff, dtype=value.dtype, device=value.device)
        term = -coeff * value
        total = term if total is None else total + term
    return total


def per_head_td(heads: Mapping[Any, Tensor], batch_shape: torch.Size) -> TensorDict:
    """Per-head values as TorchRL reports them: a TensorDict of batch ``[*B, 1]``, heads in order."""
    out = TensorDict({}, batch_size=batch_shape)
    for key, value in heads.items():
        out.set(key, value)
    return out.unsqueeze(-1)

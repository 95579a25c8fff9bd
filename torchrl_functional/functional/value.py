"""Value and advantage estimators as vectorized, differentiable tensor kernels.

Every kernel follows TorchRL's conventions (``torchrl.objectives.value.functional``):
tensors are ``[*B, T, *F]`` with time at ``time_dim`` (default ``-2``); ``done`` cuts
the recursion (the trajectory ends here, the next step belongs to another one);
``terminated`` cuts the bootstrap (the next state has no value). The last step of
the time axis is treated as a trajectory boundary.

Unlike TorchRL's kernels these are vectorized over time *and* differentiable with
respect to ``gamma`` and ``lmbda`` whether they are Python numbers, 0-d tensors or
per-step tensors broadcastable to the values (e.g. ``[*B, T, 1]``). The backward
recursion ``x[t] = b[t] + a[t] * x[t + 1]`` is evaluated by a parallel prefix scan
(Hillis-Steele) in ``ceil(log2 T)`` out-of-place steps: ``O(T log T)`` work, no
Python loop over time, no division (so no instability when a discount is 0), and
plain autograd for every input.

Nothing is detached here: callers decide what carries gradients (the TensorDict
losses detach the critic's values, as TorchRL does, and keep ``gamma``/``lmbda``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import EntryDtypeError, EntryShapeError, HyperparameterError
from ._validation import assert_finite, check_unit_interval, finite_checks_enabled

__all__ = [
    "reverse_discounted_scan",
    "generalized_advantage_estimate",
    "td0_return_estimate",
    "td0_advantage_estimate",
    "td1_return_estimate",
    "td1_advantage_estimate",
    "td_lambda_return_estimate",
    "td_lambda_advantage_estimate",
]

Scalar = float | Tensor


def reverse_discounted_scan(discount: Tensor, value: Tensor, dim: int = -2) -> Tensor:
    """Solve ``x[t] = value[t] + discount[t] * x[t + 1]`` backwards in time, with ``x[T] = 0``.

    The generic kernel behind every estimator of this module (GAE, TD(1), TD(lambda),
    V-trace). Computed with a parallel prefix scan: ``ceil(log2 T)`` vectorized steps.

    Args:
        discount: per-step multiplier ``a``, broadcastable to ``value``.
        value: per-step increment ``b``, shape ``[..., T, ...]`` with time at ``dim``.
        dim: the time dimension.

    Returns:
        ``x``, same shape as ``value``, differentiable w.r.t. both inputs.
    """
    a = discount.expand_as(value) if discount.shape != value.shape else discount
    b = value
    dim = dim % value.ndim
    steps = value.shape[dim]
    offset = 1
    while offset < steps:
        keep = steps - offset
        b_head = torch.addcmul(b.narrow(dim, 0, keep), a.narrow(dim, 0, keep), b.narrow(dim, offset, keep))
        b = torch.cat([b_head, b.narrow(dim, keep, offset)], dim)
        if offset * 2 < steps:  # the last step's products are never read
            a_head = a.narrow(dim, 0, keep) * a.narrow(dim, offset, keep)
            a = torch.cat([a_head, a.narrow(dim, keep, offset)], dim)
        offset *= 2
    return b


# --------------------------------------------------------------------------- checks


def _time_dim(name: str, time_dim: int, ref: Tensor) -> int:
    if ref.ndim == 0:
        raise EntryShapeError(name, "state_value", "expected a tensor with a time dimension, got a 0-d tensor")
    if not -ref.ndim <= time_dim < ref.ndim:
        raise EntryShapeError(
            name, "time_dim", f"time_dim={time_dim} is out of range for tensors of shape {tuple(ref.shape)}"
        )
    return time_dim % ref.ndim


def _check_signals(name: str, ref_name: str, ref: Tensor, **tensors: Tensor | None) -> None:
    if not ref.is_floating_point():
        raise EntryDtypeError(name, ref_name, f"expected a floating point tensor, got {ref.dtype}")
    checking = finite_checks_enabled()
    if checking:
        assert_finite(name, ref_name, ref)
    for key, tensor in tensors.items():
        if tensor is None:
            continue
        if tensor.shape != ref.shape:
            raise EntryShapeError(
                name,
                key,
                f"expected shape {tuple(ref.shape)} (the shape of {ref_name}), got {tuple(tensor.shape)}",
            )
        if key in ("done", "terminated"):
            if tensor.dtype != torch.bool:
                raise EntryDtypeError(name, key, f"expected a torch.bool tensor, got {tensor.dtype}")
        elif not tensor.is_floating_point():
            raise EntryDtypeError(name, key, f"expected a floating point tensor, got {tensor.dtype}")
        elif checking:
            assert_finite(name, key, tensor)


def _broadcasts_to(shape: torch.Size, target: torch.Size) -> bool:
    """``torch.broadcast_shapes(shape, target) == target`` (``shape`` broadcasts to ``target``
    without enlarging it), without the cost of ``torch.broadcast_shapes``."""
    n = len(shape)
    if n > len(target):
        return False
    return all(a == 1 or a == b for a, b in zip(shape, target[len(target) - n:]))


def _as_factor(name: str, key: str, x: Scalar, ref: Tensor, check_range: bool = True) -> Scalar:
    """Validate a discount-like factor and check it broadcasts to ``ref`` without enlarging it."""
    if isinstance(x, Tensor):
        if not (x.is_floating_point() or x.is_complex()):
            x = x.to(ref.dtype)
        if not _broadcasts_to(x.shape, ref.shape):
            raise EntryShapeError(
                name,
                key,
                f"shape {tuple(x.shape)} does not broadcast to the value shape {tuple(ref.shape)} "
                "(use a Python number, a 0-d tensor or a per-step tensor such as [*B, T, 1])",
            )
    elif not isinstance(x, (int, float)):
        raise HyperparameterError(name, key, f"expected a number or a tensor, got {type(x).__name__}")
    if check_range:
        check_unit_interval(name, key, x)
    return x


def _last_step_done(done: Tensor, dim: int) -> Tensor:
    """``done`` with the final time step forced to True (the batch ends there)."""
    last = torch.ones_like(done.narrow(dim, 0, 1))
    return torch.cat([done.narrow(dim, 0, done.shape[dim] - 1), last], dim)


def _not(flag: Tensor, dtype: torch.dtype) -> Tensor:
    return (~flag).to(dtype)


# --------------------------------------------------------------------------- GAE


def generalized_advantage_estimate(
    gamma: Scalar,
    lmbda: Scalar,
    state_value: Tensor,
    next_state_value: Tensor,
    reward: Tensor,
    done: Tensor,
    terminated: Tensor | None = None,
    *,
    time_dim: int = -2,
) -> tuple[Tensor, Tensor]:
    """Generalized advantage estimate, vectorized over time.

    Schulman et al. 2016, "High-Dimensional Continuous Control Using Generalized
    Advantage Estimation" (arXiv 1506.02438):
    ``A[t] = delta[t] + gamma * lmbda * (1 - done[t]) * A[t + 1]`` with
    ``delta[t] = r[t] + gamma * (1 - terminated[t]) * V(s'[t]) - V(s[t])``.

    Args:
        gamma: discount; a number, a 0-d tensor or a tensor broadcastable to the values
            (e.g. per-step ``[*B, T, 1]``). Gradients flow to it.
        lmbda: GAE lambda, same forms as ``gamma``.
        state_value: ``V(s)``, ``[*B, T, *F]`` float.
        next_state_value: ``V(s')``, same shape.
        reward: ``r``, same shape.
        done: bool, same shape; ends the recursion.
        terminated: bool, same shape; cuts the bootstrap. Defaults to ``done``.
        time_dim: the time dimension. Defaults to ``-2``.

    Returns:
        ``(advantage, value_target)``, each like ``state_value``; ``value_target = advantage + state_value``.
        Nothing is detached.
    """
    name = "generalized_advantage_estimate"
    _check_signals(name, "state_value", state_value, next_state_value=next_state_value,
                   reward=reward, done=done, terminated=terminated)
    dim = _time_dim(name, time_dim, state_value)
    gamma = _as_factor(name, "gamma", gamma, state_value)
    lmbda = _as_factor(name, "lmbda", lmbda, state_value)
    if terminated is None:
        terminated = done
    dtype = state_value.dtype
    delta = reward + (gamma * _not(terminated, dtype)) * next_state_value - state_value
    advantage = reverse_discounted_scan(lmbda * gamma * _not(done, dtype), delta, dim)
    return advantage, advantage + state_value


# --------------------------------------------------------------------------- TD(0)


def td0_return_estimate(
    gamma: Scalar,
    next_state_value: Tensor,
    reward: Tensor,
    terminated: Tensor,
) -> Tensor:
    """One-step TD target ``r + gamma * (1 - terminated) * V(s')`` (Sutton & Barto 2018, ch. 6).

    Args:
        gamma: discount (number, 0-d or broadcastable tensor; differentiable).
        next_state_value: ``V(s')``, ``[*B, T, *F]`` (any shape; no time recursion).
        reward: same shape.
        terminated: bool, same shape.

    Returns:
        The target, same shape. Nothing is detached.
    """
    name = "td0_return_estimate"
    _check_signals(name, "next_state_value", next_state_value, reward=reward, terminated=terminated)
    gamma = _as_factor(name, "gamma", gamma, next_state_value)
    return reward + gamma * _not(terminated, next_state_value.dtype) * next_state_value


def td0_advantage_estimate(
    gamma: Scalar,
    state_value: Tensor,
    next_state_value: Tensor,
    reward: Tensor,
    done: Tensor,
    terminated: Tensor | None = None,
) -> Tensor:
    """One-step TD advantage ``r + gamma * (1 - terminated) * V(s') - V(s)``.

    Args:
        gamma: discount (number, 0-d or broadcastable tensor; differentiable).
        state_value: ``V(s)``, ``[*B, T, *F]`` (any shape; no time recursion).
        next_state_value: ``V(s')``, same shape.
        reward: same shape.
        done: bool, same shape.
        terminated: bool, same shape; defaults to ``done``.

    Returns:
        The advantage, same shape. Nothing is detached.
    """
    name = "td0_advantage_estimate"
    _check_signals(name, "state_value", state_value, next_state_value=next_state_value,
                   reward=reward, done=done, terminated=terminated)
    if terminated is None:
        terminated = done
    return td0_return_estimate(gamma, next_state_value, reward, terminated) - state_value


# --------------------------------------------------------------------------- TD(lambda), TD(1)


def td_lambda_return_estimate(
    gamma: Scalar,
    lmbda: Scalar,
    next_state_value: Tensor,
    reward: Tensor,
    done: Tensor,
    terminated: Tensor | None = None,
    *,
    time_dim: int = -2,
) -> Tensor:
    """TD(lambda) return (Sutton & Barto 2018, ch. 12), vectorized over time.

    ``G[t] = r[t] + gamma[t] * ((1 - lmbda[t]) * v[t] + lmbda[t] * (G[t + 1] if not done[t] else v[t]))``
    with ``v[t] = (1 - terminated[t]) * V(s'[t])``; the last step bootstraps from ``v[T-1]``.
    ``lmbda=0`` gives TD(0), ``lmbda=1`` gives TD(1). Per-step ``gamma``/``lmbda`` are tied
    to their step (TorchRL's ``rolling_gamma=True``).

    Args:
        gamma: discount (number, 0-d or per-step tensor; differentiable).
        lmbda: trace decay, same forms.
        next_state_value: ``V(s')``, ``[*B, T, *F]``.
        reward: same shape.
        done: bool, same shape.
        terminated: bool, same shape; defaults to ``done``.
        time_dim: the time dimension.

    Returns:
        ``G``, same shape. Nothing is detached.
    """
    return _lambda_return(
        "td_lambda_return_estimate", gamma, lmbda, next_state_value, reward, done, terminated, time_dim
    )


def td1_return_estimate(
    gamma: Scalar,
    next_state_value: Tensor,
    reward: Tensor,
    done: Tensor,
    terminated: Tensor | None = None,
    *,
    time_dim: int = -2,
) -> Tensor:
    """Monte-Carlo return bootstrapped at trajectory ends (TD(1)): the TD(lambda) return at ``lmbda=1``.

    ``G[t] = r[t] + gamma[t] * (G[t + 1] if not done[t] else (1 - terminated[t]) * V(s'[t]))``;
    the last step of the time axis bootstraps from ``V(s'[T-1])``. A per-step ``gamma``
    is tied to its step (TorchRL's ``rolling_gamma=True``).

    Args:
        gamma: discount (number, 0-d or per-step tensor; differentiable).
        next_state_value: ``V(s')``, ``[*B, T, *F]``.
        reward, done, terminated, time_dim: as :func:`td_lambda_return_estimate`.

    Returns:
        ``G``, same shape. Nothing is detached.
    """
    return _lambda_return("td1_return_estimate", gamma, None, next_state_value, reward, done, terminated, time_dim)


def _lambda_return(
    name: str,
    gamma: Scalar,
    lmbda: Scalar | None,
    next_state_value: Tensor,
    reward: Tensor,
    done: Tensor,
    terminated: Tensor | None,
    time_dim: int,
) -> Tensor:
    """The return of :func:`td_lambda_return_estimate`, errors reported under ``name``.

    ``lmbda=None`` is TD(1), ``lmbda = 1`` without the terms that value cancels (the same
    numbers and gradients, fewer tensor operations).
    """
    _check_signals(name, "next_state_value", next_state_value, reward=reward, done=done,
                   terminated=terminated)
    dim = _time_dim(name, time_dim, next_state_value)
    gamma = _as_factor(name, "gamma", gamma, next_state_value)
    if terminated is None:
        terminated = done
    dtype = next_state_value.dtype
    done_f = _last_step_done(done, dim).to(dtype)
    next_value = _not(terminated, dtype) * next_state_value
    if lmbda is None:  # TD(1): v[t] only where the trajectory ends
        bootstrap = done_f * next_value
        trace = gamma
    else:
        lmbda = _as_factor(name, "lmbda", lmbda, next_state_value)
        bootstrap = (1 - lmbda) * next_value + lmbda * done_f * next_value
        trace = gamma * lmbda
    return reverse_discounted_scan(trace * (1 - done_f), reward + gamma * bootstrap, dim)


def td_lambda_advantage_estimate(
    gamma: Scalar,
    lmbda: Scalar,
    state_value: Tensor,
    next_state_value: Tensor,
    reward: Tensor,
    done: Tensor,
    terminated: Tensor | None = None,
    *,
    time_dim: int = -2,
) -> Tensor:
    """TD(lambda) advantage ``G[t] - V(s[t])``, ``G`` from :func:`td_lambda_return_estimate`.

    Args:
        gamma, lmbda: as :func:`td_lambda_return_estimate`.
        state_value: ``V(s)``, ``[*B, T, *F]`` like ``next_state_value``.
        next_state_value, reward, done, terminated, time_dim: as :func:`td_lambda_return_estimate`.

    Returns:
        The advantage, like ``state_value``. Nothing is detached.
    """
    target = td_lambda_return_estimate(
        gamma, lmbda, next_state_value, reward, done, terminated, time_dim=time_dim
    )
    return _advantage("td_lambda_advantage_estimate", target, state_value, next_state_value)


def td1_advantage_estimate(
    gamma: Scalar,
    state_value: Tensor,
    next_state_value: Tensor,
    reward: Tensor,
    done: Tensor,
    terminated: Tensor | None = None,
    *,
    time_dim: int = -2,
) -> Tensor:
    """TD(1) advantage ``G[t] - V(s[t])``, ``G`` from :func:`td1_return_estimate`.

    Args:
        gamma: discount (number, 0-d or per-step tensor; differentiable).
        state_value: ``V(s)``, ``[*B, T, *F]`` like ``next_state_value``.
        next_state_value, reward, done, terminated, time_dim: as :func:`td_lambda_return_estimate`.

    Returns:
        The advantage, like ``state_value``. Nothing is detached.
    """
    target = td1_return_estimate(gamma, next_state_value, reward, done, terminated, time_dim=time_dim)
    return _advantage("td1_advantage_estimate", target, state_value, next_state_value)


def _advantage(name: str, target: Tensor, state_value: Tensor, next_state_value: Tensor) -> Tensor:
    """``target - V(s)``, ``V(s)`` checked like ``V(s')`` (errors reported under ``name``)."""
    _check_signals(name, "state_value", state_value, next_state_value=next_state_value)
    return target - state_value

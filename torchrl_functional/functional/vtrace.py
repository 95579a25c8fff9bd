"""V-trace (IMPALA) targets and advantages, a vectorized tensor kernel.

Same conventions as :mod:`.value` (``[*B, T, *F]`` tensors, time at ``time_dim``, ``done``
cuts the recursion, ``terminated`` the bootstrap), built on its reverse discounted scan.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .value import Scalar, _as_factor, _check_signals, _not, _time_dim, reverse_discounted_scan

__all__ = ["vtrace_advantage_estimate"]


def vtrace_advantage_estimate(
    gamma: Scalar,
    log_pi: Tensor,
    log_mu: Tensor,
    state_value: Tensor,
    next_state_value: Tensor,
    reward: Tensor,
    done: Tensor,
    terminated: Tensor | None = None,
    rho_thresh: Scalar = 1.0,
    c_thresh: Scalar = 1.0,
    *,
    time_dim: int = -2,
) -> tuple[Tensor, Tensor]:
    """V-trace targets and policy-gradient advantages, vectorized over time.

    Espeholt et al. 2018, "IMPALA" (arXiv 1802.01561). With ``rho = exp(log_pi - log_mu)``,
    ``rho_bar = min(rho, rho_thresh)``, ``c = min(rho, c_thresh)``:
    ``vs[t] - V[t] = rho_bar[t] * delta[t] + gamma * (1 - done[t]) * c[t] * (vs[t+1] - V[t+1])``
    and ``advantage[t] = rho_bar[t] * (r[t] + gamma * (1 - terminated[t]) * vs'[t] - V[t])``,
    where ``vs'[t]`` is ``vs[t + 1]`` inside a trajectory and ``V(s'[t])`` at its end.
    Same math as TorchRL's ``vtrace_advantage_estimate``.

    Args:
        gamma: discount (number, 0-d or broadcastable tensor; differentiable).
        log_pi: log-prob of the taken action under the target (current) policy, ``[*B, T, 1]``.
        log_mu: log-prob under the behaviour policy, same shape.
        state_value, next_state_value, reward: ``[*B, T, *F]`` float.
        done, terminated: bool, same shape (``terminated`` defaults to ``done``).
        rho_thresh, c_thresh: truncation levels (numbers or tensors).
        time_dim: the time dimension.

    Returns:
        ``(advantage, vs)``, each like ``state_value``. Nothing is detached: IMPALA
        treats ``vs`` and the advantage as constants, so detach them (or the inputs) for
        the usual actor-critic update.
    """
    name = "vtrace_advantage_estimate"
    _check_signals(name, "state_value", state_value, next_state_value=next_state_value,
                   reward=reward, done=done, terminated=terminated)
    _check_signals(name, "log_pi", log_pi, log_mu=log_mu)
    dim = _time_dim(name, time_dim, state_value)
    gamma = _as_factor(name, "gamma", gamma, state_value)
    if terminated is None:
        terminated = done
    dtype = state_value.dtype
    rho = (log_pi - log_mu).exp()
    clipped_rho = rho.clamp_max(rho_thresh)
    clipped_c = rho.clamp_max(c_thresh)
    not_terminated = gamma * _not(terminated, dtype)
    deltas = clipped_rho * (reward + not_terminated * next_state_value - state_value)
    vs_minus_v = reverse_discounted_scan(gamma * _not(done, dtype) * clipped_c, deltas, dim)
    vs = vs_minus_v + state_value
    steps = vs.shape[dim]
    vs_next = torch.cat([vs.narrow(dim, 1, steps - 1), next_state_value.narrow(dim, steps - 1, 1)], dim)
    vs_next = torch.where(done, next_state_value, vs_next)
    advantage = clipped_rho * (reward + not_terminated * vs_next - state_value)
    return advantage, vs

"""Running a loss module's value estimator the way TorchRL's estimator classes run, with the
numbers from :func:`torchrl_functional.functional.estimators.estimate_advantage`.

The loss module keeps TorchRL's estimator objects (``make_value_estimator`` builds them, so
``loss.value_estimator`` is what users and TorchRL's tests expect); this module reads their
configuration, runs the critic (and V-trace's policy) with the loss module's *current*
parameters, detached as TorchRL does, and calls the functional layer. A value estimator
that is not one of TorchRL's classes (a user's own module) is called as is.
No estimator math here.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import InteractionType, set_composite_lp_aggregate, set_skip_existing
from tensordict.nn.probabilistic import interaction_type
from torch import nn
from torchrl.modules.distributions.utils import sample_and_log_prob
from torchrl.objectives.value import advantages as _adv

from ..functional import composite as C
from ..functional._td import time_dim_of
from ..functional.estimators import EstimatorOptions, estimate_advantage
from ._binding import params_context

#: TorchRL's estimator classes whose numbers we compute (the deprecated aliases included).
KINDS: dict[type, str] = {
    _adv.TD0Estimator: "td0", _adv.TD0Estimate: "td0",
    _adv.TD1Estimator: "td1", _adv.TD1Estimate: "td1",
    _adv.TDLambdaEstimator: "td_lambda", _adv.TDLambdaEstimate: "td_lambda",
    _adv.GAE: "gae", _adv.MultiAgentGAE: "magae", _adv.VTrace: "vtrace",
}


def td_estimator(loss_module, est: nn.Module | None = None, *, average_rewards: bool = False) -> tuple[str, Any, Any]:
    """``loss_module``'s value estimator (``est`` when the caller has read it already) as
    ``(kind, gamma, lmbda)`` when it is one of TorchRL's TD(0)/TD(1)/TD(lambda) estimators
    (subclasses included; ``lmbda`` is ``None`` without one): the estimators the off-policy and
    model-based losses take. Its ``average_rewards`` is refused unless the caller passes it on
    (``average_rewards=True``; group-wise, with a ``group_key``, it is refused always)."""
    name = type(loss_module).__name__
    est = loss_module.value_estimator if est is None else est
    kind = next((k for cls, k in KINDS.items() if k in ("td0", "td1", "td_lambda") and isinstance(est, cls)), None)
    if kind is None:
        raise NotImplementedError(f"{name}: value estimator {type(est).__name__} is not supported")
    if getattr(est, "average_rewards", False) and (not average_rewards or getattr(est, "group_key", None) is not None):
        what = "with a group_key" if average_rewards else "in this loss"
        raise NotImplementedError(f"{name}: value estimators with average_rewards=True {what} are not supported yet")
    return kind, est.gamma, getattr(est, "lmbda", None)


def options_of(est: nn.Module, kind: str) -> EstimatorOptions:
    """The :class:`EstimatorOptions` of one of TorchRL's estimator objects."""
    if kind in ("td0", "td1", "td_lambda"):
        return EstimatorOptions(average_rewards=bool(est.average_rewards),
                                reward_eps=1e-4 if kind == "td_lambda" else 1e-5)
    if kind == "vtrace":
        return EstimatorOptions(average_advantage=bool(est.average_adv), advantage_eps=1e-5, mask_average=False)
    return EstimatorOptions(
        average_advantage=bool(est.average_gae), advantage_eps=1e-4, auto_reset_env=bool(est.auto_reset_env),
        agent_dim=est.agent_dim if kind == "magae" else None,
    )


def _critic_params(loss_module) -> tuple[Any, Any]:
    """The critic parameters for ``V(s)`` and ``V(s')``: the current ones, and the target ones
    when the loss holds them (TorchRL's ``delay_value``)."""
    if not getattr(loss_module, "functional", True):
        return None, None
    params = getattr(loss_module, "critic_network_params", None)
    target = params
    if "target_critic_network_params" in loss_module._modules:
        target = loss_module.target_critic_network_params  # TorchRL's getattr: warns without an updater
    return params, target


def _sanitize_next_nan(td: TensorDictBase, in_keys: list) -> TensorDictBase:
    """NaN next observations (compact collectors) replaced by the root ones, as TorchRL does."""
    copied = False
    for key in in_keys:
        root = td.get(key, None)
        if root is None or not isinstance(root, torch.Tensor) or not root.is_floating_point():
            continue
        next_key = ("next", *key) if isinstance(key, tuple) else ("next", key)
        nxt = td.get(next_key, None)
        if nxt is None or nxt.shape != root.shape:
            continue
        nan = torch.isnan(nxt)
        if not nan.any():
            continue
        if not copied:
            td, copied = td.copy(), True
        td.set(next_key, torch.where(nan, root, nxt))
    return td


def _call(est: nn.Module, net: nn.Module, data: TensorDictBase, value_key: Any) -> torch.Tensor:
    """``net`` on ``data``, in the estimator's chunks (``value_chunk_size``/``num_chunks``)."""
    if est.value_chunk_size is None and est.num_chunks is None:
        return net(data).get(value_key)
    dim = est.value_chunk_dim % data.ndim
    if est.num_chunks is not None:
        n = min(est.num_chunks, data.shape[dim]) if data.shape[dim] else 1
        chunks = data.tensor_split(n, dim=dim) if n > 1 else (data,)
    elif data.shape[dim] > est.value_chunk_size:
        chunks = data.split(est.value_chunk_size, dim=dim)
    else:
        chunks = (data,)
    return torch.cat([net(chunk).get(value_key) for chunk in chunks], dim)


def _values(loss_module, est: nn.Module, td: TensorDictBase, value_key: Any) -> tuple:
    """``V(s)``, ``V(s')`` and the ``shifted`` validity mask (or ``None``), without gradients."""
    net = est.value_network
    if net is None:
        value, next_value = td.get(value_key, None), td.get(("next", value_key), None)
        for key, x in ((value_key, value), (("next", value_key), next_value)):
            if x is None:
                raise ValueError(f"The tensor with key {key} is missing, and no value network was provided.")
        return value, next_value, None
    in_keys = list(net.in_keys)
    data = _sanitize_next_nan(td, in_keys)
    params, target = _critic_params(loss_module)
    if est.shifted:
        from ._shifted import shifted_values

        return shifted_values(loss_module, est, data, params, target, value_key)
    root = data.select(*in_keys, value_key, strict=False)
    nxt = data.get("next").select(*in_keys, value_key, strict=False)
    if "is_init" in root.keys():  # recurrent critics: the next step starts a sequence where the root does
        nxt["is_init"] = nxt["is_init"] | root["is_init"]
    with torch.no_grad():
        with params_context(loss_module, params, net):
            value = _call(est, net, root, value_key)
        with params_context(loss_module, target, net):
            next_value = _call(est, net, nxt, value_key)
    return value, next_value, None


def _policy_log_prob(est: nn.Module, td: TensorDictBase, like: torch.Tensor) -> torch.Tensor:
    """V-trace's ``log pi``: TorchRL's estimator scores its own policy's sample under the
    current interaction type (the mode inside a loss), not the stored action."""
    actor = est.actor_network
    with torch.no_grad():
        dist = actor.get_dist(td.select(*actor.in_keys, strict=False))
        mode = interaction_type() or actor.default_interaction_type
        with set_composite_lp_aggregate(True):
            if mode is InteractionType.RANDOM:
                _, log_pi = sample_and_log_prob(dist, actor.num_samples or torch.Size(),
                                                reparameterize=dist.has_rsample)
            else:
                log_pi = dist.log_prob(actor._dist_sample(dist, interaction_type=mode))
    return log_pi.view_as(like)


def _behaviour_log_prob(td: TensorDictBase, key: Any, like: torch.Tensor) -> torch.Tensor:
    missing = [k for k in (key if isinstance(key, list) else [key]) if td.get(k, None) is None]
    if missing:
        raise KeyError(f"VTrace needs the behaviour policy's log-prob {missing[0]!r}, not found in the input "
                       "(set the loss's sample_log_prob key)")
    if isinstance(key, list):
        heads = td.select(*key)
        log_mu = C.sum_heads("VTrace", dict(heads.items(True, True)), td.batch_size)
    else:
        log_mu = td.get(key)
        if isinstance(log_mu, TensorDictBase):
            log_mu = C.sum_heads("VTrace", dict(log_mu.items(True, True)), td.batch_size)
    return log_mu.view_as(like)


def run_value_estimator(loss_module, td: TensorDictBase) -> None:
    """Write the advantage and value target (and ``V(s)``, ``V(s')``, ``shifted_valid``) into
    ``td`` (the loss module's shallow copy of the input), as TorchRL's estimator does."""
    est = loss_module.value_estimator
    kind = KINDS.get(type(est))
    if kind is None:  # a user's own estimator: its numbers are its own, called as TorchRL calls it
        params = getattr(loss_module, "critic_network_params", None) if getattr(loss_module, "functional", True) else None
        target = getattr(loss_module, "target_critic_network_params", None) if params is not None else None
        est(td, params=None if params is None else params.detach(), target_params=target)
        return
    if td.batch_dims < 1:
        raise RuntimeError(
            f"Expected input tensordict to have at least one dimension, got tensordict.batch_size = {td.batch_size}"
        )
    keys = est.tensor_keys
    skip = set_skip_existing(est.skip_existing) if est.skip_existing is not None else contextlib.nullcontext()
    with skip, torch.set_grad_enabled(est.differentiable):
        value, next_value, valid = _values(loss_module, est, td, keys.value)
        if est.value_network is not None:
            td.set(keys.value, value)
            td.set(("next", keys.value), next_value)
        if valid is not None:
            td.set("shifted_valid", valid)
        valid = td.get("shifted_valid", None)
        options = options_of(est, kind)
        averaging = options.average_rewards or options.average_advantage
        groups = None
        if averaging and est.group_key is not None:
            groups = td.get(est.group_key, None)
            if groups is None:
                raise KeyError(
                    f"group_key {est.group_key!r} is missing from the tensordict; it is needed to standardize within groups."
                )
        extra: dict[str, Any] = {}
        if kind == "vtrace":
            extra = dict(log_pi=_policy_log_prob(est, td, value),
                         log_mu=_behaviour_log_prob(td, keys.sample_log_prob, value),
                         rho_thresh=est.rho_thresh, c_thresh=est.c_thresh)
        reward = td.get(("next", keys.reward))
        gamma, lmbda = est.gamma.to(reward.device), getattr(est, "lmbda", None)
        advantage, target = estimate_advantage(
            kind, options, gamma=gamma, lmbda=None if lmbda is None else lmbda.to(reward.device),
            state_value=value, next_state_value=next_value, reward=reward,
            done=td.get(("next", keys.done)), terminated=td.get(("next", keys.terminated), None),
            time_dim=time_dim_of(td, getattr(est, "time_dim", None), loss=type(est).__name__),
            steps_to_next_obs=td.get(keys.steps_to_next_obs, None),
            truncated=td.get(("next", "truncated"), None) if options.auto_reset_env else None,
            valid=valid, groups=groups, loss=type(est).__name__, **extra,
        )
    td.set(keys.advantage, advantage)
    td.set(keys.value_target, target)

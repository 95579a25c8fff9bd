"""The batch every policy-gradient loss starts from (current policy, importance ratios,
advantage) and the entropy and critic terms they share (PPO family, A2C, REINFORCE)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

import torch
from tensordict import TensorDictBase
from torch import Tensor
from torch import distributions as D

from ..errors import HyperparameterError
from . import composite as C
from ._onpolicy import (
    DistClass,
    Policy,
    advantage_and_target,
    check_critic_options,
    check_samples,
    critic_terms,
    current_policy,
    entropy_terms,
    log_ratio,
    read_behaviour,
    read_params,
    scale_advantage,
)
from ._td import check_reduction, entry, hyperparameter, loss_mask
from ._validation import check_range
from .estimators import estimator_name
from .keys import NestedKey, OnPolicyKeys

Number = float | Tensor


class OnPolicyOptions(TypedDict, total=False):
    """The keyword options every on-policy loss takes (A2C, REINFORCE, the PPO family), declared
    once: the estimate of a missing advantage, the reduction and the masks.

    Attributes:
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` for every ``loss_*`` entry.
        loss_mask_key: ``"auto"`` (default: TorchRL's masks ``("collector", "mask")`` and
            ``"shifted_valid"`` when present), an entry name, or ``None``.
        value_estimator: ``"gae"`` (default; ``"magae"`` for the multi-agent losses), ``"td0"``,
            ``"td1"``, ``"td_lambda"``, ``"vtrace"`` or a ``ValueEstimators`` member, used when the
            advantage is absent.
        gamma, lmbda: discount and trace decay of that estimate (defaults ``0.99``, ``0.95``):
            numbers, 0-d or per-step tensors (differentiable); entries of the input override them.
        time_dim: batch dim of the input holding time (default ``None``: its ``"time"``-named
            dim, else its last).
        rho_thresh, c_thresh: V-trace truncation levels (default ``1.0``; V-trace scores the
            stored action with the current policy, detached, against the behaviour log-prob).
    """

    reduction: Literal["mean", "sum", "none"]
    loss_mask_key: NestedKey | None
    value_estimator: Any
    gamma: Number
    lmbda: Number
    time_dim: int | None
    rho_thresh: Number
    c_thresh: Number


class A2COptions(OnPolicyOptions, total=False):
    """:class:`OnPolicyOptions` and the entropy and critic terms of A2C and the PPO family.

    Attributes:
        entropy_bonus: add ``loss_entropy = -entropy_coeff * H`` (default ``True``).
        samples_mc_entropy: samples of the Monte-Carlo entropy when it has no closed form (``1``).
        entropy_coeff: number or tensor (differentiable; default ``0.01``); for a composite
            policy of the PPO family also a mapping from each head's entropy key (as in
            ``"composite_entropy"``) to its coefficient.
        critic_coeff: number or tensor (default ``1.0``); ``None`` or ``0`` drops the critic term.
        loss_critic_type: ``"smooth_l1"`` (default), ``"l2"`` or ``"l1"``.
        clip_value: value clipping radius (default ``None``: no clipping).
        advantage_scale: divide the advantage by this (a ``ValueNorm``'s ``scale()``), or ``None``.
        diagnostics: compute the logging-only outputs (default ``True``); ``False`` returns the
            ``loss_*`` entries (and ``beta``) only, which saves a few small kernels per call.
        generator: :class:`torch.Generator` for Monte-Carlo estimates; ``None`` (default) uses
            the global RNG exactly as TorchRL does.
    """

    entropy_bonus: bool
    samples_mc_entropy: int
    entropy_coeff: Number | Mapping[NestedKey, Number]
    critic_coeff: Number | None
    loss_critic_type: str
    clip_value: Number | bool | None
    advantage_scale: Number | None
    diagnostics: bool
    generator: torch.Generator | None


class PPOOptions(A2COptions, total=False):
    """:class:`A2COptions` and the options of the PPO family's trust region.

    Attributes:
        normalize_advantage: standardise the advantage over the batch (default ``False``;
            ``True`` for the multi-agent losses).
        normalize_advantage_exclude_dims: dims kept independent in the standardisation (default
            ``()``; ``(-2,)``, the agent dim, for the multi-agent losses).
        max_importance_ratio: cap on ``pi / pi_old`` (gradient-free rescaling), or ``None``.
        log_explained_variance: add ``explained_variance`` when the critic term is on (``True``).
    """

    normalize_advantage: bool
    normalize_advantage_exclude_dims: tuple[int, ...]
    max_importance_ratio: Number | None
    log_explained_variance: bool


ON_POLICY_DEFAULTS: dict[str, Any] = {
    "reduction": "mean", "loss_mask_key": "auto", "value_estimator": "gae", "gamma": 0.99, "lmbda": 0.95,
    "time_dim": None, "rho_thresh": 1.0, "c_thresh": 1.0,
}
A2C_DEFAULTS: dict[str, Any] = {
    **ON_POLICY_DEFAULTS, "entropy_bonus": True, "samples_mc_entropy": 1, "entropy_coeff": 0.01,
    "critic_coeff": 1.0, "loss_critic_type": "smooth_l1", "clip_value": None, "advantage_scale": None,
    "diagnostics": True, "generator": None,
}
PPO_DEFAULTS: dict[str, Any] = {
    **A2C_DEFAULTS, "normalize_advantage": False, "normalize_advantage_exclude_dims": (),
    "max_importance_ratio": None, "log_explained_variance": True,
}


@dataclass
class Batch:
    """What every policy-gradient loss needs, read and checked once."""

    keys: OnPolicyKeys
    policy: Policy
    batch_shape: torch.Size
    log_weight: Tensor | None  # [*B, 1]: log pi - log pi_prox (pi_prox: the behaviour policy by default)
    log_is_weight: Tensor | None  # [*B, 1]: gradient-free log(pi_prox / pi_behav), capped ratio
    proximal: Policy | None  # the proximal policy (decoupled PPO / TorchRL's delay_actor), constants
    advantage: Tensor  # [*B, F]
    value_target: Tensor | None  # [*B, F] if estimated here
    mask: Tensor | None

    @property
    def dist(self) -> D.Distribution | None:
        return self.policy.dist


def _is_mapping(x: Any) -> bool:
    return not isinstance(x, (int, float, Tensor)) and isinstance(x, Mapping)


def _sum_behaviour(loss: str, policy: Policy, prev: Any) -> Tensor:
    if isinstance(prev, Tensor):
        return prev
    return C.sum_heads(loss, dict(prev.items(True, True)), policy.batch_shape)


def prepare(
    name: str,
    td: TensorDictBase,
    dist_class: DistClass | None,
    keys_cls: type[OnPolicyKeys],
    keys: OnPolicyKeys,
    options: Mapping[str, Any],
    *,
    importance_weighted: bool,
) -> Batch:
    """Read the current policy, the behaviour log-prob (``importance_weighted``), the advantage
    (given, or estimated with its target) and the masks of ``td``, as the loss's resolved
    ``options`` (:class:`OnPolicyOptions`, and those of :class:`PPOOptions` it has) say."""
    if not isinstance(td, TensorDictBase):
        raise TypeError(f"{name}: expected a TensorDict, got {type(td).__name__}")
    prev = read_behaviour(name, td, keys) if importance_weighted else None
    policy = current_policy(name, td, keys, dist_class, prev)
    log_weight = log_is_weight = proximal = None
    if importance_weighted:
        log_weight = log_ratio(name, policy, prev, keys)
        prox_key = getattr(keys, "proximal_actor_output", None)
        if prox_key is not None and read_params(name, td, prox_key) is not None:
            proximal = current_policy(name, td.detach(), keys, dist_class, prev, params_key=prox_key)
            log_is_weight = log_ratio(name, proximal, prev, keys).unsqueeze(-1)
            log_weight = log_ratio(name, policy, proximal, keys)
        log_weight = log_weight.unsqueeze(-1)
    estimator = {k: options[k] for k in ("value_estimator", "gamma", "lmbda", "time_dim", "rho_thresh", "c_thresh")}
    if entry(td, keys.advantage) is None and estimator_name(options["value_estimator"], name) == "vtrace":
        if prev is None:
            prev = read_behaviour(name, td, keys)
        estimator.update(log_pi=policy.log_prob, log_mu=_sum_behaviour(name, policy, prev))
    advantage, value_target = advantage_and_target(name, td, keys, policy.batch_shape, **estimator)
    advantage = scale_advantage(
        name, advantage, td, normalize_advantage=options.get("normalize_advantage", False),
        normalize_advantage_exclude_dims=options.get("normalize_advantage_exclude_dims", ()),
        advantage_scale=options.get("advantage_scale"),
    )
    max_importance_ratio = options.get("max_importance_ratio")
    if max_importance_ratio is not None:
        check_range(name, "max_importance_ratio", max_importance_ratio, 0.0, low_open=True)
        log_max = torch.log(torch.as_tensor(max_importance_ratio, dtype=log_weight.dtype, device=log_weight.device))
        # caps pi / pi_behav by lifting the (constant) behaviour log-prob, as TorchRL does
        cap = log_max - log_weight.detach()
        log_is_weight = torch.clamp_max(cap, 0.0) if log_is_weight is None else torch.minimum(log_is_weight, cap)
    return Batch(keys, policy, policy.batch_shape, log_weight, log_is_weight, proximal, advantage, value_target,
                 loss_mask(name, td, options["loss_mask_key"]))


def check_common(
    name: str, reduction: str, entropy_bonus: bool, samples_mc_entropy: int, entropy_coeff: Any,
    critic_coeff: Any, loss_critic_type: str, clip_value: Any,
) -> Any:
    """Validate the options shared by the on-policy losses; returns ``critic_coeff`` (``None``
    when the critic term is off: TorchRL drops it for a zero coefficient)."""
    check_reduction(name, reduction)
    if entropy_bonus:
        check_samples(name, "samples_mc_entropy", samples_mc_entropy)
        if _is_mapping(entropy_coeff):
            for head, coeff in entropy_coeff.items():
                check_range(name, f"entropy_coeff[{head!r}]", coeff, 0.0)
    if isinstance(critic_coeff, (int, float)) and not isinstance(critic_coeff, bool) and critic_coeff == 0:
        critic_coeff = None
    check_critic_options(name, loss_critic_type, clip_value, critic_coeff)
    return critic_coeff


def entropy_outputs(
    name: str,
    td: TensorDictBase,
    batch: Batch,
    *,
    samples_mc_entropy: int,
    entropy_coeff: Any,
    generator: torch.Generator | None,
    diagnostics: bool,
    joint_mc: bool = False,
) -> dict[str, Any]:
    """``loss_entropy`` and, with ``diagnostics``, ``entropy`` (and per-head ``composite_entropy``)."""
    ent, heads = entropy_terms(name, td, batch.keys, batch.policy, samples_mc_entropy=samples_mc_entropy,
                               generator=generator, joint_mc=joint_mc)
    out: dict[str, Any] = {}
    if diagnostics:
        if heads is not None:
            out["composite_entropy"] = heads.detach()
        out["entropy"] = ent.detach().mean()
    if not _is_mapping(entropy_coeff):
        entropy_coeff = hyperparameter(name, td, "entropy_coeff", entropy_coeff, batch.batch_shape)
    out["loss_entropy"] = C.entropy_loss(name, ent, heads, entropy_coeff)
    return out


def critic_outputs(
    name: str,
    td: TensorDictBase,
    batch: Batch,
    *,
    critic_coeff: Any,
    loss_critic_type: str,
    clip_value: Any,
    log_explained_variance: bool,
    diagnostics: bool,
    output: str = "loss_critic",
    normalize: Any = None,
) -> dict[str, Tensor]:
    """The critic loss (times ``critic_coeff`` unless ``None``) and its diagnostics
    (``normalize``: see :func:`._onpolicy.critic_terms`)."""
    per_sample, value_clip_fraction, ev = critic_terms(
        name, td, batch.keys, batch.batch_shape, batch.value_target,
        loss_critic_type=loss_critic_type, clip_value=clip_value,
        log_explained_variance=log_explained_variance and diagnostics, normalize=normalize,
    )
    if critic_coeff is not None:
        per_sample = hyperparameter(name, td, "critic_coeff", critic_coeff, batch.batch_shape) * per_sample
    out = {output: per_sample}
    if value_clip_fraction is not None and diagnostics:
        out["value_clip_fraction"] = value_clip_fraction
    if ev is not None:
        out["explained_variance"] = ev
    return out


def resolve_clip_value(name: str, td: TensorDictBase, clip_value: Any, clip_epsilon: Any, batch_shape: torch.Size) -> Any:
    """``clip_value=True`` clips the value with ``clip_epsilon``, per-sample entry override included."""
    if not isinstance(clip_value, bool):
        return clip_value
    if not clip_value:
        return None
    if isinstance(clip_epsilon, (tuple, list)):
        raise HyperparameterError(name, "clip_value", "clip_value=True needs a symmetric clip_epsilon; pass a number")
    return hyperparameter(name, td, "clip_epsilon", clip_epsilon, batch_shape)

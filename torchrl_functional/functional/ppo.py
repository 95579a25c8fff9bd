"""PPO objectives as pure functions of a TensorDict of precomputed network outputs.

Schulman et al. 2017, "Proximal Policy Optimization Algorithms" (arXiv 1707.06347).
Same outputs and numbers as TorchRL 0.14's ``PPOLoss``, ``ClipPPOLoss`` and
``KLPENPPOLoss``; see :class:`~torchrl_functional.functional.keys.PPOKeys` for the
entries read. Nothing is written into the input and no state is kept: the adapted
KL coefficient of :func:`klpen_ppo_loss` is returned as the ``"beta"`` entry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor
from torch import distributions as D

from ..errors import EntryShapeError, HyperparameterError
from ._onpolicy import (
    advantage_and_target,
    behaviour_log_prob,
    check_critic_options,
    check_samples,
    critic_terms,
    current_log_prob,
    entropy_term,
    standardize_advantage,
)
from ._td import (
    check_finite_leaves,
    check_reduction,
    finish_losses,
    hyperparameter,
    loss_mask,
    missing,
    require,
)
from ._validation import check_range
from .distributions import build_distribution, kl_divergence
from .keys import NestedKey, PPOKeys, resolve_keys
from .policy_gradient import (
    adapt_kl_beta,
    clipped_surrogate_loss,
    effective_sample_size,
    importance_weighted_loss,
    kl_penalty_loss,
)

__all__ = ["ppo_loss", "clip_ppo_loss", "klpen_ppo_loss"]

Number = float | Tensor
DistClass = Callable[..., D.Distribution]


@dataclass
class _PPOBatch:
    """What every PPO variant needs, read and checked once."""

    keys: PPOKeys
    batch_shape: torch.Size
    log_weight: Tensor  # [*B, 1], log pi - log pi_old
    log_is_weight: Tensor | None  # [*B, 1], gradient-free ratio cap
    dist: D.Distribution | None
    advantage: Tensor  # [*B, F]
    value_target: Tensor | None  # [*B, F] if estimated here
    mask: Tensor | None


def _prepare(
    name: str,
    td: TensorDictBase,
    dist_class: DistClass | None,
    *,
    keys: Any,
    normalize_advantage: bool,
    normalize_advantage_exclude_dims: tuple[int, ...],
    max_importance_ratio: Number | None,
    loss_mask_key: Any,
    value_estimator: str,
    gamma: Number,
    lmbda: Number,
    time_dim: int | None,
) -> _PPOBatch:
    if not isinstance(td, TensorDictBase):
        raise TypeError(f"{name}: expected a TensorDict, got {type(td).__name__}")
    keys = resolve_keys(keys, PPOKeys, name)
    log_prob, dist = current_log_prob(name, td, keys, dist_class)
    batch_shape = log_prob.shape
    prev_log_prob = behaviour_log_prob(name, td, keys, batch_shape)
    advantage, value_target = advantage_and_target(
        name, td, keys, batch_shape,
        value_estimator=value_estimator, gamma=gamma, lmbda=lmbda, time_dim=time_dim,
    )
    if normalize_advantage and advantage.numel() > 1:
        advantage = standardize_advantage(
            advantage, tuple(normalize_advantage_exclude_dims), td.get("shifted_valid", None)
        )
    log_weight = (log_prob - prev_log_prob).unsqueeze(-1)
    log_is_weight = None
    if max_importance_ratio is not None:
        check_range(name, "max_importance_ratio", max_importance_ratio, 0.0, low_open=True)
        log_max = torch.log(torch.as_tensor(max_importance_ratio, dtype=log_weight.dtype))
        # caps pi / pi_old by lifting the (constant) behaviour log-prob, as TorchRL does
        log_is_weight = torch.clamp_max(log_max - log_weight.detach(), 0.0)
    return _PPOBatch(
        keys=keys,
        batch_shape=batch_shape,
        log_weight=log_weight,
        log_is_weight=log_is_weight,
        dist=dist,
        advantage=advantage,
        value_target=value_target,
        mask=loss_mask(name, td, loss_mask_key),
    )


def _common_terms(
    name: str,
    td: TensorDictBase,
    batch: _PPOBatch,
    out: dict[str, Tensor],
    *,
    entropy_bonus: bool,
    samples_mc_entropy: int,
    entropy_coeff: Number,
    critic_coeff: Number | None,
    loss_critic_type: str,
    clip_value: Number | None,
    log_explained_variance: bool,
    generator: torch.Generator | None,
    diagnostics: bool,
) -> None:
    """Entropy and critic terms (identical across PPO variants), added to ``out``."""
    if diagnostics:
        out["kl_approx"] = (-batch.log_weight).detach().mean()
    if entropy_bonus:
        ent = entropy_term(name, td, batch.keys, batch.dist, batch.batch_shape,
                           samples_mc_entropy=samples_mc_entropy, generator=generator)
        if diagnostics:
            out["entropy"] = ent.detach().mean()
        coeff = hyperparameter(name, td, "entropy_coeff", entropy_coeff, batch.batch_shape)
        out["loss_entropy"] = -coeff * ent
    if critic_coeff is not None:
        per_sample, value_clip_fraction, ev = critic_terms(
            name, td, batch.keys, batch.batch_shape, batch.value_target,
            loss_critic_type=loss_critic_type, clip_value=clip_value,
            log_explained_variance=log_explained_variance and diagnostics,
        )
        coeff = hyperparameter(name, td, "critic_coeff", critic_coeff, batch.batch_shape)
        out["loss_critic"] = coeff * per_sample
        if value_clip_fraction is not None and diagnostics:
            out["value_clip_fraction"] = value_clip_fraction
        if ev is not None:
            out["explained_variance"] = ev


def _check_common(name: str, reduction: str, entropy_bonus: bool, samples_mc_entropy: int,
                  critic_coeff: Any, loss_critic_type: str, clip_value: Any) -> Any:
    check_reduction(name, reduction)
    if entropy_bonus:
        check_samples(name, "samples_mc_entropy", samples_mc_entropy)
    if isinstance(critic_coeff, (int, float)) and not isinstance(critic_coeff, bool) and critic_coeff == 0:
        critic_coeff = None  # TorchRL: a zero coefficient disables the critic term
    check_critic_options(name, loss_critic_type, clip_value, critic_coeff)
    return critic_coeff


_DOC_COMMON = """
    Args:
        td: input TensorDict (not modified). Entries (names from ``keys``, shapes with
            ``B`` the batch shape of the current log-prob):

            - ``"actor_output"``: sub-TensorDict of keyword arguments for ``dist_class`` from
              the *current* policy (e.g. ``loc``/``scale`` ``[*B, A]`` or ``logits`` ``[*B, N]``),
              or ``"log_prob"`` ``[*B]`` (then an ``"entropy"`` ``[*B]`` is needed for the bonus);
            - ``"action"`` (constant) and ``"action_log_prob"`` ``[*B]`` (behaviour, constant);
            - ``"advantage"`` ``[*B, 1]`` (used as given, graph kept), or, to estimate it here,
              ``("next", "reward")``, ``("next", "done")``, ``("next", "terminated")`` and
              ``("next", "state_value")`` ``[*B, 1]`` (values are detached; ``gamma``/``lmbda`` are not);
            - critic: ``"value_target"`` ``[*B, 1]`` (or estimated with the advantage),
              ``"state_value"`` ``[*B, 1]`` (current critic, with gradients), and
              ``"old_state_value"`` when ``clip_value`` is set;
            - optional masks ``("collector", "mask")``/``"shifted_valid"`` ``[*B]`` and
              hyperparameter overrides (``"gamma"``, ``"lmbda"``, ``"entropy_coeff"``,
              ``"critic_coeff"`` ...) of shape ``[*B]`` or ``[*B, 1]``.
        dist_class: distribution class (or callable) built as ``dist_class(**td["actor_output"])``.
        entropy_bonus: add ``loss_entropy = -entropy_coeff * H``.
        samples_mc_entropy: samples for the Monte-Carlo entropy when it has no closed form.
        entropy_coeff: number or tensor (differentiable).
        critic_coeff: number or tensor; ``None`` or ``0`` drops the critic term.
        loss_critic_type: ``"smooth_l1"``, ``"l2"`` or ``"l1"``.
        clip_value: PPO value clipping radius, or ``None``.
        normalize_advantage: standardise the advantage over the batch.
        normalize_advantage_exclude_dims: dims kept independent in the standardisation.
        max_importance_ratio: cap on ``pi / pi_old`` (gradient-free rescaling), or ``None``.
        log_explained_variance: add ``explained_variance`` when the critic term is on.
        diagnostics: compute the logging-only outputs (``kl_approx``, ``entropy``,
            ``clip_fraction``, ``ESS``, ``max_ratio``, ``mean_ratio``, ``value_clip_fraction``,
            ``explained_variance``, ``kl``). ``False`` returns the ``loss_*`` entries (and
            ``beta``) only, which saves a few small kernels per call.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` for every ``loss_*`` entry.
        loss_mask_key: ``"auto"`` (TorchRL's masks), an entry name, or ``None``.
        value_estimator: ``"gae"``, ``"td0"``, ``"td1"`` or ``"td_lambda"`` when the advantage is absent.
        gamma, lmbda: discount and trace decay for that estimate: numbers, 0-d or per-step tensors.
        time_dim: batch dim holding time for that estimate (default: ``"time"``-named or last).
        keys: :class:`~torchrl_functional.functional.keys.PPOKeys` or a mapping of renamed entries.
        generator: :class:`torch.Generator` for Monte-Carlo estimates; ``None`` uses the global
            RNG exactly as TorchRL does.
"""


def ppo_loss(
    td: TensorDictBase,
    dist_class: DistClass | None = None,
    *,
    entropy_bonus: bool = True,
    samples_mc_entropy: int = 1,
    entropy_coeff: Number = 0.01,
    critic_coeff: Number | None = 1.0,
    loss_critic_type: str = "smooth_l1",
    clip_value: Number | None = None,
    normalize_advantage: bool = False,
    normalize_advantage_exclude_dims: tuple[int, ...] = (),
    max_importance_ratio: Number | None = None,
    log_explained_variance: bool = True,
    diagnostics: bool = True,
    reduction: Literal["mean", "sum", "none"] = "mean",
    loss_mask_key: NestedKey | None = "auto",
    value_estimator: str = "gae",
    gamma: Number = 0.99,
    lmbda: Number = 0.95,
    time_dim: int | None = None,
    keys: PPOKeys | Mapping[str, NestedKey] | None = None,
    generator: torch.Generator | None = None,
) -> TensorDict:
    """Unclipped PPO (importance-weighted policy gradient), as TorchRL's ``PPOLoss``.

    ``loss_objective = -mean(exp(log pi - log pi_old) * A)``.
    """
    name = "ppo_loss"
    critic_coeff = _check_common(name, reduction, entropy_bonus, samples_mc_entropy,
                                 critic_coeff, loss_critic_type, clip_value)
    batch = _prepare(
        name, td, dist_class, keys=keys, normalize_advantage=normalize_advantage,
        normalize_advantage_exclude_dims=normalize_advantage_exclude_dims,
        max_importance_ratio=max_importance_ratio, loss_mask_key=loss_mask_key,
        value_estimator=value_estimator, gamma=gamma, lmbda=lmbda, time_dim=time_dim,
    )
    log_weight = batch.log_weight
    if batch.log_is_weight is not None:
        log_weight = log_weight + batch.log_is_weight
    out = {"loss_objective": importance_weighted_loss(log_weight, batch.advantage)}
    _common_terms(
        name, td, batch, out, entropy_bonus=entropy_bonus, samples_mc_entropy=samples_mc_entropy,
        entropy_coeff=entropy_coeff, critic_coeff=critic_coeff, loss_critic_type=loss_critic_type,
        clip_value=clip_value, log_explained_variance=log_explained_variance, generator=generator,
        diagnostics=diagnostics,
    )
    return finish_losses(name, out, reduction, batch.mask)


def clip_ppo_loss(
    td: TensorDictBase,
    dist_class: DistClass | None = None,
    *,
    clip_epsilon: Number | tuple[float, float] = 0.2,
    entropy_bonus: bool = True,
    samples_mc_entropy: int = 1,
    entropy_coeff: Number = 0.01,
    critic_coeff: Number | None = 1.0,
    loss_critic_type: str = "smooth_l1",
    clip_value: Number | bool | None = None,
    normalize_advantage: bool = False,
    normalize_advantage_exclude_dims: tuple[int, ...] = (),
    max_importance_ratio: Number | None = None,
    log_explained_variance: bool = True,
    diagnostics: bool = True,
    reduction: Literal["mean", "sum", "none"] = "mean",
    loss_mask_key: NestedKey | None = "auto",
    value_estimator: str = "gae",
    gamma: Number = 0.99,
    lmbda: Number = 0.95,
    time_dim: int | None = None,
    keys: PPOKeys | Mapping[str, NestedKey] | None = None,
    generator: torch.Generator | None = None,
) -> TensorDict:
    """Clipped-surrogate PPO, as TorchRL's ``ClipPPOLoss``.

    ``loss_objective = -mean(min(r A, clip(r, 1 - eps, 1 + eps) A))`` with ``r = pi / pi_old``.
    ``clip_epsilon`` may be a number, a tensor (differentiable, per-sample ``[*B, 1]`` allowed)
    or a pair ``(eps_low, eps_high)``; ``clip_value=True`` uses ``clip_epsilon`` as value-clip radius.

    Args:
        clip_epsilon: ``eps``: a number, a tensor (0-d or per-sample ``[*B, 1]``, differentiable)
            or ``(eps_low, eps_high)`` for the range ``[1 - eps_low, 1 + eps_high]``.

    Returns:
        TensorDict with ``loss_objective``, ``clip_fraction``, ``kl_approx``, ``ESS``,
        ``max_ratio``, ``mean_ratio`` and, as enabled, ``entropy``, ``loss_entropy``,
        ``loss_critic``, ``value_clip_fraction``, ``explained_variance``.
    """
    name = "clip_ppo_loss"
    if isinstance(clip_epsilon, (tuple, list)):
        if len(clip_epsilon) != 2:
            raise HyperparameterError(name, "clip_epsilon", f"a tuple must be (eps_low, eps_high), got {clip_epsilon!r}")
        check_range(name, "clip_epsilon", clip_epsilon[0], 0.0, 1.0, high_open=True)
        check_range(name, "clip_epsilon", clip_epsilon[1], 0.0)
        if clip_value is True:
            raise HyperparameterError(name, "clip_value", "clip_value=True needs a symmetric clip_epsilon; pass a number")
    else:
        check_range(name, "clip_epsilon", clip_epsilon, 0.0, 1.0)
    if isinstance(clip_value, bool):
        clip_value = clip_epsilon if clip_value else None
    critic_coeff = _check_common(name, reduction, entropy_bonus, samples_mc_entropy,
                                 critic_coeff, loss_critic_type, clip_value)
    batch = _prepare(
        name, td, dist_class, keys=keys, normalize_advantage=normalize_advantage,
        normalize_advantage_exclude_dims=normalize_advantage_exclude_dims,
        max_importance_ratio=max_importance_ratio, loss_mask_key=loss_mask_key,
        value_estimator=value_estimator, gamma=gamma, lmbda=lmbda, time_dim=time_dim,
    )
    if not isinstance(clip_epsilon, (tuple, list)):
        clip_epsilon = hyperparameter(name, td, "clip_epsilon", clip_epsilon, batch.batch_shape)
    loss_objective, clipped = clipped_surrogate_loss(
        batch.log_weight, batch.advantage, clip_epsilon, batch.log_is_weight
    )
    behaviour_log_weight = batch.log_weight
    if batch.log_is_weight is not None:
        behaviour_log_weight = behaviour_log_weight + batch.log_is_weight
    out = {"loss_objective": loss_objective}
    if diagnostics:
        out["clip_fraction"] = clipped.to(batch.log_weight.dtype).mean()
    _common_terms(
        name, td, batch, out, entropy_bonus=entropy_bonus, samples_mc_entropy=samples_mc_entropy,
        entropy_coeff=entropy_coeff, critic_coeff=critic_coeff, loss_critic_type=loss_critic_type,
        clip_value=clip_value, log_explained_variance=log_explained_variance, generator=generator,
        diagnostics=diagnostics,
    )
    if diagnostics:
        out["ESS"] = effective_sample_size(behaviour_log_weight)
        with torch.no_grad():
            ratio = behaviour_log_weight.exp()
            out["max_ratio"] = ratio.max()
            out["mean_ratio"] = ratio.mean()
    return finish_losses(name, out, reduction, batch.mask)


def klpen_ppo_loss(
    td: TensorDictBase,
    dist_class: DistClass | None = None,
    *,
    beta: Number = 1.0,
    dtarg: Number = 0.01,
    increment: Number = 2.0,
    decrement: Number = 0.5,
    samples_mc_kl: int = 1,
    entropy_bonus: bool = True,
    samples_mc_entropy: int = 1,
    entropy_coeff: Number = 0.01,
    critic_coeff: Number | None = 1.0,
    loss_critic_type: str = "smooth_l1",
    clip_value: Number | None = None,
    normalize_advantage: bool = False,
    normalize_advantage_exclude_dims: tuple[int, ...] = (),
    max_importance_ratio: Number | None = None,
    log_explained_variance: bool = True,
    diagnostics: bool = True,
    reduction: Literal["mean", "sum", "none"] = "mean",
    loss_mask_key: NestedKey | None = "auto",
    value_estimator: str = "gae",
    gamma: Number = 0.99,
    lmbda: Number = 0.95,
    time_dim: int | None = None,
    keys: PPOKeys | Mapping[str, NestedKey] | None = None,
    generator: torch.Generator | None = None,
) -> TensorDict:
    """KL-penalised PPO, as TorchRL's ``KLPENPPOLoss``, without hidden state.

    ``loss_objective = -mean(r A - beta KL(pi_old || pi))``. ``KL`` is analytic when
    registered for the pair, else a ``samples_mc_kl``-sample estimate drawn from
    ``pi_old`` (rebuilt from ``"old_actor_output"``, the behaviour policy's parameters).
    ``beta`` is an input; the adapted coefficient (times ``increment`` if
    ``mean KL > 1.5 dtarg``, times ``decrement`` if ``< dtarg / 1.5``) is returned as
    ``"beta"`` for the caller to feed back. ``"kl"`` is the detached per-sample KL ``[*B, 1]``.

    Args:
        beta: KL coefficient, number or tensor (differentiable); a ``"beta"`` entry ``[*B]`` or
            ``[*B, 1]`` of ``td`` overrides it per sample.
        dtarg: target KL of the adaptation.
        increment: factor applied to ``beta`` when the mean KL is above ``1.5 * dtarg``.
        decrement: factor applied to ``beta`` when the mean KL is below ``dtarg / 1.5``.
        samples_mc_kl: samples of the Monte-Carlo KL when no analytic KL is registered.
    """
    name = "klpen_ppo_loss"
    check_range(name, "beta", beta, 0.0)
    check_range(name, "dtarg", dtarg, 0.0, low_open=True)
    check_range(name, "increment", increment, 1.0)
    check_range(name, "decrement", decrement, 0.0, 1.0)
    check_samples(name, "samples_mc_kl", samples_mc_kl)
    critic_coeff = _check_common(name, reduction, entropy_bonus, samples_mc_entropy,
                                 critic_coeff, loss_critic_type, clip_value)
    batch = _prepare(
        name, td, dist_class, keys=keys, normalize_advantage=normalize_advantage,
        normalize_advantage_exclude_dims=normalize_advantage_exclude_dims,
        max_importance_ratio=max_importance_ratio, loss_mask_key=loss_mask_key,
        value_estimator=value_estimator, gamma=gamma, lmbda=lmbda, time_dim=time_dim,
    )
    if batch.dist is None:
        raise missing(name, batch.keys.actor_output,
                      "the KL penalty needs the current policy's distribution parameters and dist_class")
    old_params = require(name, td, batch.keys.old_actor_output,
                         "the behaviour policy's distribution parameters, needed for KL(pi_old || pi)")
    check_finite_leaves(name, batch.keys.old_actor_output, old_params)
    old_dist = build_distribution(name, batch.keys.old_actor_output, dist_class, old_params.detach())
    if old_dist.batch_shape != batch.dist.batch_shape or old_dist.event_shape != batch.dist.event_shape:
        raise EntryShapeError(
            name, batch.keys.old_actor_output,
            f"builds a distribution with batch shape {tuple(old_dist.batch_shape)} and event shape "
            f"{tuple(old_dist.event_shape)}, but the current policy from {batch.keys.actor_output!r} has "
            f"{tuple(batch.dist.batch_shape)} and {tuple(batch.dist.event_shape)}",
        )
    kl = kl_divergence(old_dist, batch.dist, samples_mc_kl, generator=generator, loss=name).unsqueeze(-1)
    beta_in = hyperparameter(name, td, "beta", beta, batch.batch_shape)
    log_weight = batch.log_weight
    if batch.log_is_weight is not None:
        log_weight = log_weight + batch.log_is_weight
    out = {"loss_objective": kl_penalty_loss(log_weight, batch.advantage, kl, beta_in)}
    if diagnostics:
        out["kl"] = kl.detach()
    _common_terms(
        name, td, batch, out, entropy_bonus=entropy_bonus, samples_mc_entropy=samples_mc_entropy,
        entropy_coeff=entropy_coeff, critic_coeff=critic_coeff, loss_critic_type=loss_critic_type,
        clip_value=clip_value, log_explained_variance=log_explained_variance, generator=generator,
        diagnostics=diagnostics,
    )
    out["beta"] = adapt_kl_beta(beta_in, kl.mean(), dtarg, increment, decrement)
    return finish_losses(name, out, reduction, batch.mask)


for _f in (ppo_loss, clip_ppo_loss, klpen_ppo_loss):
    _f.__doc__ = (_f.__doc__ or "") + _DOC_COMMON
del _f

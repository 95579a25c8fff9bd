"""PPO objectives as pure functions of a TensorDict of precomputed network outputs.

Schulman et al. 2017, "Proximal Policy Optimization Algorithms" (arXiv 1707.06347).
Same outputs and numbers as TorchRL 0.14's ``PPOLoss``, ``ClipPPOLoss`` and
``KLPENPPOLoss``, composite (multi-head) policies included; see
:class:`~torchrl_functional.functional.keys.PPOKeys` for the entries read. Nothing is
written into the input and no state is kept: the adapted KL coefficient of
:func:`klpen_ppo_loss` is returned as the ``"beta"`` entry.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, Unpack

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor
from torch import distributions as D

from ..errors import EntryShapeError, HyperparameterError
from . import composite as C
from ._onpolicy import check_samples, read_params, read_value_target
from ._td import check_finite_leaves, finish_losses, hyperparameter, missing
from ._terms import PPO_DEFAULTS, PPOOptions, check_common, critic_outputs, entropy_outputs, prepare, resolve_clip_value
from ._validation import check_range, keyword_options
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

def _prepare(name: str, td: TensorDictBase, dist_class: DistClass | None, keys: Any, kw: dict):
    return prepare(name, td, dist_class, PPOKeys, resolve_keys(keys, PPOKeys, name), kw, importance_weighted=True)


def _terms(name: str, td: TensorDictBase, batch, kw: dict, critic_coeff: Any, clip_value: Any) -> dict:
    """Entropy and critic outputs, identical across the PPO variants."""
    out = {}
    if kw["entropy_bonus"]:
        out.update(entropy_outputs(
            name, td, batch, samples_mc_entropy=kw["samples_mc_entropy"], entropy_coeff=kw["entropy_coeff"],
            generator=kw["generator"], diagnostics=kw["diagnostics"],
        ))
    if critic_coeff is not None:
        normalize = None
        value_norm = kw.get("value_norm")
        if value_norm is not None:  # MAPPO: update the statistics with the target, then normalise
            target = read_value_target(name, td, batch.keys, batch.batch_shape, batch.value_target)
            stats = value_norm.update(kw["value_norm_stats"], target)
            out["value_norm"] = stats
            normalize = functools.partial(value_norm.normalize, stats)
        out.update(critic_outputs(
            name, td, batch, critic_coeff=critic_coeff, loss_critic_type=kw["loss_critic_type"],
            clip_value=clip_value, log_explained_variance=kw["log_explained_variance"],
            diagnostics=kw["diagnostics"], normalize=normalize,
        ))
    return out


def ppo_loss(
    td: TensorDictBase,
    dist_class: DistClass | None = None,
    *,
    keys: PPOKeys | Mapping[str, NestedKey] | None = None,
    **options: Unpack[PPOOptions],
) -> TensorDict:
    """Unclipped PPO (importance-weighted policy gradient), as TorchRL's ``PPOLoss``.

    ``loss_objective = -mean(exp(log pi - log pi_old) * A)`` with log-probs ``[*B]`` and the
    advantage ``A`` ``[*B, 1]``; the entries and their shapes are those of :func:`clip_ppo_loss`.

    Args:
        td, dist_class, keys: as :func:`clip_ppo_loss`.
        **options: as :func:`clip_ppo_loss`.

    Returns:
        TensorDict with ``loss_objective``, ``kl_approx`` and, as enabled, ``entropy``,
        ``composite_entropy``, ``loss_entropy``, ``loss_critic``, ``value_clip_fraction``,
        ``explained_variance``.
    """
    name = "ppo_loss"
    kw = keyword_options(name, options, PPO_DEFAULTS)
    critic_coeff = check_common(name, kw["reduction"], kw["entropy_bonus"], kw["samples_mc_entropy"], kw["entropy_coeff"],
                                kw["critic_coeff"], kw["loss_critic_type"], kw["clip_value"])
    batch = _prepare(name, td, dist_class, keys, kw)
    log_weight = batch.log_weight
    if batch.log_is_weight is not None:
        log_weight = log_weight + batch.log_is_weight
    out = {"loss_objective": importance_weighted_loss(log_weight, batch.advantage)}
    if kw["diagnostics"]:
        out["kl_approx"] = (-batch.log_weight).detach().mean()
    out.update(_terms(name, td, batch, kw, critic_coeff, kw["clip_value"]))
    return finish_losses(name, out, kw["reduction"], batch.mask)


def clip_ppo_loss(
    td: TensorDictBase,
    dist_class: DistClass | None = None,
    *,
    clip_epsilon: Number | tuple[float, float] = 0.2,
    keys: PPOKeys | Mapping[str, NestedKey] | None = None,
    **options: Unpack[PPOOptions],
) -> TensorDict:
    """Clipped-surrogate PPO, as TorchRL's ``ClipPPOLoss``.

    ``loss_objective = -mean(min(r A, clip(r, 1 - eps, 1 + eps) A))`` with ``r = pi / pi_old``.
    ``clip_epsilon`` may be a number, a tensor (differentiable, per-sample ``[*B, 1]`` allowed,
    also as a ``"clip_epsilon"`` entry) or a pair ``(eps_low, eps_high)``; ``clip_value=True``
    uses ``clip_epsilon`` (the entry included) as value-clip radius.

    Args:
        td: input TensorDict (not modified). Entries (names from ``keys``, shapes with
            ``B`` the batch shape of the current log-prob):

            - ``"actor_output"``: sub-TensorDict of keyword arguments for ``dist_class`` from
              the *current* policy (e.g. ``loc``/``scale`` ``[*B, A]`` or ``logits`` ``[*B, N]``;
              a bool ``mask`` for ``MaskedCategorical``; ``{"params": ...}`` for a
              ``CompositeDistribution``), or ``"log_prob"`` ``[*B]`` (then an ``"entropy"``
              ``[*B]`` is needed for the bonus);
            - ``"action"`` (constant) and ``"action_log_prob"`` ``[*B]`` (behaviour, constant); a
              composite policy reads per-head actions and log-probs from lists of keys, ``B``
              being the advantage's batch shape;
            - ``"advantage"`` ``[*B, 1]`` (used as given, graph kept), or, to estimate it here,
              ``("next", "reward")``, ``("next", "done")``, ``("next", "terminated")`` and
              ``("next", "state_value")`` ``[*B, 1]`` (values are detached; ``gamma``/``lmbda`` are not);
            - critic: ``"value_target"`` ``[*B, 1]`` (or estimated with the advantage),
              ``"state_value"`` ``[*B, 1]`` (current critic, with gradients), and
              ``"old_state_value"`` when ``clip_value`` is set;
            - optional ``"proximal_actor_output"``: a proximal policy's parameters (constants;
              TorchRL's ``delay_actor``);
            - optional masks ``("collector", "mask")``/``"shifted_valid"`` ``[*B]`` and
              hyperparameter overrides (``"gamma"``, ``"lmbda"``, ``"entropy_coeff"``,
              ``"critic_coeff"`` ...) of shape ``[*B]`` or ``[*B, 1]``.
        dist_class: distribution class (or callable) built as ``dist_class(**td["actor_output"])``.
        clip_epsilon: ``eps``: a number, a tensor (0-d or per-sample ``[*B, 1]``, differentiable)
            or ``(eps_low, eps_high)`` for the range ``[1 - eps_low, 1 + eps_high]``.
        keys: :class:`~torchrl_functional.functional.keys.PPOKeys` or a mapping of renamed entries.
        **options: the options of the PPO family
            (:class:`~torchrl_functional.functional.PPOOptions`): the entropy and critic terms
            (``entropy_bonus``, ``samples_mc_entropy``, ``entropy_coeff``, ``critic_coeff``,
            ``loss_critic_type``, ``clip_value``), the advantage (``normalize_advantage``,
            ``normalize_advantage_exclude_dims``, ``advantage_scale``), ``max_importance_ratio``,
            ``log_explained_variance``, ``diagnostics``, ``generator``, and
            :class:`~torchrl_functional.functional.OnPolicyOptions` (``reduction``,
            ``loss_mask_key`` and the estimate of a missing advantage: ``value_estimator``,
            ``gamma``, ``lmbda``, ``time_dim``, ``rho_thresh``, ``c_thresh``).

    Returns:
        TensorDict with ``loss_objective``, ``clip_fraction``, ``kl_approx``, ``ESS``,
        ``max_ratio``, ``mean_ratio`` and, as enabled, ``entropy``, ``composite_entropy``,
        ``loss_entropy``, ``loss_critic``, ``value_clip_fraction``, ``explained_variance``.
    """
    kw = keyword_options("clip_ppo_loss", options, PPO_DEFAULTS)
    return _clip_ppo("clip_ppo_loss", td, dist_class, {**kw, "clip_epsilon": clip_epsilon, "keys": keys})


def _clip_ppo(name: str, td: TensorDictBase, dist_class: DistClass | None, kw: dict) -> TensorDict:
    """:func:`clip_ppo_loss` with its keyword arguments in ``kw`` (``value_norm`` and
    ``value_norm_stats`` too, for :func:`~torchrl_functional.functional.mappo_loss`)."""
    clip_epsilon, clip_value, reduction, diagnostics = (
        kw["clip_epsilon"], kw["clip_value"], kw["reduction"], kw["diagnostics"])
    if isinstance(clip_epsilon, (tuple, list)):
        if len(clip_epsilon) != 2:
            raise HyperparameterError(name, "clip_epsilon", f"a tuple must be (eps_low, eps_high), got {clip_epsilon!r}")
        check_range(name, "clip_epsilon", clip_epsilon[0], 0.0, 1.0, high_open=True)
        check_range(name, "clip_epsilon", clip_epsilon[1], 0.0)
        if clip_value is True:
            raise HyperparameterError(name, "clip_value", "clip_value=True needs a symmetric clip_epsilon; pass a number")
    else:
        check_range(name, "clip_epsilon", clip_epsilon, 0.0, 1.0)
    critic_coeff = check_common(name, reduction, kw["entropy_bonus"], kw["samples_mc_entropy"], kw["entropy_coeff"],
                                kw["critic_coeff"], kw["loss_critic_type"],
                                None if isinstance(clip_value, bool) else clip_value)
    batch = _prepare(name, td, dist_class, kw["keys"], kw)
    if not isinstance(clip_epsilon, (tuple, list)):
        clip_epsilon = hyperparameter(name, td, "clip_epsilon", clip_epsilon, batch.batch_shape)
    clip_value = resolve_clip_value(name, td, clip_value, clip_epsilon, batch.batch_shape)
    loss_objective, clipped = clipped_surrogate_loss(
        batch.log_weight, batch.advantage, clip_epsilon, batch.log_is_weight
    )
    out = {"loss_objective": loss_objective}
    if diagnostics:
        out["clip_fraction"] = clipped.to(batch.log_weight.dtype).mean()
        out["kl_approx"] = (-batch.log_weight).detach().mean()
    out.update(_terms(name, td, batch, kw, critic_coeff, clip_value))
    if diagnostics:
        behaviour = batch.log_weight if batch.log_is_weight is None else batch.log_weight + batch.log_is_weight
        out["ESS"] = effective_sample_size(behaviour)
        with torch.no_grad():
            ratio = behaviour.exp()
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
    keys: PPOKeys | Mapping[str, NestedKey] | None = None,
    **options: Unpack[PPOOptions],
) -> TensorDict:
    """KL-penalised PPO, as TorchRL's ``KLPENPPOLoss``, without hidden state.

    ``loss_objective = -mean(r A - beta KL(pi_old || pi))``. ``KL`` is analytic when
    registered for the pair, else a ``samples_mc_kl``-sample estimate drawn from
    ``pi_old``: the behaviour policy rebuilt from ``"old_actor_output"``, or the proximal
    policy when ``"proximal_actor_output"`` is given (TorchRL's ``delay_actor``).
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
        td, dist_class, keys: as :func:`clip_ppo_loss`.
        **options: as :func:`clip_ppo_loss`.

    Returns:
        TensorDict with ``loss_objective``, ``beta`` (the adapted coefficient), ``kl``,
        ``kl_approx`` and, as enabled, the entropy and critic entries of :func:`clip_ppo_loss`.
    """
    name = "klpen_ppo_loss"
    kw = keyword_options(name, options, PPO_DEFAULTS)
    check_range(name, "beta", beta, 0.0)
    check_range(name, "dtarg", dtarg, 0.0, low_open=True)
    check_range(name, "increment", increment, 1.0)
    check_range(name, "decrement", decrement, 0.0, 1.0)
    check_samples(name, "samples_mc_kl", samples_mc_kl)
    critic_coeff = check_common(name, kw["reduction"], kw["entropy_bonus"], kw["samples_mc_entropy"], kw["entropy_coeff"],
                                kw["critic_coeff"], kw["loss_critic_type"], kw["clip_value"])
    batch = _prepare(name, td, dist_class, keys, kw)
    keys = batch.keys
    if batch.dist is None:
        raise missing(name, keys.actor_output,
                      "the KL penalty needs the current policy's distribution parameters and dist_class")
    if batch.proximal is not None:
        old_dist, old_key = batch.proximal.dist, keys.proximal_actor_output
    else:
        old_params = read_params(name, td, keys.old_actor_output)
        if old_params is None:
            raise missing(name, keys.old_actor_output,
                          "the behaviour policy's distribution parameters, needed for KL(pi_old || pi)")
        check_finite_leaves(name, keys.old_actor_output, old_params)
        old_params = old_params.detach() if isinstance(old_params, TensorDictBase) else {
            k: v.detach() for k, v in old_params.items()}
        old_dist, old_key = build_distribution(name, keys.old_actor_output, dist_class, old_params), keys.old_actor_output
    if C.is_composite(batch.dist):
        kl = C.composite_kl(name, old_dist, batch.dist, samples_mc_kl, batch.batch_shape, generator=kw["generator"])
    else:
        if old_dist.batch_shape != batch.dist.batch_shape or old_dist.event_shape != batch.dist.event_shape:
            raise EntryShapeError(
                name, old_key,
                f"builds a distribution with batch shape {tuple(old_dist.batch_shape)} and event shape "
                f"{tuple(old_dist.event_shape)}, but the current policy from {keys.actor_output!r} has "
                f"{tuple(batch.dist.batch_shape)} and {tuple(batch.dist.event_shape)}",
            )
        kl = kl_divergence(old_dist, batch.dist, samples_mc_kl, generator=kw["generator"], loss=name)
    kl = kl.unsqueeze(-1)
    beta_in = hyperparameter(name, td, "beta", beta, batch.batch_shape)
    log_weight = batch.log_weight
    if batch.log_is_weight is not None:
        log_weight = log_weight + batch.log_is_weight
    out = {"loss_objective": kl_penalty_loss(log_weight, batch.advantage, kl, beta_in)}
    if kw["diagnostics"]:
        out["kl"] = kl.detach()
        out["kl_approx"] = (-batch.log_weight).detach().mean()
    out.update(_terms(name, td, batch, kw, critic_coeff, kw["clip_value"]))
    out["beta"] = adapt_kl_beta(beta_in, kl.mean(), dtarg, increment, decrement)
    return finish_losses(name, out, kw["reduction"], batch.mask)

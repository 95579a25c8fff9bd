"""DreamerV3's world-model and critic losses as pure functions of precomputed network outputs.

Hafner et al. 2023, "Mastering Diverse Domains through World Models" (arXiv 2301.04104).
Same outputs and numbers as TorchRL 0.14.1's ``DreamerV3ModelLoss`` and ``DreamerV3ValueLoss``
(and its ``replay_value_loss``); the actor loss is in :mod:`.dreamer_v3_actor`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypedDict, Unpack

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor

from ...errors import EntryShapeError
from .._td import (
    check_bool,
    check_float,
    check_reduction,
    check_shape,
    entry,
    next_key,
    pack,
    read_float,
    reduce_loss,
    require,
)
from .._validation import check_choice, check_range, keyword_options
from ..keys import NestedKey, resolve_keys
from ..value import td_lambda_return_estimate
from .dreamer_v3_kernels import (
    categorical_kl_balanced,
    categorical_kl_terms,
    symlog,
    two_hot_bins,
    two_hot_cross_entropy,
)
from .keys_v3 import DreamerV3ModelKeys, DreamerV3ValueKeys

__all__ = ["dreamer_v3_model_loss", "dreamer_v3_value_loss", "dreamer_v3_replay_value_loss", "DreamerV3ValueOptions"]

Scalar = float | Tensor


def read_flag(loss: str, td: TensorDictBase, key: Any, batch: torch.Size) -> Tensor | None:
    """A bool ``[*B]``/``[*B, 1]`` entry as ``[*B]``, or ``None`` when absent."""
    x = entry(td, key)
    if x is None:
        return None
    check_bool(loss, key, x)
    if x.shape not in (batch, batch + (1,)):
        raise EntryShapeError(loss, key, f"expected shape {tuple(batch)} or {tuple(batch) + (1,)}, got {tuple(x.shape)}")
    return x.reshape(batch)


def bins_for(loss: str, name: str, bins: Tensor | None, num_bins: int, like: Tensor) -> Tensor:
    """The two-hot support: the given ``[K]`` tensor or DreamerV3's default grid of ``num_bins``."""
    if bins is None:
        check_range(loss, name, num_bins, 2)
        return two_hot_bins(int(num_bins), dtype=like.dtype, device=like.device)
    if bins.ndim != 1 or bins.shape[0] < 2:
        raise EntryShapeError(loss, name, f"expected a [K] support with K >= 2, got {tuple(bins.shape)}")
    return bins


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, list) else [value]


def dreamer_v3_model_loss(
    td: TensorDictBase,
    *,
    lambda_kl: Scalar = 1.0,
    lambda_reco: Scalar = 1.0,
    lambda_reward: Scalar = 1.0,
    lambda_continue: Scalar = 0.0,
    kl_mode: Literal["balanced", "separate"] = "balanced",
    lambda_dynamic: Scalar = 1.0,
    lambda_representation: Scalar = 0.1,
    unimix: Scalar = 0.0,
    continue_target_scale: Scalar = 1.0,
    kl_alpha: Scalar = 0.8,
    free_bits: Scalar = 1.0,
    reco_loss: Literal["l1", "l2"] = "l2",
    reco_symlog: bool | list[bool] = True,
    reward_two_hot: bool = True,
    num_reward_bins: int = 255,
    reward_bins: Tensor | None = None,
    global_average: bool = False,
    keys: DreamerV3ModelKeys | Mapping[str, NestedKey] | None = None,
) -> TensorDict:
    """DreamerV3 world-model loss: KL between posterior and prior, symlog reconstruction, two-hot
    (or symlog-MSE) reward prediction and an optional continue-flag cross-entropy (paper eq. 5).

    Args:
        td: the world model's output (not modified); every entry under ``"next"``, ``B`` the
            batch shape of ``td`` (TorchRL's ``[B, T]``):

            - ``"true_reward"`` ``[*B, 1]``: observed reward (a constant target);
            - ``"reward_logits"`` ``[*B, K]`` (``reward_two_hot``) or ``"reward"`` ``[*B, 1]``;
            - ``"prior_logits"``, ``"posterior_logits"`` ``[*B, C, K']``;
            - ``"pixels"``/``"reco_pixels"`` ``[*B, *E]`` per head (integer image targets only
              for heads without symlog: divided by 255);
            - ``"continue_pred"`` ``[*B]``/``[*B, 1]`` and ``"terminated"`` (else ``"done"``) when
              ``lambda_continue`` is a tensor or positive.
        lambda_kl, lambda_reco, lambda_reward, lambda_continue: loss weights.
        kl_mode: ``"balanced"`` (``loss_model_kl``, see :func:`categorical_kl_balanced`) or
            ``"separate"`` (``loss_model_dynamic``/``loss_model_representation``).
        lambda_dynamic, lambda_representation: weights of the separate KL terms.
        unimix: uniform mixture of the separate KL's categoricals, in ``[0, 1)``.
        continue_target_scale: non-terminal continue target, in ``(0, 1]``.
        kl_alpha: balancing weight of the balanced KL, in ``[0, 1]``.
        free_bits: the KL clip (nats).
        reco_loss: ``"l2"`` or ``"l1"``.
        reco_symlog: apply symlog to each head's target and prediction (a bool or one per head).
        reward_two_hot: two-hot cross-entropy on logits, else symlog MSE on a scalar.
        num_reward_bins: size of the default two-hot support.
        reward_bins: a ``[K]`` support instead of the default one.
        global_average: average over event dims too (else summed per sample, then averaged).
        keys: :class:`DreamerV3ModelKeys` or a mapping of renamed entries.

    Returns:
        ``loss_model_reco``, ``loss_model_reward``, ``loss_model_kl`` (or ``loss_model_dynamic``
        and ``loss_model_representation``) and with the continue head ``loss_model_continue``,
        each ``[1]``. The KL terms stop gradients as the paper says; the targets are used as given.
    """
    name = "dreamer_v3_model_loss"
    k = resolve_keys(keys, DreamerV3ModelKeys, name)
    check_choice(name, "kl_mode", kl_mode, ("balanced", "separate"))
    check_choice(name, "reco_loss", reco_loss, ("l1", "l2"))
    check_range(name, "unimix", unimix, 0.0, 1.0, high_open=True)
    check_range(name, "continue_target_scale", continue_target_scale, 0.0, 1.0, low_open=True)
    check_range(name, "kl_alpha", kl_alpha, 0.0, 1.0)
    check_range(name, "free_bits", free_bits, 0.0)
    batch = td.batch_size
    true_reward = read_float(name, td, next_key(k.true_reward), "the observed reward (TorchRL's loss renames "
                             "('next', 'reward') to it before running the world model)", batch + (1,), "[*B, 1]")

    post_key, prior_key = next_key(k.posterior_logits), next_key(k.prior_logits)
    posterior = read_float(name, td, post_key, "the RSSM posterior's logits")
    if posterior.ndim != len(batch) + 2 or posterior.shape[: len(batch)] != batch:
        raise EntryShapeError(name, post_key, f"expected {tuple(batch) + ('C', 'K')}, got {tuple(posterior.shape)}")
    prior = read_float(name, td, prior_key, "the RSSM prior's logits", posterior.shape, "the posterior's shape")

    observed, predicted = _as_list(k.pixels), _as_list(k.reco_pixels)
    symlogs = [reco_symlog] * len(observed) if isinstance(reco_symlog, bool) else list(reco_symlog)
    if not observed or not len(observed) == len(predicted) == len(symlogs):
        raise EntryShapeError(name, next_key(observed[0]), "pixels, reco_pixels and reco_symlog must describe "
                              "the same nonzero number of reconstruction heads")
    reco = None
    for obs_key, pred_key, transform in zip(observed, predicted, symlogs):
        pred = read_float(name, td, next_key(pred_key), "the decoder's reconstruction")
        target = require(name, td, next_key(obs_key), "the observation to reconstruct")
        if transform or target.dtype == torch.bool or target.is_complex():
            check_float(name, next_key(obs_key), target)
        check_shape(name, next_key(obs_key), target, pred.shape, f"the shape of {pred_key!r}")
        if pred.shape[: len(batch)] != batch:
            raise EntryShapeError(name, next_key(pred_key), f"expected batch {tuple(batch)}, got {tuple(pred.shape)}")
        if transform:
            target, pred = symlog(target), symlog(pred)
        elif not target.is_floating_point():
            target = target.to(pred.dtype) / 255.0
        error = target - pred
        head = error.pow(2) if reco_loss == "l2" else error.abs()
        if not global_average:
            head = head.reshape(*batch, -1).sum(-1)
        head = head.mean().unsqueeze(-1)
        reco = head if reco is None else reco + head

    if reward_two_hot:
        logits_key = next_key(k.reward_logits)
        logits = read_float(name, td, logits_key, "the reward head's two-hot logits")
        bins = bins_for(name, "num_reward_bins", reward_bins, num_reward_bins, logits)
        check_shape(name, logits_key, logits, batch + bins.shape, f"{bins.shape[0]} reward bins")
        reward_loss = two_hot_cross_entropy(logits, true_reward.squeeze(-1), bins)
    else:
        pred_reward = read_float(name, td, next_key(k.reward), "the reward model's prediction",
                                 true_reward.shape, "the true reward's shape")
        reward_loss = (symlog(true_reward) - symlog(pred_reward)).pow(2).squeeze(-1)
    out = {"loss_model_reco": lambda_reco * reco,
           "loss_model_reward": lambda_reward * reward_loss.mean().unsqueeze(-1)}
    if kl_mode == "separate":
        dynamic, representation = categorical_kl_terms(posterior, prior, free_nats=free_bits, unimix=unimix)
        out["loss_model_dynamic"] = lambda_kl * lambda_dynamic * dynamic.unsqueeze(-1)
        out["loss_model_representation"] = lambda_kl * lambda_representation * representation.unsqueeze(-1)
    else:
        kl = categorical_kl_balanced(posterior, prior, alpha=kl_alpha, free_bits=free_bits)
        out["loss_model_kl"] = lambda_kl * kl.unsqueeze(-1)

    if isinstance(lambda_continue, Tensor) or lambda_continue > 0:
        pred_key = next_key(k.continue_pred)
        cont = read_float(name, td, pred_key, "the continue head's logit")
        if cont.shape not in (batch, batch + (1,)):
            raise EntryShapeError(name, pred_key, f"expected {tuple(batch)} or {tuple(batch) + (1,)}, got {tuple(cont.shape)}")
        ended = read_flag(name, td, next_key(k.terminated), batch)
        if ended is None:
            ended = read_flag(name, td, next_key(k.done), batch)
        if ended is None:
            raise require(name, td, next_key(k.terminated), "the episode-end flag (or 'done')")
        target = (~ended).to(cont.dtype) * continue_target_scale
        bce = torch.nn.functional.binary_cross_entropy_with_logits(cont.reshape(batch), target)
        out["loss_model_continue"] = lambda_continue * bce.unsqueeze(-1)
    return pack(out)


class DreamerV3ValueOptions(TypedDict, total=False):
    """The keyword options of the critic losses :func:`dreamer_v3_value_loss` and
    :func:`dreamer_v3_replay_value_loss` (TorchRL's ``DreamerV3ValueLoss`` and its
    ``replay_value_loss``), declared once.

    Attributes:
        value_loss: ``"symlog_mse"`` (default) or ``"two_hot"``.
        num_value_bins: size of the default two-hot support (default ``255``).
        value_bins: a ``[K]`` support instead of the default one (default ``None``).
        slow_critic_regularization: weight of the slow-critic term (``>= 0``, default ``0.0``).
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    """

    value_loss: Literal["symlog_mse", "two_hot"]
    num_value_bins: int
    value_bins: Tensor | None
    slow_critic_regularization: Scalar
    reduction: Literal["mean", "sum", "none"]


#: the defaults of :class:`DreamerV3ValueOptions` (TorchRL's ``DreamerV3ValueLoss``)
VALUE_DEFAULTS: dict[str, Any] = {"value_loss": "symlog_mse", "num_value_bins": 255, "value_bins": None,
                                  "slow_critic_regularization": 0.0, "reduction": "mean"}


def _value_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """A critic loss's ``**options`` over :data:`VALUE_DEFAULTS`, checked (an unknown name is a
    ``TypeError`` as for any keyword)."""
    o = keyword_options(name, options, VALUE_DEFAULTS)
    check_choice(name, "value_loss", o["value_loss"], ("symlog_mse", "two_hot"))
    check_reduction(name, o["reduction"])
    check_range(name, "slow_critic_regularization", o["slow_critic_regularization"], 0.0)
    return o


def _critic_prediction(name: str, td: TensorDictBase, k: DreamerV3ValueKeys, o: Mapping[str, Any],
                       batch: torch.Size) -> tuple[Tensor, Tensor | None]:
    """The critic's output (``[*B, K]`` logits or ``[*B]`` value) and the support for two-hot."""
    if o["value_loss"] == "two_hot":
        logits = read_float(name, td, k.value_logits, "the critic's two-hot logits")
        bins = bins_for(name, "num_value_bins", o["value_bins"], o["num_value_bins"], logits)
        check_shape(name, k.value_logits, logits, batch + bins.shape, f"{bins.shape[0]} value bins")
        return logits, bins
    value = read_float(name, td, k.value, "the critic's value", batch + (1,), "[*B, 1]")
    return value.squeeze(-1), None


def _step_loss(value_loss: str, prediction: Tensor, target: Tensor, bins: Tensor | None) -> Tensor:
    if value_loss == "two_hot":
        return two_hot_cross_entropy(prediction, target, bins)
    return (symlog(prediction) - symlog(target)).pow(2)


def dreamer_v3_value_loss(
    td: TensorDictBase,
    *,
    discount_loss: bool = True,
    gamma: Scalar = 0.99,
    keys: DreamerV3ValueKeys | Mapping[str, NestedKey] | None = None,
    **options: Unpack[DreamerV3ValueOptions],
) -> TensorDict:
    """DreamerV3 critic loss on imagined states: symlog MSE or two-hot cross-entropy to the
    lambda-return, weighted by the imagination discount, plus an optional slow-critic term.

    Args:
        td: imagined states (not modified), ``B`` its batch shape:

            - ``"lambda_target"`` ``[*B, 1]``: the return to regress (used as given);
            - ``"state_value"`` ``[*B, 1]`` (``"symlog_mse"``) or ``"state_value_logits"``
              ``[*B, K]`` (``"two_hot"``): the critic's output, with gradients;
            - optional ``"discount_weight"`` ``[*B, 1]``; without it and with ``discount_loss``
              and at least two batch dims, ``gamma ** t`` along the last one;
            - ``"slow_state_value"`` ``[*B, 1]``: the slow critic's decoded value (a constant),
              when ``slow_critic_regularization`` is a tensor or positive.
        discount_loss: weight the loss by the imagination discount.
        gamma: discount of that weight.
        keys: :class:`DreamerV3ValueKeys` or a mapping of renamed entries.
        **options: :class:`~torchrl_functional.functional.DreamerV3ValueOptions`: ``value_loss``,
            ``num_value_bins``, ``value_bins``, ``slow_critic_regularization``, ``reduction``.

    Returns:
        ``loss_value`` and ``value_slow_loss`` (the slow term alone, detached), reduced
        (``reduction="none"``: ``[*B]``).
    """
    name = "dreamer_v3_value_loss"
    k = resolve_keys(keys, DreamerV3ValueKeys, name)
    o = _value_options(name, options)
    check_range(name, "gamma", gamma, 0.0, 1.0)
    value_loss, slow_weight, reduction = o["value_loss"], o["slow_critic_regularization"], o["reduction"]
    batch = td.batch_size
    target = read_float(name, td, k.lambda_target, "the imagined lambda-return (DreamerV3ActorLoss writes it)",
                        batch + (1,), "[*B, 1]").squeeze(-1)
    prediction, bins = _critic_prediction(name, td, k, o, batch)
    weight = entry(td, k.discount_weight)
    if weight is not None:
        check_float(name, k.discount_weight, weight)
        check_shape(name, k.discount_weight, weight, batch + (1,), "the lambda-target's shape")
        discount = weight.squeeze(-1)
    elif discount_loss and len(batch) >= 2:
        ones = torch.ones_like(target)
        discount = torch.cat([ones[..., :1], gamma * ones[..., 1:]], -1).cumprod(-1)
    else:
        discount = torch.ones_like(target)
    loss = _step_loss(value_loss, prediction, target, bins)
    if isinstance(slow_weight, Tensor) or slow_weight:
        slow = read_float(name, td, k.slow_value, "the slow critic's decoded value", batch + (1,),
                          "the lambda-target's shape")
        slow_loss = _step_loss(value_loss, prediction, slow.squeeze(-1), bins)
        loss = loss + slow_weight * slow_loss
    else:
        slow_loss = torch.zeros_like(loss)
    loss_value = reduce_loss(name, discount * loss, reduction, squeeze=False)
    slow_value = reduce_loss(name, discount * slow_loss, reduction, squeeze=False)
    return pack({"loss_value": loss_value, "value_slow_loss": slow_value.detach()})


def dreamer_v3_replay_value_loss(
    td: TensorDictBase,
    *,
    horizon: Scalar = 333.0,
    lmbda: Scalar = 0.95,
    keys: DreamerV3ValueKeys | Mapping[str, NestedKey] | None = None,
    **options: Unpack[DreamerV3ValueOptions],
) -> TensorDict:
    """DreamerV3 critic loss on a replayed sequence: each state regresses the TD(lambda) return
    of the next rewards, bootstrapped from the first imagined return of each state.

    Args:
        td: replayed posterior features (not modified), batch ``[*B, T]`` with time last:

            - ``"state_value"`` ``[*B, T, 1]`` or ``"state_value_logits"`` ``[*B, T, K]``;
            - ``("next", "reward"/"done"/"terminated")`` ``[*B, T]`` or ``[*B, T, 1]``;
            - ``"bootstrap"`` ``[*B, T]`` or ``[*B, T, 1]``;
            - ``"slow_state_value"`` ``[*B, T, 1]`` with ``slow_critic_regularization``.
        horizon: discount horizon (``gamma = 1 - 1 / horizon``), ``>= 1``.
        lmbda: trace decay in ``[0, 1]``.
        keys: :class:`DreamerV3ValueKeys` or a mapping of renamed entries.
        **options: as :func:`dreamer_v3_value_loss`
            (:class:`~torchrl_functional.functional.DreamerV3ValueOptions`).

    Returns:
        ``loss_replay_value`` (``reduction="none"``: ``[*B, T - 1]``); the return target is
        detached from ``reward`` and ``bootstrap`` (TorchRL computes it without gradients) but
        keeps the graph of ``horizon`` and ``lmbda``; the last step and the steps that end an
        episode are weighted 0.
    """
    name = "dreamer_v3_replay_value_loss"
    k = resolve_keys(keys, DreamerV3ValueKeys, name)
    o = _value_options(name, options)
    check_range(name, "horizon", horizon, 1.0)
    check_range(name, "lmbda", lmbda, 0.0, 1.0)
    value_loss, slow_weight = o["value_loss"], o["slow_critic_regularization"]
    seq = td.batch_size
    if len(seq) < 1:
        raise EntryShapeError(name, k.reward, f"expected a TensorDict with a time dimension, got batch {tuple(seq)}")
    prediction, bins = _critic_prediction(name, td, k, o, seq)

    def signal(key: Any, flag: bool, hint: str) -> Tensor:
        x = require(name, td, key, hint)
        (check_bool if flag else check_float)(name, key, x)
        if x.shape not in (seq, seq + (1,)):
            raise EntryShapeError(name, key, f"expected {tuple(seq)} or {tuple(seq) + (1,)}, got {tuple(x.shape)}")
        return x.reshape(seq + (1,))

    reward = signal(next_key(k.reward), False, "the replayed reward")
    done = signal(next_key(k.done), True, "the replayed done flag")
    terminated = signal(next_key(k.terminated), True, "the replayed terminated flag")
    bootstrap = signal(k.bootstrap, False, "the first imagined return of each replay state")
    # the target is a constant of the networks (TorchRL computes it under no_grad); it keeps the
    # graph of horizon and lmbda only
    target = td_lambda_return_estimate(
        1 - 1 / horizon, lmbda, bootstrap.detach()[..., 1:, :], reward.detach()[..., 1:, :], done[..., 1:, :],
        terminated[..., 1:, :],
    ).squeeze(-1)
    weight = (~done[..., :-1, 0]).to(target.dtype)
    pred = prediction[..., :-1, :] if value_loss == "two_hot" else prediction[..., :-1]
    loss = _step_loss(value_loss, pred, target, bins)
    if isinstance(slow_weight, Tensor) or slow_weight:
        slow = read_float(name, td, k.slow_value, "the slow critic's decoded value", seq + (1,), "[*B, T, 1]")
        loss = loss + slow_weight * _step_loss(value_loss, pred, slow[..., :-1, 0], bins)
    return pack({"loss_replay_value": reduce_loss(name, weight * loss, o["reduction"], squeeze=False)})


"""Pieces shared by the off-policy TensorDict losses (DQN, DDPG, TD3, SAC, IQL, CQL):
reading the transition (n-step data included) and the network outputs (ensembles in
either layout), the bootstrapped target with its stop-gradient, and the chosen action's
value. Each reads its entries once, checks them and names them in errors. (The ensemble
kernels live in :mod:`.value_learning`, SAC's temperature in :mod:`.sac`, the DQN target
in :mod:`.dqn`.)"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, TypedDict, TypeVar

import torch
from tensordict import TensorDictBase
from torch import Tensor

from ..errors import EntryDtypeError, EntryShapeError, HyperparameterError
from ._td import (
    check_bool,
    check_float,
    check_reduction,
    check_shape,
    entry,
    hyperparameter,
    loss_mask,
    next_key,
    read_float,
    require,
    time_dim_of,
)
from ._validation import check_choice, check_unit_interval, keyword_options
from .estimators import end_at_last_valid, estimator_name, value_target
from .keys import NestedKey, OffPolicyKeys, resolve_keys
from .value_learning import LOSS_FUNCTIONS

VALUE_ESTIMATORS = ("td0", "td1", "td_lambda")
ACTION_SPACES = ("categorical", "one_hot")
#: the discrete Q-learning losses (DQN, discrete CQL) also read multi one-hot actions
Q_ACTION_SPACES = ("categorical", "one_hot", "mult_one_hot")

Number = float | Tensor


@dataclass
class Transition:
    """``r``, ``done``, ``terminated`` of a batch, ``[*B, 1]`` each, ``B``, and the number of
    steps to the bootstrap observation ``[*B, 1]`` (n-step data) or ``None`` (one step)."""

    reward: Tensor
    done: Tensor
    terminated: Tensor
    batch_shape: torch.Size
    steps: Tensor | None = None


class ReplayOptions(TypedDict, total=False):
    """The keyword options every off-policy loss takes, declared once: the discount, the
    reduction and the masks (``**options`` of :func:`~torchrl_functional.functional.tqc_loss` and
    :func:`~torchrl_functional.functional.distributional_dqn_loss`, which TorchRL bootstraps one
    step only; the others take :class:`OffPolicyOptions`).

    Attributes:
        gamma: discount, a number or a tensor carrying gradients (0-d, or per sample ``[*B]``/``[*B, 1]``);
            default ``0.99``. A ``"gamma"`` entry of the input overrides it. n-step data
            (``"steps_to_next_obs"``) discounts each sample by ``gamma ** steps_to_next_obs``.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` (per-sample losses ``[*B]``).
        loss_mask_key: ``"auto"`` (default: TorchRL's masks ``("collector", "mask")`` and
            ``"shifted_valid"`` when present), an entry name, or ``None``.
    """

    gamma: Number
    reduction: Literal["mean", "sum", "none"]
    loss_mask_key: NestedKey | None


class OffPolicyOptions(ReplayOptions, total=False):
    """:class:`ReplayOptions` and the estimator of the bootstrapped target (``**options`` of
    :func:`~torchrl_functional.functional.sac_loss`, :func:`~torchrl_functional.functional.iql_loss` ...).

    Attributes:
        value_estimator: the bootstrapped target: ``"td0"`` (default, one step), ``"td1"`` or
            ``"td_lambda"`` along ``time_dim`` (a ``"shifted_valid"`` mask ends each trajectory at its
            last valid step), or TorchRL's ``ValueEstimators.TD0``/``TD1``/``TDLambda``.
        lmbda: trace decay of ``"td_lambda"``, same forms as ``gamma``; default ``0.95``.
        time_dim: the batch dim holding time for ``"td1"``/``"td_lambda"``; default ``None``: the
            TensorDict's dim named ``"time"``, else its last batch dim.
        average_rewards: standardise the rewards over the whole batch before the target,
            ``(r - mean r) / max(std r, eps)`` with ``eps`` ``1e-5`` (``1e-4`` for ``"td_lambda"``),
            as TorchRL's estimators built with ``average_rewards=True``; default ``False``.
    """

    value_estimator: Literal["td0", "td1", "td_lambda"] | Any
    lmbda: Number
    time_dim: int | None
    average_rewards: bool


class PrioritizedReplayOptions(ReplayOptions, total=False):
    """:class:`ReplayOptions` of the losses that TorchRL weights by replay priority.

    Attributes:
        use_prioritized_weights: weight the losses by the ``"priority_weight"`` entry ``[*B]``
            when present; default ``True``.
    """

    use_prioritized_weights: bool


class PrioritizedOffPolicyOptions(OffPolicyOptions, PrioritizedReplayOptions, total=False):
    """:class:`OffPolicyOptions` and ``use_prioritized_weights`` (:class:`PrioritizedReplayOptions`):
    the options of the losses that TorchRL weights by replay priority."""


class Options(NamedTuple):
    """:class:`OffPolicyOptions` resolved: defaults filled, names checked, the estimator's name."""

    value_estimator: str
    gamma: Number
    lmbda: Number
    time_dim: int | None
    reduction: str
    loss_mask_key: NestedKey | None
    use_prioritized_weights: bool
    average_rewards: bool = False


_DEFAULTS: dict[str, Any] = {"gamma": 0.99, "value_estimator": "td0", "lmbda": 0.95, "time_dim": None,
                             "reduction": "mean", "loss_mask_key": "auto", "use_prioritized_weights": True,
                             "average_rewards": False}


def off_policy_options(loss: str, options: Mapping[str, Any], *, loss_function: str | None = None,
                       fields: type = PrioritizedOffPolicyOptions,
                       defaults: Mapping[str, Any] | None = None) -> Options:
    """Resolve a loss's ``**options`` over the shared defaults (and the loss's own ``defaults``):
    a name its ``fields`` (the ``TypedDict`` it declares, e.g. :class:`OffPolicyOptions`) do not
    hold is a ``TypeError`` as for any keyword; ``reduction``, ``value_estimator`` and
    ``loss_function`` are checked. A field not declared takes its default (no priority weights)."""
    own = {**{k: v for k, v in _DEFAULTS.items() if k in fields.__optional_keys__}, **(defaults or {})}
    o = {**_DEFAULTS, "use_prioritized_weights": False, **keyword_options(loss, options, own)}
    estimator = check_options(loss, reduction=o["reduction"], loss_function=loss_function,
                              value_estimator=o["value_estimator"])
    return Options(estimator, o["gamma"], o["lmbda"], o["time_dim"], o["reduction"], o["loss_mask_key"],
                   bool(o["use_prioritized_weights"]), bool(o["average_rewards"]))


def options_type(fn: Any) -> Any:
    """The ``TypedDict`` of a loss function's ``**options: Unpack[...]``, or ``None``."""
    for p in inspect.signature(fn).parameters.values():
        if p.kind is p.VAR_KEYWORD:
            hint = eval(p.annotation, fn.__globals__) if isinstance(p.annotation, str) else p.annotation
            (fields,) = typing.get_args(hint)
            return fields
    return None


def option_names(fn: Any) -> frozenset[str]:
    """Every keyword a loss function takes: its parameters and the fields of its
    ``**options`` (:func:`options_type`, e.g. :class:`OffPolicyOptions`)."""
    params = inspect.signature(fn).parameters.values()
    names = {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    fields = options_type(fn)
    if fields is not None:
        names |= fields.__required_keys__ | fields.__optional_keys__
    return frozenset(names)


def check_input(loss: str, td: Any) -> None:
    if not isinstance(td, TensorDictBase):
        raise TypeError(f"{loss}: expected a TensorDict, got {type(td).__name__}")


K = TypeVar("K", bound=OffPolicyKeys)


def open_call(loss: str, td: Any, keys: Any, keys_cls: type[K], options: Mapping[str, Any], *,
              loss_function: str | None = None, fields: type = PrioritizedOffPolicyOptions,
              defaults: Mapping[str, Any] | None = None) -> tuple[Options, K, Transition]:
    """The opening every off-policy loss shares, in order: ``td`` is a TensorDict, the
    ``**options`` are resolved (:func:`off_policy_options`), ``keys`` resolved against
    ``keys_cls`` and the transition read (:func:`read_transition`)."""
    check_input(loss, td)
    o = off_policy_options(loss, options, loss_function=loss_function, fields=fields, defaults=defaults)
    keys = resolve_keys(keys, keys_cls, loss)
    return o, keys, read_transition(loss, td, keys)


def check_options(loss: str, *, reduction: str, loss_function: str | None = None,
                  value_estimator: Any = None) -> str | None:
    """Check the options shared by the off-policy losses; returns the value estimator's
    name (``"td0"``, ``"td1"`` or ``"td_lambda"``; TorchRL's ``ValueEstimators`` members accepted)."""
    check_reduction(loss, reduction)
    if loss_function is not None:
        check_choice(loss, "loss_function", loss_function, LOSS_FUNCTIONS)
    if value_estimator is not None:
        value_estimator = estimator_name(value_estimator, loss)
        check_choice(loss, "value_estimator", value_estimator, VALUE_ESTIMATORS)
    return value_estimator


def read_transition(loss: str, td: TensorDictBase, keys: OffPolicyKeys) -> Transition:
    """The reward and episode flags under ``"next"``; the reward's shape ``[*B, 1]`` fixes ``B``."""
    hint = "written by the environment (collector) under 'next'; needed for the bootstrapped target"
    reward = read_float(loss, td, next_key(keys.reward), hint)
    if reward.ndim == 0 or reward.shape[-1] != 1:
        raise EntryShapeError(
            loss, next_key(keys.reward),
            f"expected shape [*B, 1] (a trailing singleton dimension), got {tuple(reward.shape)}"
            + (" (add it: reward.unsqueeze(-1))" if reward.ndim else ""),
        )
    done = require(loss, td, next_key(keys.done), hint)
    terminated = entry(td, next_key(keys.terminated))
    for key, flag in ((next_key(keys.done), done), (next_key(keys.terminated), terminated)):
        if flag is not None:
            check_bool(loss, key, flag)
            check_shape(loss, key, flag, reward.shape, f"the shape of {next_key(keys.reward)!r}")
    steps = read_steps_to_next_obs(loss, td, keys.steps_to_next_obs, reward.shape)
    return Transition(reward, done, done if terminated is None else terminated, reward.shape[:-1], steps)


def read_steps_to_next_obs(loss: str, td: TensorDictBase, key: Any, reward_shape: torch.Size) -> Tensor | None:
    """n-step data (TorchRL's ``MultiStep``): the integer number of steps from each sample to
    the observation its target bootstraps from, ``[*B]`` or ``[*B, 1]``, as ``[*B, 1]``."""
    steps = entry(td, key)
    if steps is None:
        return None
    if not isinstance(steps, Tensor) or steps.is_floating_point() or steps.is_complex() or steps.dtype == torch.bool:
        got = steps.dtype if isinstance(steps, Tensor) else type(steps).__name__
        raise EntryDtypeError(loss, key, f"the number of steps to the next observation (n-step data, as "
                                         f"MultiStep writes it) must be an integer tensor, got {got}")
    if steps.shape == reward_shape[:-1]:
        steps = steps.unsqueeze(-1)
    elif steps.shape != reward_shape:
        raise EntryShapeError(loss, key, f"expected shape {tuple(reward_shape[:-1])} or {tuple(reward_shape)} "
                                         f"(the batch of the reward), got {tuple(steps.shape)}")
    return steps


def read_per_sample(loss: str, td: TensorDictBase, key: Any, batch_shape: torch.Size, hint: str,
                    features: int | None = 1) -> Tensor:
    """A per-sample network output ``[*B, F]`` (``F = features`` when given)."""
    x = read_float(loss, td, key, hint)
    if x.ndim != len(batch_shape) + 1 or x.shape[:-1] != batch_shape or (features is not None and x.shape[-1] != features):
        want = tuple(batch_shape) + ((features,) if features is not None else ("F",))
        extra = " (add the trailing dimension: x.unsqueeze(-1))" if x.shape == batch_shape else ""
        raise EntryShapeError(loss, key, f"expected shape {want} with batch {tuple(batch_shape)} "
                                         f"(the batch of the reward), got {tuple(x.shape)}{extra}")
    return x


def read_log_prob(loss: str, td: TensorDictBase, key: Any, batch_shape: torch.Size, hint: str,
                  extra_dims: tuple[int, ...] = ()) -> Tensor:
    """A log-prob ``[*B, *extra]`` (no trailing feature dimension, as TorchRL's distributions)."""
    return read_float(loss, td, key, hint, batch_shape + extra_dims,
                      "the batch of the reward, without a feature dimension")


def ensemble_dim(td: TensorDictBase, key: Any) -> int:
    """Where an ensemble entry holds its critics: right after the batch dimensions of the
    TensorDict holding it. First in an unbatched TensorDict (``[E, *B, F]``, as TorchRL's
    vmapped critics return it), after the batch in TorchRL's ``[*B]``-batched replay data
    (``[*B, E, F]``: a TensorDict entry must start with its container's batch)."""
    if isinstance(key, tuple) and len(key) > 1:
        parent = entry(td, key[:-1])
        if isinstance(parent, TensorDictBase):
            return parent.batch_dims
    return td.batch_dims


def read_ensemble(loss: str, td: TensorDictBase, key: Any, batch_shape: torch.Size, hint: str,
                  features: int | None = 1, extra_dims: tuple[int, ...] = (),
                  like: tuple[Any, Tensor] | None = None) -> Tensor:
    """A Q-ensemble output as ``[E, *B, *extra, F]``, ensemble first (TorchRL's vmapped critics).

    The ensemble dimension of the stored entry follows the batch dimensions of the TensorDict
    holding it (:func:`ensemble_dim`): ``[E, *B, *extra, F]`` in an unbatched TensorDict,
    ``[*B, E, *extra, F]`` in a ``[*B]``-batched one; it is returned moved to the front (a view).
    ``like=(key, tensor)`` requires the same ensemble size ``E`` as that entry."""
    x = read_float(loss, td, key, hint)
    inner = batch_shape + extra_dims
    d = ensemble_dim(td, key)
    if d > len(batch_shape):
        raise EntryShapeError(loss, key, f"is held in a TensorDict with {d} batch dimensions, more than the batch "
                                         f"{tuple(batch_shape)} of the reward")
    ok = x.ndim == len(inner) + 2 and x.shape[:d] == inner[:d] and x.shape[d + 1:-1] == inner[d:] and (
        features is None or x.shape[-1] == features)
    if not ok:
        want = tuple(inner[:d]) + ("E",) + tuple(inner[d:]) + ((features,) if features is not None else ("N",))
        where = "ensemble first: the TensorDict has no batch dimensions" if d == 0 else \
            f"the ensemble after the TensorDict's {d} batch dimension(s)"
        extra = ""
        if x.ndim == len(inner) + 1 and x.shape[:-1] == inner:
            extra = f" (a single critic: add the ensemble dimension, x.unsqueeze({d}))"
        elif x.ndim == len(inner) + 1 and x.shape[:d] == inner[:d] and x.shape[d + 1:] == inner[d:]:
            extra = " (add the trailing feature dimension: x.unsqueeze(-1))"
        raise EntryShapeError(loss, key, f"expected shape {want} ({where}) with batch {tuple(batch_shape)} "
                                         f"(the batch of the reward), got {tuple(x.shape)}{extra}")
    if d:
        x = x.movedim(d, 0)
    if x.shape[0] < 1:
        raise EntryShapeError(loss, key, "the ensemble dimension is empty")
    if like is not None and x.shape[0] != like[1].shape[0]:
        raise EntryShapeError(loss, key, f"holds an ensemble of {x.shape[0]} critics, but {like[0]!r} "
                                         f"holds {like[1].shape[0]}")
    return x


def priority_weight(loss: str, td: TensorDictBase, keys: OffPolicyKeys, batch_shape: torch.Size,
                    use_prioritized_weights: bool) -> Tensor | None:
    """The ``priority_weight`` entry ``[*B]``/``[*B, 1]`` as ``[*B, 1]``, if present and used."""
    if not use_prioritized_weights:
        return None
    w = entry(td, keys.priority_weight)
    if w is None:
        return None
    check_float(loss, keys.priority_weight, w)
    if w.shape == batch_shape:
        w = w.unsqueeze(-1)
    elif w.shape != batch_shape + (1,):
        raise EntryShapeError(loss, keys.priority_weight,
                              f"expected shape {tuple(batch_shape)} or {tuple(batch_shape) + (1,)}, got {tuple(w.shape)}")
    return w


def mask_and_weights(loss: str, td: TensorDictBase, keys: OffPolicyKeys, options: Options,
                     batch_shape: torch.Size) -> tuple[Tensor | None, Tensor | None]:
    """What a loss's per-sample terms are reduced with, as its options say: the input's mask
    (``loss_mask_key``, :func:`~._td.loss_mask`) and the replay priority weights
    (:func:`priority_weight`, when ``use_prioritized_weights``)."""
    return (loss_mask(loss, td, options.loss_mask_key),
            priority_weight(loss, td, keys, batch_shape, options.use_prioritized_weights))


def bootstrap_target(
    loss: str,
    td: TensorDictBase,
    tr: Transition,
    next_value: Tensor,
    options: Options,
) -> Tensor:
    """Bootstrapped target ``[*B, 1]`` from ``V(s')`` ``[*B, 1]``, with ``V(s')`` **detached**.

    Reads what the target needs from ``td`` and hands it to the package's one dispatcher,
    :func:`~torchrl_functional.functional.estimators.value_target`: ``"td0"``:
    ``r + gamma * (1 - terminated) * V(s')``; ``"td1"``/``"td_lambda"``: the discounted
    (lambda-)return along the time dim (TorchRL's rule, :func:`~._td.time_dim_of`), each
    trajectory ending at its last ``"shifted_valid"`` step as TorchRL's ``TD1Estimator`` /
    ``TDLambdaEstimator.value_estimate`` do. The reward, ``gamma`` and ``lmbda`` keep their
    graphs; ``gamma``/``lmbda`` entries of ``td`` (``[*B]`` or ``[*B, 1]``) override the
    keywords. n-step data (``tr.steps``) discounts each sample by ``gamma ** steps_to_next_obs``;
    ``options.average_rewards`` standardises the rewards first.
    """
    value_estimator, gamma, lmbda, time_dim = options[:4]
    if tr.steps is not None and entry(td, "gamma") is not None:
        raise HyperparameterError(
            loss, "gamma",
            "the input holds both a 'gamma' entry and n-step data ('steps_to_next_obs'; MultiStep writes both, "
            "its 'gamma' being gamma ** steps_to_next_obs): the discount is ambiguous. Drop the 'gamma' entry "
            "(td.exclude('gamma')) to discount by gamma ** steps_to_next_obs as TorchRL's losses do",
        )
    gamma = hyperparameter(loss, td, "gamma", gamma, tr.batch_shape)
    check_unit_interval(loss, "gamma", gamma)
    done, terminated, dim = tr.done, tr.terminated, -2
    if value_estimator != "td0":
        dim = time_dim_of(td, time_dim, loss=loss, entries_batch=tr.batch_shape)
        valid = entry(td, "shifted_valid")
        if valid is not None:
            check_bool(loss, "shifted_valid", valid)
            if valid.shape == tr.batch_shape:
                valid = valid.unsqueeze(-1)
            check_shape(loss, "shifted_valid", valid, tr.reward.shape,
                        f"the batch of the reward, {tuple(tr.batch_shape)}")
            done, terminated = end_at_last_valid(valid, done, terminated, dim)
    if value_estimator == "td_lambda":
        lmbda = hyperparameter(loss, td, "lmbda", lmbda, tr.batch_shape)
        check_unit_interval(loss, "lmbda", lmbda)
    reward = tr.reward
    if options.average_rewards:  # over every sample, as TorchRL's estimators standardise them
        reward = (reward - reward.mean()) / reward.std().clamp_min(1e-4 if value_estimator == "td_lambda" else 1e-5)
    _, target = value_target(
        value_estimator, gamma=gamma, next_state_value=next_value.detach(), reward=reward, done=done,
        terminated=terminated, lmbda=lmbda, time_dim=dim, steps_to_next_obs=tr.steps, loss=loss,
    )
    return target


def check_action_space(loss: str, action_space: str, spaces: tuple[str, ...] = ACTION_SPACES) -> str:
    """The action space in our spelling (TorchRL's ``"one-hot"``/``"mult-one-hot"`` accepted),
    one of ``spaces``."""
    action_space = action_space.replace("-", "_") if isinstance(action_space, str) else action_space
    check_choice(loss, "action_space", action_space, spaces)
    return action_space


def check_action_sizes(loss: str, action_space: str, action_sizes: Any) -> tuple[int, ...] | None:
    """``mult_one_hot``: the size of each sub-action (TorchRL's ``var_nums``, a ``MultiOneHot``
    spec's ``nvec``), positive integers; refused with another action space."""
    if action_space != "mult_one_hot":
        if action_sizes is not None:
            raise HyperparameterError(loss, "action_sizes", f"only for action_space='mult_one_hot', got {action_space!r}")
        return None
    if isinstance(action_sizes, Tensor):
        action_sizes = action_sizes.tolist()
    if (action_sizes is None or isinstance(action_sizes, (str, bytes)) or not hasattr(action_sizes, "__iter__")
            or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in action_sizes)
            or not len(action_sizes)):
        raise HyperparameterError(loss, "action_sizes", "action_space='mult_one_hot' needs the size of each sub-action, "
                                                        f"a sequence of positive integers (a MultiOneHot spec's nvec), got {action_sizes!r}")
    return tuple(action_sizes)


def chosen_action_value(
    loss: str,
    td: TensorDictBase,
    key: Any,
    action_value: Tensor,
    batch_shape: torch.Size,
    action_space: str,
) -> Tensor:
    """``Q(s, a)`` ``[..., *B, 1]`` for the replayed action from ``Q(s, .)`` ``[..., *B, N]``.

    ``"categorical"`` actions are integer indices ``[*B]`` or ``[*B, 1]``; ``"one_hot"``
    (and ``"mult_one_hot"``: one one-hot per sub-action, concatenated) actions are ``[*B, N]``,
    the values summed over the marks (gradients through a float one-hot action are kept).
    """
    action = require(loss, td, key, "the replayed action, written by the collector")
    n = action_value.shape[-1]
    lead = action_value.shape[: action_value.ndim - len(batch_shape) - 1]
    if action_space == "categorical":
        if action.is_floating_point() or action.dtype == torch.bool or action.is_complex():
            raise EntryDtypeError(loss, key, f"a categorical action must be an integer index tensor, got {action.dtype}")
        if action.shape == batch_shape:
            action = action.unsqueeze(-1)
        elif action.shape != batch_shape + (1,):
            raise EntryShapeError(loss, key, f"a categorical action must have shape {tuple(batch_shape)} or "
                                             f"{tuple(batch_shape) + (1,)}, got {tuple(action.shape)}")
        index = action.expand(*lead, *action.shape)
        return torch.gather(action_value, -1, index)
    if action.shape != batch_shape + (n,):
        raise EntryShapeError(loss, key, f"a one-hot action must have shape {tuple(batch_shape) + (n,)} "
                                         f"(N={n} from the action values), got {tuple(action.shape)}")
    if not action.is_floating_point():
        action = action.to(action_value.dtype)
    return (action_value * action).sum(-1, keepdim=True)

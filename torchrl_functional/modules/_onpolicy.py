"""The impure part shared by the drop-in on-policy modules: run the value estimator, the
actor (current, proximal) and the critic with the loss module's *current* parameters, and
gather the entries the functional loss reads. No loss math here."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import ProbabilisticTensorDictModule, ProbabilisticTensorDictSequential
from torch import nn

from ..functional._td import loss_mask
from ..functional.keys import OnPolicyKeys
from ._binding import FunctionalCallMixin, params_context
from ._common import ACTOR_OUTPUT, OLD_ACTOR_OUTPUT, OLD_VALUE, PROXIMAL_ACTOR_OUTPUT
from ._estimate import run_value_estimator
from ._value_norm import functional_normalizer, store_statistics


def find_dist_module(actor: nn.Module) -> ProbabilisticTensorDictModule | None:
    """The module that turns parameters into the policy distribution, or ``None`` for an actor
    that only offers ``get_dist`` (run as a whole: its distribution is handed over as built)."""
    if isinstance(actor, ProbabilisticTensorDictModule):
        return actor
    if isinstance(actor, ProbabilisticTensorDictSequential) and not actor.return_composite:
        found = [m for m in actor.modules() if isinstance(m, ProbabilisticTensorDictModule)]
        if found:
            return found[-1]
    if not hasattr(actor, "get_dist"):
        raise NotImplementedError(
            "Only probabilistic modules from tensordict.nn (or modules with a get_dist method) are supported "
            "as actors."
        )
    return None


def dist_class_of(dist_module: ProbabilisticTensorDictModule | None):
    """``dist_class`` such that ``dist_class(**params)`` equals ``dist_module.get_dist``
    (``None`` for an actor run as a whole)."""
    if dist_module is None:
        return None
    kwargs = dict(dist_module.distribution_kwargs or {})
    cls = dist_module.distribution_class
    return functools.partial(cls, **kwargs) if kwargs else cls


def _prebuilt(dist):
    """``dist_class`` of an actor run as a whole: no parameters, the distribution it built."""
    return dist


class OnPolicyModule(FunctionalCallMixin):
    """Base of the on-policy drop-ins: finds the actor's distribution module (and its class)
    once, when the module is built."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._dist_module = find_dist_module(self.actor_network)
        self._dist_class = dist_class_of(self._dist_module)


@dataclass
class Gathered:
    """What the on-policy modules hand to the functional loss."""

    inputs: TensorDictBase
    dist_class: Any
    advantage_scale: torch.Tensor | None


# Options the module's own value estimator and the caller's call settle, never module attributes.
_NOT_ATTRIBUTES = frozenset({"value_estimator", "gamma", "lmbda", "time_dim", "rho_thresh", "c_thresh",
                             "diagnostics", "generator"})


def entropy_coeff(loss_module) -> Any:
    """The module's entropy coefficient: TorchRL's per-head mapping when it has one, else the number."""
    coeff_map = getattr(loss_module, "_entropy_coeff_map", None)
    return loss_module.entropy_coeff if coeff_map is None else coeff_map


def module_options(loss_module, gathered: Gathered, options: type) -> dict[str, Any]:
    """The keyword options ``options`` declares (:class:`~torchrl_functional.functional.OnPolicyOptions`,
    ``A2COptions`` or ``PPOOptions``), read from the TorchRL module's attributes of the same name
    with TorchRL's conventions: the per-head entropy coefficients when the module has them, no
    critic term where TorchRL has none (``_has_critic``), the advantage scale of its value normaliser.
    The one rule mapping an on-policy module to its function's options."""
    m = loss_module
    read = {
        "entropy_bonus": lambda: bool(m.entropy_bonus),
        "entropy_coeff": lambda: entropy_coeff(m),
        "critic_coeff": lambda: m.critic_coeff if getattr(m, "_has_critic", True) else None,
        "normalize_advantage_exclude_dims": lambda: tuple(m.normalize_advantage_exclude_dims),
        "advantage_scale": lambda: gathered.advantage_scale,
    }
    names = options.__optional_keys__ - _NOT_ATTRIBUTES
    return {name: read[name]() if name in read else getattr(m, name) for name in names}


def dist_params(dist_module: ProbabilisticTensorDictModule, td: TensorDictBase) -> dict[str, Any]:
    """The keyword arguments the distribution module reads from ``td``."""
    params = {}
    for dist_key, td_key in zip(dist_module.dist_keys, dist_module.in_keys):
        if isinstance(dist_key, tuple):
            dist_key = dist_key[-1]
        value = td.get(td_key, None)
        if value is None:
            raise KeyError(
                f"The parameters of the distribution were not found: {td_key!r} is missing from the input."
            )
        params[dist_key] = value
    return params


def run_actor(loss_module, td: TensorDictBase, dist_module, params: Any = "current") -> dict[str, Any]:
    """Distribution parameters of the policy on ``td`` (written into ``td`` like TorchRL), with
    the loss module's current parameters (or ``params``)."""
    actor = loss_module.actor_network
    if isinstance(params, str):
        params = getattr(loss_module, "actor_network_params", None)
    with params_context(loss_module, params, actor):
        if dist_module is None:
            return {"": actor.get_dist(td)}
        if isinstance(actor, ProbabilisticTensorDictSequential):
            td = actor.get_dist_params(td)
    return dist_params(dist_module, td)


def run_critic(loss_module, td: TensorDictBase, value_key: Any) -> torch.Tensor:
    """The critic's current ``V(s)`` on ``td``, with gradients to its parameters."""
    critic = loss_module.critic_network
    with params_context(loss_module, getattr(loss_module, "critic_network_params", None), critic):
        out = critic(td)
    value = out.get(value_key, None)
    if value is None:
        raise KeyError(
            f"the key {value_key} was not found in the critic output tensordict. "
            f"Make sure that the 'value_key' passed to {type(loss_module).__name__} is accurate."
        )
    return value


def _as_list(key: Any) -> list:
    return list(key) if isinstance(key, list) else [key]


def flat_in_keys(loss_module, *, with_critic: bool) -> list:
    """TorchRL's ``in_keys`` of ``A2CLoss``/``ReinforceLoss``, with lists of action keys (composite
    policies) flattened: TorchRL puts the list itself in a ``set`` and fails."""
    tk = loss_module.tensor_keys
    actor_in = list(loss_module.actor_network.in_keys)
    keys = [*_as_list(tk.action), ("next", tk.reward), ("next", tk.done), ("next", tk.terminated),
            *actor_in, *[("next", *k) if isinstance(k, tuple) else ("next", k) for k in actor_in]]
    if with_critic:
        keys.extend(loss_module.critic_network.in_keys)
    return list(dict.fromkeys(_unravel(keys)))


def _set_params(inputs: TensorDictBase, root: tuple, params: dict[str, Any]) -> None:
    for name, value in params.items():
        inputs.set(root + (name,), value)


def advantage_scale(loss_module, td: TensorDictBase, estimated: bool) -> torch.Tensor | None:
    """The ``advantage_norm`` (a ``ValueNorm``) scale, its statistics updated first with the
    valid value-target rows when the advantage was just estimated in training mode (TorchRL's
    ``_scale_advantage``); the numbers come from the functional normaliser."""
    norm = getattr(loss_module, "advantage_norm", None)
    if norm is None:
        return None
    fn, stats = functional_normalizer(norm)
    if estimated and loss_module.training:
        key = loss_module.tensor_keys.value_target
        target = td.get(key, None)
        if target is None:
            raise KeyError(
                f"advantage_norm requires the value target ({key!r}) in the input tensordict to update the return "
                "statistics; the value estimator is expected to write it."
            )
        mask = loss_mask(type(loss_module).__name__, td, loss_module.loss_mask_key)
        if mask is not None:
            while mask.ndim >= target.ndim and mask.shape[-1] == 1:
                mask = mask.squeeze(-1)
            target = target[mask]
        stats = fn.update(stats, target)
        store_statistics(norm, stats)
    return fn.scale(stats)


def on_policy_inputs(
    loss_module,
    tensordict: TensorDictBase,
    dist_module,
    *,
    with_critic: bool,
    detach_critic_input: bool = False,
    old_actor: bool = False,
    proximal: bool = False,
) -> Gathered:
    """Run the value estimator (when the advantage is absent), the actor and the critic on a
    shallow copy of ``tensordict``; return the entries the on-policy functional losses read and
    the advantage scale (``advantage_norm``).

    ``old_actor`` also reads the behaviour policy's distribution parameters from the caller's
    data (the KL-penalty loss); ``proximal`` runs the actor with its target parameters (no
    gradient: TorchRL's ``delay_actor``); ``detach_critic_input`` is TorchRL's ``separate_losses``.
    """
    tk = loss_module.tensor_keys
    td = tensordict.copy()
    estimated = td.get(tk.advantage, None) is None
    if estimated:
        if loss_module.critic_network is None:
            raise RuntimeError("Critic network is not specified, cannot compute advantage within forward.")
        run_value_estimator(loss_module, td)
    scale = advantage_scale(loss_module, td, estimated)
    old_params = dist_params(dist_module, tensordict) if old_actor and not proximal else None
    prox_params = None
    if proximal:
        if dist_module is None:
            raise NotImplementedError(
                f"{type(loss_module).__name__}: delay_actor needs an actor built from tensordict.nn probabilistic "
                "modules (its distribution parameters are rebuilt with the target parameters)"
            )
        with torch.no_grad():
            prox_params = run_actor(loss_module, td.copy(), dist_module, loss_module.target_actor_network_params)
    actor_output = run_actor(loss_module, td, dist_module)
    dist_class = loss_module._dist_class
    inputs = td.select(*_selected_keys(loss_module), strict=False)
    if dist_module is None:  # an actor run as a whole: hand its distribution over as built
        dist_class = functools.partial(_prebuilt, actor_output.pop(""))
        inputs.set(ACTOR_OUTPUT, TensorDict({}, batch_size=inputs.batch_size))
    _set_params(inputs, ACTOR_OUTPUT, actor_output)
    if old_params is not None:
        _set_params(inputs, OLD_ACTOR_OUTPUT, old_params)
    if prox_params is not None:
        _set_params(inputs, PROXIMAL_ACTOR_OUTPUT, prox_params)
    if with_critic:
        critic_td = td.detach() if detach_critic_input else td
        if loss_module.clip_value is not None and not (isinstance(loss_module.clip_value, bool)):
            old_value = critic_td.get(tk.value, None)
            if old_value is None:
                raise KeyError(
                    f"clip_value is set to {loss_module.clip_value}, but the key {tk.value} was not found in the input "
                    f"tensordict. Make sure that the value_key passed to {_short_name(loss_module)} exists in the "
                    "input tensordict."
                )
            inputs.set(OLD_VALUE, old_value)
        inputs.set(tk.value, run_critic(loss_module, critic_td, tk.value))
    return Gathered(inputs, dist_class, scale)


def _selected_keys(loss_module) -> list:
    """The entries handed over from the data (cached until ``set_keys`` changes them); a key
    under another selected key is dropped (selecting both would keep only the inner one)."""
    tk = loss_module.tensor_keys
    signature = (tuple(vars(tk).values()), loss_module.loss_mask_key)
    cached = loss_module.__dict__.get("_tf_selected")
    if cached is None or cached[0] != signature:
        wanted = _unravel([*_as_list(tk.action), *_as_list(tk.sample_log_prob), tk.advantage, tk.value_target,
                           *loss_module._loss_mask_keys()])
        wanted = [k for k in wanted if not any(_within(k, other) for other in wanted if other != k)]
        cached = loss_module.__dict__["_tf_selected"] = (signature, wanted)
    return cached[1]


def _within(key: Any, other: Any) -> bool:
    """``key`` lies under ``other`` (selecting both would keep only ``key``)."""
    key = key if isinstance(key, tuple) else (key,)
    other = other if isinstance(other, tuple) else (other,)
    return len(other) < len(key) and key[: len(other)] == other


def _short_name(loss_module) -> str:
    name = type(loss_module).__name__
    return {"A2CLoss": "A2C", "ReinforceLoss": "Reinforce"}.get(name, "PPO")


def on_policy_keys(loss_module, cls: type[OnPolicyKeys], **extra: Any) -> OnPolicyKeys:
    """Translate the module's ``tensor_keys`` into the functional loss's keys object (cached
    until ``set_keys`` changes them)."""
    tk = loss_module.tensor_keys
    names = dict(
        action=tk.action,
        sample_log_prob=tk.sample_log_prob,
        actor_output=ACTOR_OUTPUT,
        advantage=tk.advantage,
        value_target=tk.value_target,
        value=tk.value,
        old_value=OLD_VALUE,
        reward=tk.reward,
        done=tk.done,
        terminated=tk.terminated,
        **extra,
    )
    signature = (cls, tuple(names.values()))
    cached = loss_module.__dict__.get("_tf_keys")
    if cached is None or cached[0] != signature:
        cached = loss_module.__dict__["_tf_keys"] = (signature, cls(**{k: _unravel(v) for k, v in names.items()}))
    return cached[1]


def _unravel(key: Any) -> Any:
    from tensordict.utils import unravel_key

    if isinstance(key, list):
        return [unravel_key(k) for k in key]
    return unravel_key(key)


def check_single_key(loss_name: str, key: Any, what: str) -> None:
    """Used by the off-policy SAC module (which has no composite support yet)."""
    if isinstance(key, list):
        raise NotImplementedError(f"{loss_name}: several {what} keys (composite actions) are not supported yet")

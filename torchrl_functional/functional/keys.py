"""Entry names read by the TensorDict losses, one small frozen object per loss family.

Defaults are TorchRL 0.14's names. Rename any entry with ``dataclasses.replace`` or
the ``replace`` shortcut, in the spirit of TorchRL's ``set_keys``::

    keys = PPOKeys().replace(advantage="my_advantage", sample_log_prob=("agents", "lp"))
    clip_ppo_loss(td, Categorical, keys=keys)

``reward``, ``done`` and ``terminated`` are read under ``"next"`` (TorchRL's layout);
``value`` is read at the root for ``V(s)`` and under ``"next"`` for ``V(s')``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

NestedKey = str | tuple[str, ...]

__all__ = ["NestedKey", "OnPolicyKeys", "PPOKeys", "A2CKeys", "ReinforceKeys", "resolve_keys"]

K = TypeVar("K", bound="_Keys")


@dataclass(frozen=True)
class _Keys:
    def replace(self: K, **changes: NestedKey) -> K:
        """A copy with some entry names changed (unknown names raise ``TypeError``)."""
        return dataclasses.replace(self, **changes)

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            ok = isinstance(value, str) or (
                isinstance(value, tuple) and value and all(isinstance(v, str) for v in value)
            )
            if not ok:
                raise TypeError(
                    f"{type(self).__name__}.{field.name} must be a string or a tuple of strings, got {value!r}"
                )


@dataclass(frozen=True)
class OnPolicyKeys(_Keys):
    """Entries shared by the on-policy losses (PPO family, A2C, REINFORCE).

    Attributes:
        action: the action taken (constant).
        sample_log_prob: behaviour-policy log-prob of ``action`` (constant), ``[*B]``.
        actor_output: sub-TensorDict of keyword arguments for ``dist_class`` computed by the
            *current* policy (e.g. ``{"loc", "scale"}`` or ``{"logits"}``), with gradients.
        log_prob: alternatively, the current policy's log-prob of ``action``, ``[*B]``.
        entropy: optional precomputed current-policy entropy, ``[*B]`` (used as given).
        advantage: ``[*B, 1]``; computed from rewards and values when absent.
        value_target: ``[*B, 1]`` critic target; computed with the advantage when absent.
        value: the critic's current ``V(s)``, ``[*B, 1]`` (``("next", value)`` holds ``V(s')``).
        old_value: ``V(s)`` at collection time, for ``clip_value``.
        reward, done, terminated: read under ``"next"``, ``[*B, 1]``.
    """

    action: NestedKey = "action"
    sample_log_prob: NestedKey = "action_log_prob"
    actor_output: NestedKey = "actor_output"
    log_prob: NestedKey = "log_prob"
    entropy: NestedKey = "entropy"
    advantage: NestedKey = "advantage"
    value_target: NestedKey = "value_target"
    value: NestedKey = "state_value"
    old_value: NestedKey = "old_state_value"
    reward: NestedKey = "reward"
    done: NestedKey = "done"
    terminated: NestedKey = "terminated"


@dataclass(frozen=True)
class PPOKeys(OnPolicyKeys):
    """:class:`OnPolicyKeys` plus ``old_actor_output``: the behaviour policy's distribution
    parameters, read by :func:`~torchrl_functional.functional.klpen_ppo_loss` for ``KL(pi_old || pi)``."""

    old_actor_output: NestedKey = "old_actor_output"


@dataclass(frozen=True)
class A2CKeys(OnPolicyKeys):
    """Entries read by :func:`~torchrl_functional.functional.a2c_loss` (see :class:`OnPolicyKeys`)."""


@dataclass(frozen=True)
class ReinforceKeys(OnPolicyKeys):
    """Entries read by :func:`~torchrl_functional.functional.reinforce_loss` (see :class:`OnPolicyKeys`)."""


def resolve_keys(keys: Any, cls: type[K], loss: str) -> K:
    """Accept ``None`` (defaults), an instance of ``cls`` or a mapping of renamed entries."""
    if keys is None:
        return cls()
    if isinstance(keys, cls):
        return keys
    if isinstance(keys, Mapping):
        try:
            return cls(**keys)
        except TypeError as err:
            raise TypeError(f"{loss}: keys: {err}") from err
    raise TypeError(f"{loss}: keys: expected {cls.__name__}, a mapping or None, got {type(keys).__name__}")

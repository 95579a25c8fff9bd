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

__all__ = [
    "NestedKey", "OnPolicyKeys", "PPOKeys", "A2CKeys", "ReinforceKeys", "resolve_keys",
    "OffPolicyKeys", "DQNKeys", "DDPGKeys", "TD3Keys", "SACKeys", "SACV1Keys", "DiscreteSACKeys", "IQLKeys",
    "CQLKeys", "DiscreteCQLKeys",
]

K = TypeVar("K", bound="_Keys")


@dataclass(frozen=True)
class _Keys:
    def replace(self: K, **changes: NestedKey) -> K:
        """A copy with some entry names changed (unknown names raise ``TypeError``)."""
        return dataclasses.replace(self, **changes)

    #: fields that may name several entries (a list of keys), e.g. the heads of a composite action
    _MULTI = frozenset()

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, list) and field.name in self._MULTI:
                ok = bool(value) and all(_is_key(v) for v in value)
            else:
                ok = _is_key(value)
            if not ok:
                several = " (or a non-empty list of them)" if field.name in self._MULTI else ""
                raise TypeError(
                    f"{type(self).__name__}.{field.name} must be a string or a tuple of strings{several}, got {value!r}"
                )


def _is_key(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, tuple) and bool(value) and all(isinstance(v, str) for v in value))


@dataclass(frozen=True)
class OnPolicyKeys(_Keys):
    """Entries shared by the on-policy losses (PPO family, A2C, REINFORCE).

    Attributes:
        action: the action taken (constant). A composite policy reads the list of its heads'
            actions (TorchRL's ``set_keys(action=[...])``), or one key holding them all.
        sample_log_prob: behaviour-policy log-prob of ``action`` (constant), ``[*B]``. A
            composite policy reads a list of per-head log-probs (``"<head>_log_prob"``, as a
            ``ProbabilisticActor`` writes them), or one summed log-prob.
        actor_output: sub-TensorDict of keyword arguments for ``dist_class`` computed by the
            *current* policy (e.g. ``{"loc", "scale"}`` or ``{"logits"}``), with gradients; or a
            list of entries, each passed as the keyword named by its last key element (the
            layout a ``ProbabilisticActor`` writes: ``["loc", "scale"]`` at the root).
        log_prob: alternatively, the current policy's log-prob of ``action``, ``[*B]``.
        entropy: optional precomputed current-policy entropy, ``[*B]`` (used as given).
        advantage: ``[*B, 1]``; computed from rewards and values when absent.
        value_target: ``[*B, 1]`` critic target; computed with the advantage when absent.
        value: the critic's current ``V(s)``, ``[*B, 1]`` (``("next", value)`` holds ``V(s')``).
        old_value: ``V(s)`` at collection time, for ``clip_value``.
        reward, done, terminated: read under ``"next"``, ``[*B, 1]``.
    """

    _MULTI = frozenset({"action", "sample_log_prob", "actor_output", "old_actor_output", "proximal_actor_output"})

    action: NestedKey | list[NestedKey] = "action"
    sample_log_prob: NestedKey | list[NestedKey] = "action_log_prob"
    actor_output: NestedKey | list[NestedKey] = "actor_output"
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
    """:class:`OnPolicyKeys` plus the entries only the PPO family reads.

    Attributes:
        old_actor_output: the behaviour policy's distribution parameters, read by
            :func:`~torchrl_functional.functional.klpen_ppo_loss` for ``KL(pi_old || pi)``
            (a sub-TensorDict or a list of entries, as ``actor_output``).
        proximal_actor_output: optional parameters of a *proximal* policy (TorchRL's
            ``delay_actor``, decoupled PPO): when present the trust region acts on
            ``pi / pi_prox`` and the surrogate is weighted by ``pi_prox / pi_behav`` (constants).
    """

    old_actor_output: NestedKey | list[NestedKey] = "old_actor_output"
    proximal_actor_output: NestedKey | list[NestedKey] = "proximal_actor_output"


@dataclass(frozen=True)
class A2CKeys(OnPolicyKeys):
    """Entries read by :func:`~torchrl_functional.functional.a2c_loss` (see :class:`OnPolicyKeys`)."""


@dataclass(frozen=True)
class ReinforceKeys(OnPolicyKeys):
    """Entries read by :func:`~torchrl_functional.functional.reinforce_loss` (see :class:`OnPolicyKeys`)."""


#: frozen default keys of each class of this module (filled once at import: never mutated later,
#: so ``torch.compile`` guards on it hold)
_DEFAULTS: dict[type, Any] = {}


def resolve_keys(keys: Any, cls: type[K], loss: str) -> K:
    """Accept ``None`` (defaults), an instance of ``cls`` or a mapping of renamed entries."""
    if keys is None:
        default = _DEFAULTS.get(cls)
        return cls() if default is None else default
    if isinstance(keys, cls):
        return keys
    if isinstance(keys, Mapping):
        try:
            return cls(**keys)
        except TypeError as err:
            raise TypeError(f"{loss}: keys: {err}") from err
    raise TypeError(f"{loss}: keys: expected {cls.__name__}, a mapping or None, got {type(keys).__name__}")


# ----------------------------------------------------------------------------- off-policy
# Entries holding network outputs follow TorchRL's layout: a single critic ``[*B, 1]``, a
# log-prob ``[*B]``, a Q-ensemble ``[E, *B, F]`` in a TensorDict without batch dimensions
# (ensemble first, as TorchRL's vmapped critics return it) or ``[*B, E, F]`` in TorchRL's
# ``[*B]``-batched replay data: the ensemble dimension follows the batch dimensions of the
# TensorDict holding the entry. An entry named ``x`` is read at the root for the current
# state and under ``("next", x)`` for the next state, as ``reward``/``done``/``terminated`` are.


@dataclass(frozen=True)
class OffPolicyKeys(_Keys):
    """Entries shared by the off-policy losses.

    Attributes:
        action: the replayed action (constant).
        reward, done, terminated: read under ``"next"``, ``[*B, 1]``.
        priority_weight: importance weights of a prioritized replay buffer, ``[*B]``.
        steps_to_next_obs: n-step data (TorchRL's ``MultiStep``): the integer number of steps
            from each sample to the observation its target bootstraps from, ``[*B]``; the
            sample is discounted by ``gamma ** steps_to_next_obs``. Absent: one step.
    """

    action: NestedKey = "action"
    reward: NestedKey = "reward"
    done: NestedKey = "done"
    terminated: NestedKey = "terminated"
    priority_weight: NestedKey = "priority_weight"
    steps_to_next_obs: NestedKey = "steps_to_next_obs"


@dataclass(frozen=True)
class DQNKeys(OffPolicyKeys):
    """Entries read by :func:`~torchrl_functional.functional.dqn_loss`.

    Attributes:
        action_value: ``Q(s, .)`` ``[*B, N]`` (online, with gradients); under ``"next"``,
            ``Q_target(s', .)`` ``[*B, N]`` (detached inside).
        online_action_value: under ``"next"``, ``Q(s', .)`` with the online parameters,
            ``[*B, N]``: picks the bootstrap action for double DQN (detached inside).
    """

    action_value: NestedKey = "action_value"
    online_action_value: NestedKey = "online_action_value"


@dataclass(frozen=True)
class DDPGKeys(OffPolicyKeys):
    """Entries read by :func:`~torchrl_functional.functional.ddpg_loss`.

    Attributes:
        state_action_value: ``Q(s, a)`` ``[*B, 1]`` (with gradients); under ``"next"``,
            ``Q_target(s', pi_target(s'))`` ``[*B, 1]`` (detached inside).
        state_action_value_actor: ``Q(s, pi(s))`` ``[*B, 1]``, computed with the critic's
            parameters detached so that ``loss_actor`` trains the actor only.
    """

    state_action_value: NestedKey = "state_action_value"
    state_action_value_actor: NestedKey = "state_action_value_actor"


@dataclass(frozen=True)
class TD3Keys(DDPGKeys):
    """Entries read by :func:`~torchrl_functional.functional.td3_loss`: as :class:`DDPGKeys`
    with ensembles ``[E, *B, 1]``; ``("next", state_action_value)`` is ``Q_target_i`` at the
    smoothed target action (see :func:`~torchrl_functional.functional.td3_target_action`)."""


@dataclass(frozen=True)
class SACKeys(DDPGKeys):
    """Entries read by :func:`~torchrl_functional.functional.sac_loss`.

    Attributes:
        state_action_value: ``Q_i(s, a)`` ``[E, *B, 1]`` (with gradients); under ``"next"``,
            ``Q_target_i(s', a')`` with ``a' ~ pi(s')`` (detached inside).
        state_action_value_actor: ``Q_i(s, a~)`` ``[E, *B, 1]`` at a reparameterised sample
            ``a~ ~ pi(s)``, with the critic's parameters detached.
        log_prob: ``log pi(a~ | s)`` ``[*B]`` (with gradients); under ``"next"``,
            ``log pi(a' | s')`` (detached inside).
    """

    log_prob: NestedKey = "log_prob"


@dataclass(frozen=True)
class SACV1Keys(SACKeys):
    """Entries read by :func:`~torchrl_functional.functional.sac_v1_loss` (SAC with a value network).

    Attributes:
        state_action_value: ``Q(s, a)`` ``[*B, 1]`` of the critic each sample is assigned to
            (with gradients; TorchRL splits the batch in ``E`` equal chunks, one per critic).
        value: ``V(s)`` ``[*B, 1]`` (with gradients); under ``"next"``, ``V_target(s')``
            (detached inside).
        target_state_action_value: ``Q_target_i(s, a^)`` ``[E, *B, 1]`` at ``a^ ~ pi_target(s)``
            (detached inside).
        target_log_prob: ``log pi_target(a^ | s)`` ``[*B]`` (detached inside).
        state_action_value_actor, log_prob: the actor term, as :class:`SACKeys`.
    """

    value: NestedKey = "state_value"
    target_state_action_value: NestedKey = "target_state_action_value"
    target_log_prob: NestedKey = "target_log_prob"


@dataclass(frozen=True)
class DiscreteSACKeys(OffPolicyKeys):
    """Entries read by :func:`~torchrl_functional.functional.discrete_sac_loss`.

    Attributes:
        action_value: ``Q_i(s, .)`` ``[E, *B, N]`` (with gradients); under ``"next"``,
            ``Q_target_i(s', .)`` (detached inside).
        logits: policy logits at ``s`` ``[*B, N]`` (with gradients); under ``"next"``, at ``s'``
            (detached inside).
    """

    action_value: NestedKey = "action_value"
    logits: NestedKey = "logits"


@dataclass(frozen=True)
class IQLKeys(OffPolicyKeys):
    """Entries read by :func:`~torchrl_functional.functional.iql_loss` (and the discrete variant).

    Attributes:
        state_action_value: ``Q_i(s, a)`` ``[E, *B, 1]`` (with gradients); for
            :func:`discrete_iql_loss` ``Q_i(s, .)`` ``[E, *B, N]``.
        target_state_action_value: the same with the target parameters (detached inside).
        value: ``V(s)`` ``[*B, 1]`` (with gradients); under ``"next"``, ``V(s')`` (detached inside).
        log_prob: ``log pi(a | s)`` of the replayed action ``[*B]`` (with gradients).
    """

    state_action_value: NestedKey = "state_action_value"
    target_state_action_value: NestedKey = "target_state_action_value"
    value: NestedKey = "state_value"
    log_prob: NestedKey = "log_prob"


@dataclass(frozen=True)
class CQLKeys(SACKeys):
    """Entries read by :func:`~torchrl_functional.functional.cql_loss` (see :class:`SACKeys`), plus
    the conservative penalty's Q-values at ``K`` sampled actions and the behaviour-cloning terms.

    Attributes:
        cql_random_value: ``Q_i(s, u)``, ``u ~ U(-1, 1)``, ``[E, *B, K, 1]`` (with gradients).
        cql_current_value: ``Q_i(s, a_k)``, ``a_k ~ pi(s)``, ``[E, *B, K, 1]`` (with gradients).
        cql_current_log_prob: ``log pi(a_k | s)`` ``[*B, K]`` (detached inside).
        cql_next_value: ``Q_i(s', a'_k)``, ``a'_k ~ pi(s')``, ``[E, *B, K, 1]`` (with gradients).
        cql_next_log_prob: ``log pi(a'_k | s')`` ``[*B, K]`` (detached inside).
        bc_log_prob: ``log pi(a | s)`` of the replayed action ``[*B]`` (with gradients).
        bc_sample_log_prob: ``log pi(a~ | s)`` of the sample used by the behaviour-cloning
            loss ``[*B]``; defaults to ``log_prob``.
    """

    cql_random_value: NestedKey = "cql_random_value"
    cql_current_value: NestedKey = "cql_current_value"
    cql_current_log_prob: NestedKey = "cql_current_log_prob"
    cql_next_value: NestedKey = "cql_next_value"
    cql_next_log_prob: NestedKey = "cql_next_log_prob"
    bc_log_prob: NestedKey = "bc_log_prob"
    bc_sample_log_prob: NestedKey = "bc_sample_log_prob"


@dataclass(frozen=True)
class DiscreteCQLKeys(DQNKeys):
    """Entries read by :func:`~torchrl_functional.functional.discrete_cql_loss`: ``Q(s, .)``
    and, under ``"next"``, the bootstrap ``Q(s', .)`` ``[*B, N]`` (see :class:`DQNKeys`)."""


_DEFAULTS.update({cls: cls() for cls in (OnPolicyKeys, PPOKeys, A2CKeys, ReinforceKeys, OffPolicyKeys, DQNKeys,
                                         DDPGKeys, TD3Keys, SACKeys, DiscreteSACKeys, IQLKeys, CQLKeys,
                                         DiscreteCQLKeys)})


# ----------------------------------------------------------------------------- imitation: GAIL


@dataclass(frozen=True)
class GAILKeys(_Keys):
    """Entries read by :func:`~torchrl_functional.functional.gail_loss`.

    Attributes:
        expert_pred: the discriminator's output on the expert's ``(s, a)``, a probability
            ``[*B, 1]`` (TorchRL's ``discriminator_pred``, ``"d_logits"``, on the expert half).
        collector_pred: its output on the collector's ``(s, a)``, ``[*B, 1]``.
        gp_gradient: the gradient of the discriminator's output at the interpolated
            ``(s, a)`` w.r.t. ``(s, a)``, concatenated on the last dim ``[*B, D_s + D_a]``
            (computed with ``create_graph=True``), read with ``use_grad_penalty``.
    """

    expert_pred: NestedKey = "expert_pred"
    collector_pred: NestedKey = "collector_pred"
    gp_gradient: NestedKey = "gp_gradient"


_DEFAULTS[GAILKeys] = GAILKeys()
__all__ += ["GAILKeys"]
# ----------------------------------------------------------------------------- distributional DQN, QMixer, TQC


@dataclass(frozen=True)
class DistributionalDQNKeys(OffPolicyKeys):
    """Entries read by :func:`~torchrl_functional.functional.distributional_dqn_loss`.

    Attributes:
        action_value: ``log p(s, ., .)``, the online network's log-probabilities over the
            support for each action, ``[*B, A, N]`` (with gradients); under ``"next"``, the
            target network's at ``s'`` (detached inside).
        action: the replayed action at the root; under ``"next"``, the bootstrap action
            ``a*`` the online network picks at ``s'`` (same format).
    """

    action_value: NestedKey = "action_value"


@dataclass(frozen=True)
class QMixerKeys(OffPolicyKeys):
    """Entries read by :func:`~torchrl_functional.functional.qmixer_loss` (TorchRL's ``QMixerLoss`` names).

    Attributes:
        global_value: the mixer's output over the agents' chosen ``Q_i(s, a_i)`` ``[*B, 1]``
            (with gradients); under ``"next"``, the target mixer's output over the agents'
            ``max_a Q_target_i(s', a)`` (detached inside).
        local_value, action_value, action: the agents' entries (``("agents", ...)``, ``[*B, n_agents, .]``)
            the drop-in module reads and feeds to the mixer; the function does not read them.
    """

    global_value: NestedKey = "chosen_action_value"
    local_value: NestedKey = ("agents", "chosen_action_value")
    action_value: NestedKey = ("agents", "action_value")
    action: NestedKey = ("agents", "action")


@dataclass(frozen=True)
class TQCKeys(SACKeys):
    """Entries read by :func:`~torchrl_functional.functional.tqc_loss` (see :class:`SACKeys`); the
    critics output ``K`` quantiles: ``state_action_value`` and ``state_action_value_actor`` are
    ``[E, *B, K]``, and so is ``("next", "state_action_value")``."""


_DEFAULTS.update({cls: cls() for cls in (DistributionalDQNKeys, QMixerKeys, TQCKeys)})
__all__ += ["DistributionalDQNKeys", "QMixerKeys", "TQCKeys"]
# ----------------------------------------------------------------------------- exploration (RND)


@dataclass(frozen=True)
class RNDKeys(_Keys):
    """Entries read by :func:`~torchrl_functional.functional.rnd_loss`.

    Attributes:
        predictor_features: the trainable predictor's features of the (normalised) next
            observation, ``[*B, F]`` (with gradients).
        target_features: the frozen random target network's features, ``[*B, F]`` (detached inside).
    """

    predictor_features: NestedKey = "predictor_features"
    target_features: NestedKey = "target_features"


__all__ += ["RNDKeys"]
_DEFAULTS[RNDKeys] = RNDKeys()
# ----------------------------------------------------------------------------- TD3+BC, REDQ, CrossQ


@dataclass(frozen=True)
class TD3BCKeys(TD3Keys):
    """Entries read by :func:`~torchrl_functional.functional.td3bc_loss`: as :class:`TD3Keys`, plus
    the actor's action.

    Attributes:
        action: the replayed (dataset) action ``[*B, A]`` (constant), the behaviour-cloning target.
        action_actor: ``pi(s)`` ``[*B, A]`` (with gradients), the action ``state_action_value_actor``
            was evaluated at.
    """

    action_actor: NestedKey = "action_actor"


@dataclass(frozen=True)
class REDQKeys(SACKeys):
    """Entries read by :func:`~torchrl_functional.functional.redq_loss` (see :class:`SACKeys`).

    Attributes:
        state_action_value: ``Q_i(s, a)`` ``[E, *B, 1]`` (with gradients); under ``"next"``,
            ``Q_target_i(s', a')`` ``[E, *B, 1]`` (only the rows of the critic subset are read).
        critic_subset: the indices of the ``M`` target critics the target takes its minimum
            over, an integer tensor ``[M]``; drawn by the loss when absent.
    """

    critic_subset: NestedKey = "critic_subset"


@dataclass(frozen=True)
class CrossQKeys(SACKeys):
    """Entries read by :func:`~torchrl_functional.functional.crossq_loss`: as :class:`SACKeys`, with
    ``("next", state_action_value)`` computed by the *online* critics (no target networks), in
    the same batch-normalised forward as ``state_action_value``."""


_DEFAULTS.update({cls: cls() for cls in (TD3BCKeys, REDQKeys, CrossQKeys)})
__all__ += ["TD3BCKeys", "REDQKeys", "CrossQKeys"]

"""Entry names read by the DreamerV3 losses (TorchRL 0.14's names by default)."""

from __future__ import annotations

from dataclasses import dataclass

from ..keys import NestedKey, _Keys

__all__ = ["DreamerV3ModelKeys", "DreamerV3ActorKeys", "DreamerV3ValueKeys"]


@dataclass(frozen=True)
class DreamerV3ModelKeys(_Keys):
    """Entries read by :func:`~torchrl_functional.functional.dreamer_v3_model_loss`, all under ``"next"``.

    Attributes:
        reward: the reward model's decoded prediction ``[*B, 1]`` (read when ``reward_two_hot=False``).
        reward_logits: the reward model's logits ``[*B, K]`` (read when ``reward_two_hot=True``).
        true_reward: the observed reward ``[*B, 1]`` (TorchRL's loss renames ``reward`` to it
            before running the world model).
        prior_logits, posterior_logits: the RSSM's categorical logits ``[*B, C, K]``.
        pixels: observed targets of each reconstruction head (a key or a list of keys).
        reco_pixels: the decoder's predictions, paired in order with ``pixels``.
        continue_pred: the continue head's logit ``[*B]`` or ``[*B, 1]``.
        terminated, done: episode ends ``[*B]`` or ``[*B, 1]`` (``terminated`` first, else ``done``).
    """

    _MULTI = frozenset({"pixels", "reco_pixels"})

    reward: NestedKey = "reward"
    reward_logits: NestedKey = "reward_logits"
    true_reward: NestedKey = "true_reward"
    prior_logits: NestedKey = "prior_logits"
    posterior_logits: NestedKey = "posterior_logits"
    pixels: NestedKey | list[NestedKey] = "pixels"
    reco_pixels: NestedKey | list[NestedKey] = "reco_pixels"
    continue_pred: NestedKey = "continue_pred"
    done: NestedKey = "done"
    terminated: NestedKey = "terminated"


@dataclass(frozen=True)
class DreamerV3ActorKeys(_Keys):
    """Entries read by :func:`~torchrl_functional.functional.dreamer_v3_actor_loss` (an imagined
    trajectory ``[*B, T]``, time at dim -2 of every ``[*B, T, 1]`` entry).

    Attributes:
        reward: imagined reward, read under ``"next"``.
        value: ``V`` of the imagined states: under ``"next"`` for the bootstrap ``V(s')``, at the
            root for the REINFORCE baseline ``V(s)``.
        continuation: predicted continuation probabilities, at the root (of ``s``) and under
            ``"next"`` (of ``s'``); optional.
        log_prob: REINFORCE's ``log pi(sg(a) | sg(s))`` of the current policy (with gradients).
        entropy: the current policy's entropy at the imagined states (with gradients).
    """

    reward: NestedKey = "reward"
    value: NestedKey = "state_value"
    continuation: NestedKey = "continuation"
    log_prob: NestedKey = "log_prob"
    entropy: NestedKey = "entropy"


@dataclass(frozen=True)
class DreamerV3ValueKeys(_Keys):
    """Entries read by :func:`~torchrl_functional.functional.dreamer_v3_value_loss` and
    :func:`~torchrl_functional.functional.dreamer_v3_replay_value_loss`.

    Attributes:
        value: the critic's decoded value ``[*B, 1]`` (``value_loss="symlog_mse"``).
        value_logits: the critic's logits ``[*B, K]`` (``value_loss="two_hot"``).
        slow_value: the slow (target) critic's decoded value ``[*B, 1]``, read when
            ``slow_critic_regularization`` is on.
        lambda_target: the imagined lambda-return ``[*B, 1]`` (value loss).
        discount_weight: optional cumulative imagination weight ``[*B, 1]`` (value loss).
        reward, done, terminated: replay signals under ``"next"``, ``[*B, T]`` or ``[*B, T, 1]``.
        bootstrap: first imagined return of each replay state, ``[*B, T]`` or ``[*B, T, 1]``.
    """

    value: NestedKey = "state_value"
    value_logits: NestedKey = "state_value_logits"
    slow_value: NestedKey = "slow_state_value"
    lambda_target: NestedKey = "lambda_target"
    discount_weight: NestedKey = "discount_weight"
    reward: NestedKey = "reward"
    done: NestedKey = "done"
    terminated: NestedKey = "terminated"
    bootstrap: NestedKey = "bootstrap"

"""Entry names read by the model-based losses (TorchRL 0.14's names).

Rename entries with ``replace`` as for the other keys objects::

    keys = DreamerModelKeys().replace(pixels="observation", reco_pixels="reco_observation")
    dreamer_model_loss(td, keys=keys)
"""

from __future__ import annotations

from dataclasses import dataclass

from ..keys import _DEFAULTS, NestedKey, _Keys

__all__ = ["DreamerModelKeys", "DreamerActorKeys", "DreamerValueKeys"]


@dataclass(frozen=True)
class DreamerModelKeys(_Keys):
    """Entries read by :func:`~torchrl_functional.functional.dreamer_model_loss`, all under
    ``"next"`` (the world model's outputs for the next step, TorchRL's layout).

    Attributes:
        reward: the reward model's prediction ``[*B, 1]`` (with gradients).
        true_reward: the observed reward ``[*B, 1]`` (TorchRL's module renames ``("next",
            "reward")`` to it before running the world model).
        prior_mean, prior_std: the RSSM prior's Gaussian ``[*B, S]`` (with gradients).
        posterior_mean, posterior_std: the RSSM posterior's Gaussian ``[*B, S]`` (with gradients).
        pixels: the observed image ``[*B, C, H, W]``.
        reco_pixels: the decoder's reconstruction, same shape (with gradients).
    """

    reward: NestedKey = "reward"
    true_reward: NestedKey = "true_reward"
    prior_mean: NestedKey = "prior_mean"
    prior_std: NestedKey = "prior_std"
    posterior_mean: NestedKey = "posterior_mean"
    posterior_std: NestedKey = "posterior_std"
    pixels: NestedKey = "pixels"
    reco_pixels: NestedKey = "reco_pixels"


@dataclass(frozen=True)
class DreamerActorKeys(_Keys):
    """Entries read by :func:`~torchrl_functional.functional.dreamer_actor_loss`, all under
    ``"next"`` along an imagined trajectory ``[*B, H]``.

    Attributes:
        reward: the imagined reward ``[*B, H, 1]`` (with gradients through the rollout).
        value: the value model at the next imagined state, ``[*B, H, 1]`` (with gradients
            through the rollout; the value model's parameters held out).
        done, terminated: bool ``[*B, H, 1]`` (TorchRL's module passes all ``False``);
            ``terminated`` defaults to ``done``.
    """

    reward: NestedKey = "reward"
    value: NestedKey = "state_value"
    done: NestedKey = "done"
    terminated: NestedKey = "terminated"


@dataclass(frozen=True)
class DreamerValueKeys(_Keys):
    """Entries read by :func:`~torchrl_functional.functional.dreamer_value_loss`.

    Attributes:
        value: the value model's prediction ``[*B, H, 1]`` (with gradients).
        lambda_target: the actor loss's lambda-return ``[*B, H, 1]`` (used as given:
            :func:`~torchrl_functional.functional.dreamer_actor_loss` returns it detached).
    """

    value: NestedKey = "state_value"
    lambda_target: NestedKey = "lambda_target"


_DEFAULTS.update({cls: cls() for cls in (DreamerModelKeys, DreamerActorKeys, DreamerValueKeys)})


@dataclass(frozen=True)
class WorldModelKeys(_Keys):
    """Entries read by :func:`~torchrl_functional.functional.world_model_loss`.

    Attributes:
        reward, true_reward: under ``"next"``: the reward head's prediction and the observed reward.
        done, true_done: under ``"next"``: the done head's prediction (float) and the observed flag.
        observation, reconstructed_observation: the observation and the decoder's reconstruction.
        predicted_latent, target_latent: the dynamics model's next latent and its target.
    """

    reward: NestedKey = "reward"
    true_reward: NestedKey = "true_reward"
    done: NestedKey = "done"
    true_done: NestedKey = "true_done"
    observation: NestedKey = "observation"
    reconstructed_observation: NestedKey = "reconstructed_observation"
    predicted_latent: NestedKey = "predicted_latent"
    target_latent: NestedKey = "target_latent"


__all__ += ["WorldModelKeys"]
_DEFAULTS[WorldModelKeys] = WorldModelKeys()

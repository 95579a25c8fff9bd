"""Multi-agent PPO (MAPPO, IPPO) as pure functions of a TensorDict of precomputed outputs.

Yu et al. 2022, "The Surprising Effectiveness of PPO in Cooperative Multi-Agent Games"
(arXiv 2103.01955); de Witt et al. 2020, "Is Independent Learning All You Need in the
StarCraft Multi-Agent Challenge?" (arXiv 2011.09533). The clipped-surrogate loss of
:func:`~torchrl_functional.functional.clip_ppo_loss` on per-agent entries ``[*B, T, N, ...]``
with TorchRL 0.14's ``MAPPOLoss`` defaults: team rewards broadcast to the agents by the
``"magae"`` estimator, the advantage standardised per agent, and an optional value
normaliser (PopArt, running, percentile) whose statistics are an input and whose updated
statistics are the ``"value_norm"`` output. The two losses differ only in the critic the
caller ran (centralised for MAPPO, per-agent for IPPO).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Unpack

from tensordict import TensorDict, TensorDictBase

from ..errors import HyperparameterError
from ._terms import PPO_DEFAULTS, PPOOptions
from ._validation import keyword_options
from .keys import NestedKey, PPOKeys
from .ppo import DistClass, Number, _clip_ppo
from .value_norm import ValueNormalizer

__all__ = ["mappo_loss", "ippo_loss", "MultiAgentPPOOptions"]


def _check_value_norm(name: str, value_norm: Any, stats: Any) -> None:
    if value_norm is None:
        return
    if not (callable(getattr(value_norm, "update", None)) and callable(getattr(value_norm, "normalize", None))):
        raise HyperparameterError(
            name, "value_norm",
            f"expected a ValueNormalizer (or an object with update(stats, x) and normalize(stats, x)), "
            f"got {type(value_norm).__name__}",
        )
    if not isinstance(stats, TensorDictBase):
        raise HyperparameterError(
            name, "value_norm_stats",
            "value_norm needs its statistics as a TensorDict (value_norm.init(shape) gives initial ones)",
        )


class MultiAgentPPOOptions(PPOOptions, total=False):
    """:class:`~torchrl_functional.functional.PPOOptions` and the options of the multi-agent
    losses (:func:`mappo_loss`, :func:`ippo_loss`), declared once.

    Attributes:
        clip_epsilon: as :func:`~torchrl_functional.functional.clip_ppo_loss` (default ``0.2``).
        value_norm: a :class:`~torchrl_functional.functional.ValueNormalizer` (or any object with
            ``update(stats, x) -> stats`` and ``normalize(stats, x) -> x``), or ``None`` (default).
        value_norm_stats: its statistics (TensorDict without batch dims, TorchRL's buffer
            names, ``[*F]``), required with ``value_norm``; not modified.
    """

    clip_epsilon: Number | tuple[float, float]
    value_norm: ValueNormalizer | None
    value_norm_stats: TensorDictBase | None


#: the multi-agent defaults (TorchRL's ``MAPPOLoss``/``IPPOLoss``) over :data:`PPO_DEFAULTS`
MULTI_AGENT_DEFAULTS = {**PPO_DEFAULTS, "value_estimator": "magae", "normalize_advantage": True,
                        "normalize_advantage_exclude_dims": (-2,), "clip_epsilon": 0.2, "value_norm": None,
                        "value_norm_stats": None}


def _multi_agent(name: str, td: TensorDictBase, dist_class: DistClass | None, keys: Any,
                 options: Mapping[str, Any]) -> TensorDict:
    kw = keyword_options(name, options, MULTI_AGENT_DEFAULTS)
    _check_value_norm(name, kw["value_norm"], kw["value_norm_stats"])
    return _clip_ppo(name, td, dist_class, {**kw, "keys": keys})


def mappo_loss(
    td: TensorDictBase,
    dist_class: DistClass | None = None,
    *,
    keys: PPOKeys | Mapping[str, NestedKey] | None = None,
    **options: Unpack[MultiAgentPPOOptions],
) -> TensorDict:
    """Multi-agent clipped PPO with a centralised critic, as TorchRL's ``MAPPOLoss``.

    ``loss_objective`` as :func:`~torchrl_functional.functional.clip_ppo_loss`; the advantage
    is standardised over every dim but the agent dim (``normalize_advantage_exclude_dims``).
    With ``value_norm``, the statistics are first updated with the (detached) value target,
    then the target (detached), ``V(s)`` and the old ``V(s)`` are normalised with the updated
    statistics before the distance, the value clipping and the explained variance; the
    updated statistics are returned as ``"value_norm"`` (feed them to the next call).
    TorchRL updates them on every call, also outside training; so does this function.

    Args:
        td, dist_class, keys: as :func:`~torchrl_functional.functional.clip_ppo_loss`
            (entries ``[*B, N, ...]`` with ``N`` agents).
        **options: :class:`~torchrl_functional.functional.mappo.MultiAgentPPOOptions`:
            ``clip_epsilon``, ``value_norm``, ``value_norm_stats`` and the options of
            :func:`~torchrl_functional.functional.clip_ppo_loss`, with the multi-agent defaults
            ``value_estimator="magae"`` (team signals ``[*B, 1]`` broadcast to the agents),
            ``normalize_advantage=True`` and ``normalize_advantage_exclude_dims=(-2,)``.

    Returns:
        TensorDict with the outputs of :func:`~torchrl_functional.functional.clip_ppo_loss`
        and, with ``value_norm`` and a critic term, ``"value_norm"`` (the new statistics).
    """
    return _multi_agent("mappo_loss", td, dist_class, keys, options)


def ippo_loss(
    td: TensorDictBase,
    dist_class: DistClass | None = None,
    *,
    keys: PPOKeys | Mapping[str, NestedKey] | None = None,
    **options: Unpack[MultiAgentPPOOptions],
) -> TensorDict:
    """Independent multi-agent PPO (per-agent critics), as TorchRL's ``IPPOLoss``.

    The same math as :func:`mappo_loss` (TorchRL's ``IPPOLoss`` is ``MAPPOLoss`` with
    another critic): ``V(s)`` comes from each agent's own critic.

    Args:
        td, dist_class, keys: as :func:`mappo_loss`: entries ``[*B, N, ...]`` of ``N`` agents,
            ``V(s)`` of their own critics.
        **options: as :func:`mappo_loss`
            (:class:`~torchrl_functional.functional.mappo.MultiAgentPPOOptions`; ``value_norm``
            is rarely used with IPPO).

    Returns:
        As :func:`mappo_loss`.
    """
    return _multi_agent("ippo_loss", td, dist_class, keys, options)

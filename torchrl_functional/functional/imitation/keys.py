"""Entry names read by the imitation-learning losses (TorchRL 0.14's names where TorchRL has one).

TorchRL's modules write the prediction over the expert entry of a copy of the input; the
functions read the two from distinct entries (``action`` and ``action_pred``). Rename entries
with ``replace`` as for the other keys objects::

    keys = BCKeys().replace(action="expert_action", pad_mask="action_is_pad")
    bc_loss(td, loss_function="l1", keys=keys)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..keys import NestedKey, _is_key, _Keys

__all__ = ["BCKeys", "DTKeys", "OnlineDTKeys", "ACTKeys", "DiffusionBCKeys"]


@dataclass(frozen=True)
class BCKeys(_Keys):
    """Entries read by :func:`bc_loss`.

    Attributes:
        action: the expert (demonstration) action, ``[*B, *A]`` float, or integer class
            indices ``[*B]``/``[*B, 1]`` for ``loss_function="cross_entropy"`` (constant).
        action_pred: the policy's prediction ``[*B, *A]`` (logits ``[*B, N]`` for
            cross-entropy), with gradients.
        actor_output: sub-TensorDict of keyword arguments for ``dist_class`` (``{"loc",
            "scale"}``, ``{"logits"}``...) of the current policy, for ``loss_function="nll"``.
        pad_mask: optional bool entry marking padded action elements (``True`` = padded),
            ``[*B]`` or ``[*B, H]`` broadcast over the loss's trailing dims; ``None``: no padding.
    """

    action: NestedKey = "action"
    action_pred: NestedKey = "action_pred"
    actor_output: NestedKey = "actor_output"
    pad_mask: NestedKey | None = None

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not (_is_key(value) or (field.name == "pad_mask" and value is None)):
                raise TypeError(f"BCKeys.{field.name} must be a string or a tuple of strings, got {value!r}")


@dataclass(frozen=True)
class DTKeys(_Keys):
    """Entries read by :func:`dt_loss`.

    Attributes:
        action_target: the dataset's action ``[*B, A]`` (detached inside).
        action_pred: the transformer's predicted action ``[*B, A]``, with gradients.
    """

    action_target: NestedKey = "action"
    action_pred: NestedKey = "action_pred"


@dataclass(frozen=True)
class OnlineDTKeys(_Keys):
    """Entries read by :func:`online_dt_loss`.

    Attributes:
        action_target: the dataset's action ``[*B, *A]`` (constant).
        actor_output: sub-TensorDict of keyword arguments for ``dist_class`` (``{"loc",
            "scale"}`` for TorchRL's ``TanhNormal``), with gradients.
    """

    action_target: NestedKey = "action"
    actor_output: NestedKey = "actor_output"


@dataclass(frozen=True)
class ACTKeys(_Keys):
    """Entries read by :func:`act_loss`.

    Attributes:
        action_chunk: the expert action chunk ``[*B, T, A]`` (constant).
        action_pred: the predicted chunk ``[*B, T, A]``, with gradients.
        mu: the CVAE encoder's mean ``[*B, Z]``, with gradients.
        log_var: the CVAE encoder's log-variance ``[*B, Z]``, with gradients.
    """

    action_chunk: NestedKey = ("vla_action", "chunk")
    action_pred: NestedKey = "action_pred"
    mu: NestedKey = "mu"
    log_var: NestedKey = "log_var"


@dataclass(frozen=True)
class DiffusionBCKeys(_Keys):
    """Entries read by :func:`diffusion_bc_loss`.

    Attributes:
        noise: the Gaussian noise ``eps`` added to the clean action, ``[*B, A]`` (constant).
        noise_pred: the score network's prediction of ``eps``, ``[*B, A]``, with gradients.
    """

    noise: NestedKey = "noise"
    noise_pred: NestedKey = "noise_pred"

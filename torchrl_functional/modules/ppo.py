"""Drop-in replacements for TorchRL's PPO loss modules.

Same constructor, keys (``set_keys``), value estimators (``make_value_estimator``),
buffers and outputs as ``torchrl.objectives.PPOLoss``/``ClipPPOLoss``/``KLPENPPOLoss``;
``forward`` runs the networks and the value estimator, then calls the functional loss
of :mod:`torchrl_functional.functional.ppo`, which holds all the math.
"""

from __future__ import annotations

from tensordict import TensorDict, TensorDictBase
from tensordict.nn import dispatch
from torchrl.objectives import ppo as _trl

from ..functional import ppo as F
from ..functional.keys import PPOKeys
from ._binding import FunctionalCallMixin
from ._common import OLD_ACTOR_OUTPUT
from ._onpolicy import (
    check_single_key,
    dist_class_of,
    find_dist_module,
    on_policy_inputs,
    on_policy_keys,
)

__all__ = ["PPOLoss", "ClipPPOLoss", "KLPENPPOLoss"]


class _PPOForward(FunctionalCallMixin):
    """``forward`` shared by the three PPO modules; subclasses pick the functional loss."""

    def _setup_functional(self) -> None:
        name = type(self).__name__
        if self.advantage_norm is not None:
            raise NotImplementedError(f"{name}: advantage_norm (ValueNorm) is not supported yet")
        if self.delay_actor:
            raise NotImplementedError(f"{name}: delay_actor=True is not supported yet")
        if self._entropy_coeff_map is not None:
            raise NotImplementedError(f"{name}: per-head entropy coefficients (composite actions) are not supported yet")
        self._dist_module = find_dist_module(name, self.actor_network)
        self._dist_class = dist_class_of(self._dist_module)

    def _inputs(self, tensordict: TensorDictBase, with_old_actor: bool) -> tuple[TensorDictBase, PPOKeys]:
        check_single_key(type(self).__name__, self.tensor_keys.sample_log_prob, "log-prob")
        inputs = on_policy_inputs(
            self, tensordict, self._dist_module, with_critic=self._has_critic,
            detach_critic_input=self.separate_losses, old_actor=with_old_actor,
        )
        return inputs, on_policy_keys(self, PPOKeys, old_actor_output=OLD_ACTOR_OUTPUT)

    def _common_kwargs(self) -> dict:
        return dict(
            entropy_bonus=self.entropy_bonus,
            samples_mc_entropy=self.samples_mc_entropy,
            entropy_coeff=self.entropy_coeff,
            critic_coeff=self.critic_coeff if self._has_critic else None,
            loss_critic_type=self.loss_critic_type,
            clip_value=self.clip_value,
            normalize_advantage=self.normalize_advantage,
            normalize_advantage_exclude_dims=tuple(self.normalize_advantage_exclude_dims),
            max_importance_ratio=self.max_importance_ratio,
            log_explained_variance=self.log_explained_variance,
            reduction=self.reduction,
            loss_mask_key=self.loss_mask_key,
        )


class PPOLoss(_PPOForward, _trl.PPOLoss):
    """Drop-in ``torchrl.objectives.PPOLoss`` computed by :func:`~torchrl_functional.functional.ppo_loss`."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._setup_functional()

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        inputs, keys = self._inputs(tensordict, with_old_actor=False)
        return F.ppo_loss(inputs, self._dist_class, keys=keys, **self._common_kwargs())


class ClipPPOLoss(_PPOForward, _trl.ClipPPOLoss):
    """Drop-in ``torchrl.objectives.ClipPPOLoss`` computed by :func:`~torchrl_functional.functional.clip_ppo_loss`."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._setup_functional()

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        inputs, keys = self._inputs(tensordict, with_old_actor=False)
        clip_epsilon = (
            (self.clip_epsilon_low, self.clip_epsilon_high) if self._asymmetric_clip else self.clip_epsilon
        )
        return F.clip_ppo_loss(
            inputs, self._dist_class, keys=keys, clip_epsilon=clip_epsilon, **self._common_kwargs()
        )


class KLPENPPOLoss(_PPOForward, _trl.KLPENPPOLoss):
    """Drop-in ``torchrl.objectives.KLPENPPOLoss`` computed by :func:`~torchrl_functional.functional.klpen_ppo_loss`.

    As in TorchRL, ``forward`` updates the ``beta`` buffer in place (from the functional
    loss's ``"beta"`` output, which is not returned, so the output keys are TorchRL's).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._setup_functional()

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        inputs, keys = self._inputs(tensordict, with_old_actor=True)
        out = F.klpen_ppo_loss(
            inputs, self._dist_class, keys=keys, beta=self.beta, dtarg=self.dtarg,
            increment=self.increment, decrement=self.decrement, samples_mc_kl=self.samples_mc_kl,
            **self._common_kwargs(),
        )
        # through .data, as TorchRL: the old beta is saved for backward by this very call
        self.beta.data.copy_(out.pop("beta"))
        return out

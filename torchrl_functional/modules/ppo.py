"""Drop-in replacements for TorchRL's PPO loss modules.

Same constructor, keys (``set_keys``), value estimators (``make_value_estimator``),
buffers and outputs as ``torchrl.objectives.PPOLoss``/``ClipPPOLoss``/``KLPENPPOLoss``;
``forward`` runs the networks and the value estimator, then calls the functional loss
of :mod:`torchrl_functional.functional.ppo`, which holds all the math.
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import composite_lp_aggregate, dispatch
from torchrl.objectives import ppo as _trl

from ..functional import PPOOptions
from ..functional import composite as C
from ..functional import ppo as F
from ..functional.keys import PPOKeys
from ._common import OLD_ACTOR_OUTPUT, PROXIMAL_ACTOR_OUTPUT
from ._onpolicy import Gathered, OnPolicyModule, entropy_coeff, module_options, on_policy_inputs, on_policy_keys

__all__ = ["PPOLoss", "ClipPPOLoss", "KLPENPPOLoss"]


class _PPOForward(OnPolicyModule):
    """``forward`` shared by the PPO modules; subclasses pick the functional loss."""

    def _clip_epsilon(self) -> Any:
        """TorchRL's clip range: ``(low, high)`` when asymmetric, else the ``clip_epsilon`` buffer."""
        return (self.clip_epsilon_low, self.clip_epsilon_high) if self._asymmetric_clip else self.clip_epsilon

    def _inputs(self, tensordict: TensorDictBase, with_old_actor: bool) -> tuple[Gathered, PPOKeys]:
        gathered = on_policy_inputs(
            self, tensordict, self._dist_module, with_critic=self._has_critic,
            detach_critic_input=self.separate_losses, old_actor=with_old_actor, proximal=self.delay_actor,
        )
        keys = on_policy_keys(self, PPOKeys, old_actor_output=OLD_ACTOR_OUTPUT,
                              proximal_actor_output=PROXIMAL_ACTOR_OUTPUT)
        return gathered, keys

    def _finish(self, out: TensorDict) -> TensorDict:
        if "composite_entropy" in out.keys() and composite_lp_aggregate(nowarn=True):
            del out["composite_entropy"]  # TorchRL reports per-head entropies without aggregation only
        return out

    def _weighted_loss_entropy(self, entropy: torch.Tensor | TensorDictBase) -> torch.Tensor:
        """``-entropy_coeff * H`` (per head with a coefficient mapping); the math of
        :func:`torchrl_functional.functional.composite.entropy_loss`."""
        coeff = entropy_coeff(self)
        if isinstance(entropy, TensorDictBase):
            heads = entropy
            entropy = entropy.sum(dim="feature", reduce=True) if self._entropy_coeff_map is None else None
            return C.entropy_loss(type(self).__name__, entropy, heads, coeff)
        return C.entropy_loss(type(self).__name__, entropy, None, coeff)


class PPOLoss(_PPOForward, _trl.PPOLoss):
    """Drop-in ``torchrl.objectives.PPOLoss`` computed by :func:`~torchrl_functional.functional.ppo_loss`."""

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        gathered, keys = self._inputs(tensordict, with_old_actor=False)
        return self._finish(F.ppo_loss(gathered.inputs, gathered.dist_class, keys=keys,
                                       **module_options(self, gathered, PPOOptions)))


class ClipPPOLoss(_PPOForward, _trl.ClipPPOLoss):
    """Drop-in ``torchrl.objectives.ClipPPOLoss`` computed by :func:`~torchrl_functional.functional.clip_ppo_loss`."""

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        gathered, keys = self._inputs(tensordict, with_old_actor=False)
        return self._finish(F.clip_ppo_loss(
            gathered.inputs, gathered.dist_class, keys=keys, clip_epsilon=self._clip_epsilon(),
            **module_options(self, gathered, PPOOptions),
        ))


class KLPENPPOLoss(_PPOForward, _trl.KLPENPPOLoss):
    """Drop-in ``torchrl.objectives.KLPENPPOLoss`` computed by :func:`~torchrl_functional.functional.klpen_ppo_loss`.

    As in TorchRL, ``forward`` updates the ``beta`` buffer in place (from the functional
    loss's ``"beta"`` output, which is not returned, so the output keys are TorchRL's).
    """

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        gathered, keys = self._inputs(tensordict, with_old_actor=True)
        out = F.klpen_ppo_loss(
            gathered.inputs, gathered.dist_class, keys=keys, beta=self.beta, dtarg=self.dtarg,
            increment=self.increment, decrement=self.decrement, samples_mc_kl=self.samples_mc_kl,
            **module_options(self, gathered, PPOOptions),
        )
        # through .data, as TorchRL: the old beta is saved for backward by this very call
        self.beta.data.copy_(out.pop("beta"))
        return self._finish(out)

"""Drop-in replacement for ``torchrl.objectives.ReinforceLoss``; the math is
:func:`torchrl_functional.functional.reinforce_loss`.

Unlike TorchRL's class, ``forward`` does not write the advantage, value target and
state values into the caller's TensorDict (the numbers are the same)."""

from __future__ import annotations

from tensordict import TensorDictBase
from tensordict.nn import dispatch
from torchrl.objectives import reinforce as _trl

from ..functional.keys import ReinforceKeys
from ..functional.reinforce import reinforce_loss
from ._common import (
    ACTOR_OUTPUT,
    OLD_VALUE,
    FunctionalCallMixin,
    check_single_key,
    dist_class_of,
    estimate_advantage,
    find_dist_module,
    on_policy_keys,
    run_actor,
    run_critic,
)

__all__ = ["ReinforceLoss"]


class ReinforceLoss(FunctionalCallMixin, _trl.ReinforceLoss):
    """Drop-in ``torchrl.objectives.ReinforceLoss`` computed by :func:`~torchrl_functional.functional.reinforce_loss`."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._dist_module = find_dist_module("ReinforceLoss", self.actor_network)
        self._dist_class = dist_class_of(self._dist_module)

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        tk = self.tensor_keys
        check_single_key("ReinforceLoss", tk.action, "action")
        td = tensordict.copy()
        if td.get(tk.advantage, None) is None:
            estimate_advantage(self, td)
        actor_output = run_actor(self, td, self._dist_module)
        inputs = td.select(tk.action, tk.advantage, tk.value_target, *self._loss_mask_keys(), strict=False)
        for name, value in actor_output.items():
            inputs.set(ACTOR_OUTPUT + (name,), value)
        if self.clip_value is not None:
            old_value = td.get(tk.value, None)
            if old_value is None:
                raise KeyError(
                    f"clip_value is set to {self.clip_value}, but the key {tk.value} was not found "
                    "in the input tensordict."
                )
            inputs.set(OLD_VALUE, old_value)
        critic_in = td.select(*self.critic_network.in_keys, strict=False)
        inputs.set(tk.value, run_critic(self, critic_in, tk.value))
        return reinforce_loss(
            inputs,
            self._dist_class,
            keys=on_policy_keys(self, ReinforceKeys),
            loss_critic_type=self.loss_critic_type,
            clip_value=self.clip_value,
            reduction=self.reduction,
            loss_mask_key=self.loss_mask_key,
        )

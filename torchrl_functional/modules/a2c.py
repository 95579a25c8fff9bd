"""Drop-in replacement for ``torchrl.objectives.A2CLoss``; the math is
:func:`torchrl_functional.functional.a2c_loss`."""

from __future__ import annotations

from tensordict import TensorDictBase
from tensordict.nn import dispatch
from torchrl.objectives import a2c as _trl

from ..functional.a2c import a2c_loss
from ..functional.keys import A2CKeys
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

__all__ = ["A2CLoss"]


class A2CLoss(FunctionalCallMixin, _trl.A2CLoss):
    """Drop-in ``torchrl.objectives.A2CLoss`` computed by :func:`~torchrl_functional.functional.a2c_loss`."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.advantage_norm is not None:
            raise NotImplementedError("A2CLoss: advantage_norm (ValueNorm) is not supported yet")
        self._dist_module = find_dist_module("A2CLoss", self.actor_network)
        self._dist_class = dist_class_of(self._dist_module)

    @dispatch()
    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        tk = self.tensor_keys
        check_single_key("A2CLoss", tk.action, "action")
        td = tensordict.copy()
        if td.get(tk.advantage, None) is None:
            estimate_advantage(self, td)
        actor_output = run_actor(self, td.select(*self.actor_network.in_keys, strict=False), self._dist_module)
        inputs = td.select(tk.action, tk.advantage, tk.value_target, *self._loss_mask_keys(), strict=False)
        for name, value in actor_output.items():
            inputs.set(ACTOR_OUTPUT + (name,), value)
        if self.critic_coeff is not None:
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
        return a2c_loss(
            inputs,
            self._dist_class,
            keys=on_policy_keys(self, A2CKeys),
            entropy_bonus=bool(self.entropy_bonus),
            samples_mc_entropy=self.samples_mc_entropy,
            entropy_coeff=self.entropy_coeff,
            critic_coeff=self.critic_coeff,
            loss_critic_type=self.loss_critic_type,
            clip_value=self.clip_value,
            reduction=self.reduction,
            loss_mask_key=self.loss_mask_key,
        )

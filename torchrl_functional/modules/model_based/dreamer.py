"""Drop-in replacements for TorchRL's Dreamer losses; the math is
:func:`~torchrl_functional.functional.dreamer_model_loss`,
:func:`~torchrl_functional.functional.dreamer_actor_loss` and
:func:`~torchrl_functional.functional.dreamer_value_loss`."""

from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.envs.utils import ExplorationType, set_exploration_type, step_mdp
from torchrl.objectives import dreamer as _trl
from torchrl.objectives.utils import hold_out_net

from ...functional._td import pack
from ...functional.model_based import (
    DreamerActorKeys,
    DreamerModelKeys,
    DreamerValueKeys,
    dreamer_actor_loss,
    dreamer_model_loss,
    dreamer_value_loss,
)
from .._binding import FunctionalCallMixin
from .._common import cached_keys, keys_from
from .._estimate import td_estimator

__all__ = ["DreamerModelLoss", "DreamerActorLoss", "DreamerValueLoss"]


class DreamerModelLoss(FunctionalCallMixin, _trl.DreamerModelLoss):
    """Drop-in ``torchrl.objectives.DreamerModelLoss`` computed by
    :func:`~torchrl_functional.functional.dreamer_model_loss`.

    ``forward`` runs the world model on a shallow copy of the input (the observed reward
    renamed to ``("next", true_reward)`` first, as TorchRL) and returns
    ``(losses, world-model outputs detached)``.
    """

    def forward(self, tensordict: TensorDictBase) -> tuple[TensorDict, TensorDictBase]:
        tk = self.tensor_keys
        tensordict = tensordict.copy()
        tensordict.rename_key_(("next", tk.reward), ("next", tk.true_reward))
        tensordict = self.world_model(tensordict)
        out = dreamer_model_loss(
            tensordict,
            lambda_kl=self.lambda_kl, lambda_reco=self.lambda_reco, lambda_reward=self.lambda_reward,
            reco_loss=self.reco_loss, reward_loss=self.reward_loss, free_nats=self.free_nats,
            delayed_clamp=self.delayed_clamp, global_average=self.global_average,
            keys=keys_from(tk, DreamerModelKeys),
        )
        return out, tensordict.data


class DreamerActorLoss(FunctionalCallMixin, _trl.DreamerActorLoss):
    """Drop-in ``torchrl.objectives.DreamerActorLoss`` computed by
    :func:`~torchrl_functional.functional.dreamer_actor_loss`.

    ``forward`` imagines ``imagination_horizon`` steps from the input's states in the
    model-based environment (held out of the graph) with the actor, runs the value model
    (held out) on the next imagined states, and passes the rewards and values to the
    function with all-``False`` done flags, as TorchRL does. Returns ``(losses, imagined
    trajectory with its "lambda_target", detached)``. The value estimator's ``gamma`` and
    ``lmbda`` (``make_value_estimator``) are read at each call.

    Args:
        returns_over_horizon: keyword-only, ours: compute the return along the imagination
            horizon (the paper's lambda-return) instead of TorchRL 0.14.1's per-step target
            (see :func:`~torchrl_functional.functional.dreamer_actor_loss`). Default ``False``.
    """

    def __init__(self, *args, returns_over_horizon: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.returns_over_horizon = returns_over_horizon

    def forward(self, tensordict: TensorDictBase) -> tuple[TensorDict, TensorDictBase]:
        tk = self.tensor_keys
        tensordict = tensordict.select("state", tk.belief).data
        with hold_out_net(self.model_based_env), set_exploration_type(ExplorationType.RANDOM):
            tensordict = self.model_based_env.reset(tensordict.copy())
            fake_data = self.model_based_env.rollout(
                max_steps=self.imagination_horizon, policy=self.actor_model, auto_reset=False, tensordict=tensordict,
            )
            next_tensordict = step_mdp(fake_data, keep_other=True)
            with hold_out_net(self.value_model):
                next_tensordict = self.value_model(next_tensordict)
        reward = fake_data.get(("next", tk.reward))
        no_flag = torch.zeros(reward.shape, dtype=torch.bool, device=reward.device)
        inputs = pack({("next", tk.reward): reward, ("next", tk.value): next_tensordict.get(tk.value),
                       ("next", tk.done): no_flag, ("next", tk.terminated): no_flag}, fake_data.batch_size)
        kind, gamma, lmbda = td_estimator(self)
        out = dreamer_actor_loss(
            inputs, gamma=gamma.to(reward.device), lmbda=0.0 if lmbda is None else lmbda.to(reward.device),
            value_estimator=kind, discount_loss=self.discount_loss, returns_over_horizon=self.returns_over_horizon,
            keys=cached_keys(DreamerActorKeys, reward=tk.reward, value=tk.value, done=tk.done, terminated=tk.terminated),
        )
        fake_data.set("lambda_target", out.pop("lambda_target"))
        return out, fake_data.data


class DreamerValueLoss(FunctionalCallMixin, _trl.DreamerValueLoss):
    """Drop-in ``torchrl.objectives.DreamerValueLoss`` computed by
    :func:`~torchrl_functional.functional.dreamer_value_loss`.

    ``forward`` runs the value model on the imagined trajectory's states (a selection: the
    input is not written) and returns ``(losses, the input)``.
    """

    def forward(self, fake_data: TensorDictBase) -> tuple[TensorDict, TensorDictBase]:
        lambda_target = fake_data.get("lambda_target")
        selected = fake_data.select(*self.value_model.in_keys, strict=False)
        self.value_model(selected)  # writes the value into the selection (a new TensorDict, not the input)
        selected.set("lambda_target", lambda_target)
        # time: the last batch dim, as TorchRL's module discounts along the entries' dim -2
        out = dreamer_value_loss(
            selected, value_loss=self.value_loss, discount_loss=self.discount_loss, gamma=self.gamma, time_dim=-1,
            keys=cached_keys(DreamerValueKeys, value=self.tensor_keys.value),
        )
        return out, fake_data

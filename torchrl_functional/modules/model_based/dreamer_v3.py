"""Drop-in replacements for TorchRL's DreamerV3 losses; the math is in
:mod:`torchrl_functional.functional.model_based`.

The modules run the networks as TorchRL does (the world model, the imagined rollout in the
model-based environment, the online and slow critics) and hand their outputs to the functions.
"""

from __future__ import annotations

import warnings

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.utils import unravel_key
from torchrl.envs.utils import ExplorationType, set_exploration_type, step_mdp
from torchrl.modules.distributions.utils import has_analytic_entropy, rsample_and_log_prob
from torchrl.objectives import dreamer_v3 as _trl
from torchrl.objectives.utils import hold_out_net

from ...functional._td import pack
from ...functional.model_based import (
    DreamerV3ActorKeys,
    DreamerV3ModelKeys,
    DreamerV3ValueKeys,
    dreamer_v3_actor_loss,
    dreamer_v3_lambda_target,
    dreamer_v3_model_loss,
    dreamer_v3_replay_value_loss,
    dreamer_v3_value_loss,
    two_hot_decode,
)
from .._binding import FunctionalCallMixin, params_context
from .._common import PRIVATE, cached_keys, keys_from
from .._estimate import td_estimator

__all__ = ["DreamerV3ModelLoss", "DreamerV3ActorLoss", "DreamerV3ValueLoss"]

_LEGACY = ("Storing DreamerV3 categorical {what} logits under the decoded {what} key {key!r} is deprecated and "
           "will be removed in v0.16. Write logits to the configured {what}_logits key instead.")


def _match_trailing_dim(source: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """TorchRL's alignment of a per-dim (or squeezed) log-prob / entropy with ``[*B, T, 1]``."""
    if source.ndim == reference.ndim - 1:
        return source.unsqueeze(-1)
    if source.ndim == reference.ndim + 1:
        return source.sum(-1, keepdim=True)
    return source


class DreamerV3ModelLoss(FunctionalCallMixin, _trl.DreamerV3ModelLoss):
    """Drop-in ``torchrl.objectives.DreamerV3ModelLoss`` computed by
    :func:`~torchrl_functional.functional.dreamer_v3_model_loss`."""

    def forward(self, tensordict: TensorDictBase) -> tuple[TensorDict, TensorDictBase]:
        tk = self.tensor_keys
        tensordict = tensordict.select(*tensordict.keys(True, True))
        tensordict.rename_key_(("next", tk.reward), ("next", tk.true_reward))
        tensordict = self.world_model(tensordict)
        keys = keys_from(tk, DreamerV3ModelKeys)
        if self.reward_two_hot and tensordict.get(unravel_key(("next", tk.reward_logits)), None) is None:
            legacy = unravel_key(("next", tk.reward))
            warnings.warn(_LEGACY.format(what="reward", key=legacy), DeprecationWarning, stacklevel=2)
            keys = keys.replace(reward_logits=tk.reward)
        lambda_continue = self.lambda_continue
        if lambda_continue > 0 and (
            tensordict.get(("next", tk.continue_pred), None) is None
            or (tensordict.get(("next", tk.terminated), None) is None and tensordict.get(("next", tk.done), None) is None)
        ):
            lambda_continue = 0.0  # TorchRL skips the continue loss without its entries
        out = dreamer_v3_model_loss(
            tensordict, lambda_kl=self.lambda_kl, lambda_reco=self.lambda_reco, lambda_reward=self.lambda_reward,
            lambda_continue=lambda_continue, kl_mode=self.kl_mode, lambda_dynamic=self.lambda_dynamic,
            lambda_representation=self.lambda_representation, unimix=self.unimix,
            continue_target_scale=self.continue_target_scale, kl_alpha=self.kl_alpha, free_bits=self.free_bits,
            reco_loss=self.reco_loss, reco_symlog=self.reco_symlog, reward_two_hot=self.reward_two_hot,
            reward_bins=self.reward_bins, global_average=self.global_average, keys=keys,
        )
        self._clear_weakrefs(tensordict, out)
        return out, tensordict.data if self.detach_output else tensordict


class DreamerV3ValueLoss(FunctionalCallMixin, _trl.DreamerV3ValueLoss):
    """Drop-in ``torchrl.objectives.DreamerV3ValueLoss`` computed by
    :func:`~torchrl_functional.functional.dreamer_v3_value_loss` (and ``replay_value_loss`` by
    :func:`~torchrl_functional.functional.dreamer_v3_replay_value_loss`)."""

    _SLOW = (PRIVATE, "slow_state_value")

    def _critic(self, tensordict: TensorDictBase, params) -> TensorDictBase:
        selected = tensordict.select(*self.value_model.in_keys, strict=False)
        with params_context(self, params, self.value_model):
            self.value_model(selected)
        return selected

    def _slow_value(self, tensordict: TensorDictBase, decode: bool) -> torch.Tensor:
        with torch.no_grad():
            value = self._critic(tensordict, self.target_value_model_params).get(self.tensor_keys.value)
        if decode and self.value_loss == "two_hot" and value.shape[-1] == self.value_bins.shape[0]:
            value = two_hot_decode(value, self.value_bins).unsqueeze(-1)
        return value

    def _critic_inputs(self, tensordict: TensorDictBase, legacy: bool) -> tuple[TensorDict, DreamerV3ValueKeys]:
        tk = self.tensor_keys
        keys = keys_from(tk, DreamerV3ValueKeys, slow_value=self._SLOW, lambda_target="lambda_target")
        online = self._critic(tensordict, self.value_model_params)
        inputs = TensorDict({}, batch_size=tensordict.batch_size)
        if self.value_loss == "two_hot":
            logits = online.get(tk.value_logits, None)
            if logits is None and legacy:
                warnings.warn(_LEGACY.format(what="value", key=unravel_key(tk.value)), DeprecationWarning,
                              stacklevel=3)
                logits = online.get(tk.value)
            if logits is not None:
                inputs.set(tk.value_logits, logits)
        else:
            inputs.set(tk.value, online.get(tk.value))
        return inputs, keys

    def forward(self, fake_data: TensorDictBase) -> tuple[TensorDict, TensorDictBase]:
        tk = self.tensor_keys
        inputs, keys = self._critic_inputs(fake_data, legacy=True)
        inputs.set("lambda_target", fake_data.get("lambda_target"))
        weight = fake_data.get(tk.discount_weight, None)
        if weight is not None:
            inputs.set(tk.discount_weight, weight)
        if self.slow_critic_regularization:
            inputs.set(self._SLOW, self._slow_value(fake_data, decode=True))
        gamma = self._resolved_gamma() if weight is None and self.discount_loss else 0.99
        out = dreamer_v3_value_loss(
            inputs, value_loss=self.value_loss, discount_loss=self.discount_loss, gamma=gamma,
            value_bins=self.value_bins, slow_critic_regularization=self.slow_critic_regularization,
            reduction=self.reduction, keys=keys,
        )
        self._clear_weakrefs(fake_data, out)
        return out, fake_data.data

    def replay_value_loss(self, tensordict: TensorDictBase, *, horizon: float = 333.0,
                          lmbda: float = 0.95) -> TensorDictBase:
        """TorchRL's ``replay_value_loss``, computed by
        :func:`~torchrl_functional.functional.dreamer_v3_replay_value_loss`.

        Args:
            tensordict: replayed posterior features ``[B, T]`` with the critic's inputs and the
                ``("next", reward/done/terminated)`` and ``bootstrap`` entries.
            horizon: discount horizon (``gamma = 1 - 1 / horizon``).
            lmbda: trace decay.

        Returns:
            A TensorDict with ``loss_replay_value``.
        """
        tk = self.tensor_keys
        inputs, keys = self._critic_inputs(tensordict, legacy=False)
        for key in (("next", tk.reward), ("next", tk.done), ("next", tk.terminated), tk.bootstrap):
            value = tensordict.get(unravel_key(key), None)
            if value is not None:
                inputs.set(unravel_key(key), value)
        if self.slow_critic_regularization:
            inputs.set(self._SLOW, self._slow_value(tensordict, decode=False))
        return dreamer_v3_replay_value_loss(
            inputs, horizon=horizon, lmbda=lmbda, value_loss=self.value_loss, value_bins=self.value_bins,
            slow_critic_regularization=self.slow_critic_regularization, reduction=self.reduction, keys=keys,
        )


class DreamerV3ActorLoss(FunctionalCallMixin, _trl.DreamerV3ActorLoss):
    """Drop-in ``torchrl.objectives.DreamerV3ActorLoss``: ``forward`` runs the imagined rollout as
    TorchRL does, then :func:`~torchrl_functional.functional.dreamer_v3_actor_loss` computes the loss
    (and the return-statistics update the module stores in ``retnorm``).

    Keyword Args:
        returns_over_horizon (bool): without a continuation model, compute the lambda-returns along
            the imagined time axis (DreamerV3's returns). TorchRL 0.14.1 runs its estimator on a
            TensorDict without batch dims, hence along the trailing singleton dim: one-step
            targets ``r + gamma V(s')``. Default ``False`` (TorchRL's numbers); an estimator whose
            ``time_dim`` is set is honoured either way.
    """

    _LOG_PROB = (PRIVATE, "log_prob")
    _ENTROPY = (PRIVATE, "entropy")

    def __init__(self, *args, returns_over_horizon: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.returns_over_horizon = bool(returns_over_horizon)

    def _returns_config(self) -> dict:
        kind, gamma, lmbda = td_estimator(self)
        est = self.value_estimator
        # TorchRL's estimator sees a TensorDict without batch dims: its time dim is the last one
        time_dim = getattr(est, "time_dim", None)
        if time_dim is None:
            time_dim = -2 if self.returns_over_horizon else -1
        return {"value_estimator": kind, "gamma": gamma, "lmbda": 0.95 if lmbda is None else lmbda,
                "time_dim": time_dim}

    def lambda_target(self, reward: torch.Tensor, value: torch.Tensor,
                      continuation: torch.Tensor | None = None) -> torch.Tensor:
        """TorchRL's ``lambda_target``, computed by :func:`~torchrl_functional.functional.dreamer_v3_lambda_target`.

        Args:
            reward: ``[*B, T, 1]`` imagined rewards.
            value: ``[*B, T, 1]`` values of the next states.
            continuation: ``[*B, T, 1]`` continuation probabilities of the next states (optional).

        Returns:
            ``[*B, T, 1]``.
        """
        config = self._returns_config()
        config["gamma"] = config["gamma"].to(reward)
        if isinstance(config["lmbda"], torch.Tensor):
            config["lmbda"] = config["lmbda"].to(reward)
        return dreamer_v3_lambda_target(reward, value, continuation, **config)

    def forward(self, tensordict: TensorDictBase) -> tuple[TensorDict, TensorDictBase]:
        tk = self.tensor_keys
        tensordict = tensordict.select(tk.state, tk.belief).data
        with hold_out_net(self.model_based_env), set_exploration_type(ExplorationType.RANDOM):
            tensordict = self.model_based_env.reset(tensordict.copy())
            fake_data = self.model_based_env.rollout(
                max_steps=self.imagination_horizon, policy=self.actor_model, auto_reset=False,
                tensordict=tensordict, break_when_any_done=False,
            )
            next_tensordict = step_mdp(fake_data, keep_other=True)
            with hold_out_net(self.value_model):
                next_tensordict = self.value_model(next_tensordict)
        reward = fake_data.get(("next", tk.reward))
        inputs = pack({("next", tk.reward): reward, ("next", tk.value): next_tensordict.get(tk.value)},
                      fake_data.batch_size)
        continuation_model = self.__dict__.get("continuation_model")
        if continuation_model is not None:
            # step_mdp shifts by one: only index 0 needs a new forward pass
            first_td = fake_data[..., :1].select(*continuation_model.in_keys, strict=False)
            continuation_td = next_tensordict.select(*continuation_model.in_keys, strict=False)
            with hold_out_net(continuation_model):
                continuation_model(first_td)
                continuation_model(continuation_td)
            continuation = continuation_td.get(tk.continuation)
            root = torch.cat([first_td.get(tk.continuation), continuation[..., :-1, :]], dim=-2)
            fake_data.set(tk.continuation, root)
            fake_data.set(("next", tk.continuation), continuation)
            inputs.set(tk.continuation, root)
            inputs.set(("next", tk.continuation), continuation)
        if self.use_reinforce or self.entropy_bonus > 0:
            actor_inputs = fake_data.select(*self.actor_model.in_keys, strict=False).detach()
            policy = self.actor_model.get_dist(actor_inputs)
        if self.use_reinforce:
            log_prob = policy.log_prob(fake_data.get(tk.action).detach())
            inputs.set(self._LOG_PROB, _match_trailing_dim(log_prob, reward))
            with hold_out_net(self.value_model):
                baseline = fake_data.select(*self.value_model.in_keys, strict=False)
                self.value_model(baseline)
            inputs.set(tk.value, baseline.get(tk.value))
        if self.entropy_bonus > 0:
            if has_analytic_entropy(policy):
                entropy = policy.entropy()
            else:
                entropy = -rsample_and_log_prob(policy)[1]
            inputs.set(self._ENTROPY, _match_trailing_dim(entropy, reward))
        config = self._returns_config()
        config["gamma"] = config["gamma"].to(tensordict.device)
        update = self.return_normalization and self.training
        out = dreamer_v3_actor_loss(
            inputs, **config, discount_loss=self.discount_loss, entropy_bonus=self.entropy_bonus,
            use_reinforce=self.use_reinforce, return_normalization=self.return_normalization,
            return_low=self.retnorm.low, return_high=self.retnorm.high, update_return_statistics=update,
            return_normalization_rate=self.retnorm.rate,
            return_normalization_quantiles=self.retnorm.quantiles,
            return_normalization_min_scale=self.retnorm.min_scale,
            keys=cached_keys(DreamerV3ActorKeys, reward=tk.reward, value=tk.value, continuation=tk.continuation,
                             log_prob=self._LOG_PROB, entropy=self._ENTROPY),
        )
        if update:
            with torch.no_grad():
                self.retnorm.low.copy_(out["return_low"].reshape(self.retnorm.low.shape))
                self.retnorm.high.copy_(out["return_high"].reshape(self.retnorm.high.shape))
        fake_data.set("lambda_target", out.pop("lambda_target"))
        fake_data.set(tk.discount_weight, out.pop("discount_weight"))
        self._clear_weakrefs(tensordict, out)
        return out, fake_data.data

"""The impure part shared by the drop-in off-policy modules: the value estimator as
keyword arguments, the transition entries, the keys object, priorities and the output
layout. No loss math here."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.modules import QValueModule

from ..functional._offpolicy import option_names
from ..functional._td import gather, pack, time_dim_of
from ._binding import params_context
from ._common import PRIVATE, cached_keys
from ._estimate import td_estimator


def run_value_network(loss_module, td: TensorDictBase, params: Any, key: Any) -> torch.Tensor:
    """``loss_module.value_network`` on ``td`` with ``params``; the entry ``key`` of its output."""
    net = loss_module.value_network
    with params_context(loss_module, params, net):
        out = net(td.select(*net.in_keys, strict=False))
    return out.get(key)


def action_value_inputs(loss_module, tensordict: TensorDictBase, next_params: Any) -> TensorDictBase:
    """The inputs of a Q-learning drop-in (DQN, discrete CQL): :func:`transition_inputs` with
    ``Q(s, .)`` of the online value network and ``Q(s', .)`` with ``next_params`` (the target
    parameters, or the online ones detached; no graph), both as ``"action_value"`` under the
    private root (``"next"`` for ``s'``)."""
    key = loss_module.tensor_keys.action_value
    inputs = transition_inputs(loss_module, tensordict)
    inputs.set((PRIVATE, "action_value"),
               run_value_network(loss_module, tensordict, loss_module.value_network_params, key))
    with torch.no_grad():
        inputs.set(("next", PRIVATE, "action_value"),
                   run_value_network(loss_module, tensordict.get("next"), next_params, key))
    return inputs


def clamp_log_alpha(loss_module) -> None:
    """A bounded temperature (``min_alpha``/``max_alpha``): ``log_alpha`` clamped in place
    before each forward, as TorchRL's ``_alpha`` property does whenever it is read."""
    low, high = loss_module.min_log_alpha, loss_module.max_log_alpha
    if low is not None or high is not None:
        loss_module.log_alpha.data.clamp_(low, high)


def scatter_rows(x: torch.Tensor, keep: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """``x`` computed on the rows ``keep`` (a bool mask ``[*B]``) of a batch, at dimension ``dim``,
    placed back in zeros of the full batch (TorchRL's ``masked_scatter_`` of skipped states)."""
    out = x.new_zeros((*x.shape[:dim], *keep.shape, *x.shape[dim + 1:]))
    out[(slice(None),) * dim + (keep,)] = x
    return out


def estimator_kwargs(loss_module, tensordict: TensorDictBase | None = None) -> dict:
    """The loss module's value estimator (TorchRL's TD0 by default) as keyword arguments of
    the off-policy functional losses: ``value_estimator``, ``gamma``, ``lmbda``, ``time_dim``,
    ``average_rewards``."""
    name = type(loss_module).__name__
    est = loss_module.value_estimator
    kind, gamma, lmbda = td_estimator(loss_module, est, average_rewards=True)
    time_dim = getattr(est, "time_dim", None)
    if time_dim is None and tensordict is not None and tensordict.batch_dims:
        time_dim = time_dim_of(tensordict, loss=name)
    return {"value_estimator": kind, "gamma": gamma, "lmbda": 0.95 if lmbda is None else lmbda, "time_dim": time_dim,
            "average_rewards": bool(est.average_rewards)}


def transition_inputs(loss_module, tensordict: TensorDictBase, *extra: Any) -> TensorDictBase:
    """A new TensorDict holding what a functional off-policy loss reads from the data:
    action, ``("next", reward/done/terminated)``, n-step data, the priority weight (when the
    module uses it), loss masks and ``extra`` entries. Network outputs are added to it afterwards."""
    tk = loss_module.tensor_keys
    keys = [getattr(tk, "action", "action"), ("next", tk.reward), ("next", tk.done), ("next", tk.terminated), *extra,
            steps_key(loss_module), *loss_module._loss_mask_keys()]
    if getattr(loss_module, "use_prioritized_weights", False) in (True, "auto") and hasattr(tk, "priority_weight"):
        keys.append(tk.priority_weight)
    # Q-ensemble outputs are [E, *B, 1]: the inputs carry no batch dimensions
    return pack(gather(tensordict, keys), device=tensordict.device)


def steps_key(loss_module) -> Any:
    """Where the value estimator reads n-step data (``MultiStep``'s ``"steps_to_next_obs"``)."""
    return getattr(loss_module.value_estimator.tensor_keys, "steps_to_next_obs", "steps_to_next_obs")


def off_policy_keys(loss_module, cls: type, **private: Any):
    """The functional loss's keys object: data entries named by the module's ``tensor_keys``,
    network outputs under the private root (``private`` maps a field to its private name)."""
    tk = loss_module.tensor_keys
    names = dict(action=getattr(tk, "action", "action"), reward=tk.reward, done=tk.done, terminated=tk.terminated,
                 steps_to_next_obs=steps_key(loss_module))
    if hasattr(tk, "priority_weight"):
        names["priority_weight"] = tk.priority_weight
    names.update({field: (PRIVATE, value) for field, value in private.items()})
    return cached_keys(cls, **names)


class DiscreteActionSpace:
    """Mixin of the drop-ins over discrete actions: refuses, when the module is built, the action
    spaces its functional loss does not read (TorchRL's ``binary``, which TorchRL's own
    ``QValueModule`` does not implement; ``mult_one_hot`` outside the Q-learning losses)."""

    #: the action spaces the module's functional loss reads
    _action_spaces: tuple[str, ...] = ("categorical", "one_hot")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.action_space not in self._action_spaces:
            raise NotImplementedError(f"{type(self).__name__}: action space {self.action_space!r} is not supported yet")

    def _action_sizes(self) -> tuple[int, ...] | None:
        """``mult_one_hot``: the size of each sub-action, the ``var_nums`` of the value network's
        ``QValueModule`` (what TorchRL's greedy action splits by); ``None`` otherwise."""
        if self.action_space != "mult_one_hot":
            return None
        for module in self.value_network.modules():
            if isinstance(module, QValueModule) and module.var_nums is not None:
                return tuple(int(n) for n in module.var_nums)
        raise ValueError(f"{type(self).__name__}: a 'mult_one_hot' action space needs the value network's "
                         "QValueModule built with var_nums (the size of each sub-action)")


_options_of = functools.cache(option_names)


def call_loss(fn: Callable, loss_module, inputs: TensorDictBase, tensordict: TensorDictBase, keys_cls: type,
              *fields: str | tuple[str, str], **options: Any) -> TensorDict:
    """Call the functional loss ``fn`` on ``inputs`` with what its module holds, by one rule.

    The module's ``loss_function``, ``reduction``, ``loss_mask_key`` and
    ``use_prioritized_weights`` go to the options of the same name that ``fn`` takes; its
    value estimator (:func:`estimator_kwargs`) too; ``keys`` is :func:`off_policy_keys` with
    the network outputs ``fields`` under the private root (a field name, or ``(field, name)``).
    ``options`` are the loss's own hyperparameters (``alpha=self.alpha`` ...).
    """
    accepted = _options_of(fn)
    kwargs: dict[str, Any] = {
        name: getattr(loss_module, name) for name in ("loss_function", "reduction", "loss_mask_key")
        if name in accepted and hasattr(loss_module, name)
    }
    if "use_prioritized_weights" in accepted and hasattr(loss_module, "use_prioritized_weights"):
        kwargs["use_prioritized_weights"] = loss_module.use_prioritized_weights in (True, "auto")
    if "value_estimator" in accepted:
        kwargs.update(estimator_kwargs(loss_module, tensordict))
    private = dict(f if isinstance(f, tuple) else (f, f) for f in fields)
    kwargs["keys"] = off_policy_keys(loss_module, keys_cls, **private)
    kwargs.update(options)
    return fn(inputs, **kwargs)


def write_priority(tensordict: TensorDictBase, key: Any, value: torch.Tensor) -> None:
    """Write the replay priority into the caller's data, as TorchRL does (for prioritized replay)."""
    if tensordict.device is not None:
        value = value.to(tensordict.device)
    tensordict.set(key, value, inplace=True)


def output_td(out: TensorDictBase, loss_module, tensordict: TensorDictBase, scalars: tuple[str, ...]):
    """Arrange a functional loss's outputs as TorchRL's SAC/IQL/CQL modules do for ``reduction="none"``
    (per-sample losses in a TensorDict of the data's batch size, scalars excluded or non-tensor)."""
    if loss_module.reduction != "none":
        return out
    losses = {k: v for k, v in out.items() if k.startswith("loss_")}
    td_out = TensorDict(losses, batch_size=tensordict.batch_size)
    if getattr(loss_module, "scalar_output_mode", None) == "non_tensor":
        for key in scalars:
            td_out.set_non_tensor(key, out[key])
    return td_out

"""Specs of ``dreamer_model_loss``, ``dreamer_actor_loss`` and ``dreamer_value_loss``
(TorchRL's ``DreamerModelLoss``, ``DreamerActorLoss``, ``DreamerValueLoss``).

Functional layouts are world-model outputs of 2 sequences x 3 steps, and imagined
trajectories of 3 starts x 4 steps; module cases run TorchRL's class and ours on copies of
the tiny networks of :mod:`tests.specs._model_based`."""

from __future__ import annotations

import functools

import torch
from tensordict import TensorDict
from torchrl import objectives as torchrl_objectives
from torchrl.objectives.utils import ValueEstimators

from torchrl_functional import modules
from torchrl_functional.functional import (
    DreamerActorKeys,
    DreamerModelKeys,
    DreamerValueKeys,
    dreamer_actor_loss,
    dreamer_model_loss,
    dreamer_value_loss,
)

from . import _model_based as M
from ._spec import Hyper, Layout, LossSpec, ModuleCase
from .dqn import DISCOUNT

WM_BATCH, STATE = (2, 3), 5
IMAGINED = (3, 4)  # [starts, horizon]
BAD_LOSS = ("l3",)


def world_model_outputs(seed: int, dtype: torch.dtype = torch.float32) -> TensorDict:
    g = torch.Generator().manual_seed(seed)

    def randn(*s: int) -> torch.Tensor:
        return torch.randn(*s, generator=g, dtype=torch.float64).to(dtype)

    b = WM_BATCH
    nxt = {
        "prior_mean": randn(*b, STATE), "prior_std": randn(*b, STATE).exp() * 0.5 + 0.2,
        "posterior_mean": randn(*b, STATE), "posterior_std": randn(*b, STATE).exp() * 0.5 + 0.2,
        "pixels": randn(*b, 3, 4, 4), "reco_pixels": randn(*b, 3, 4, 4),
        "true_reward": randn(*b, 1), "reward": randn(*b, 1),
    }
    return TensorDict({"next": nxt}, list(b))


def imagined_trajectory(seed: int, dtype: torch.dtype = torch.float32, *, done: bool = False) -> TensorDict:
    g = torch.Generator().manual_seed(seed)

    def randn(*s: int) -> torch.Tensor:
        return torch.randn(*s, generator=g, dtype=torch.float64).to(dtype)

    flags = torch.zeros(*IMAGINED, 1, dtype=torch.bool)
    if done:
        flags[0, 1] = True
    nxt = {"reward": randn(*IMAGINED, 1), "state_value": randn(*IMAGINED, 1), "done": flags}
    if done:
        terminated = flags.clone()
        nxt["terminated"] = terminated
    return TensorDict({"next": nxt}, list(IMAGINED))


def value_inputs(seed: int, dtype: torch.dtype = torch.float32) -> TensorDict:
    g = torch.Generator().manual_seed(seed)
    return TensorDict(
        {"state_value": torch.randn(*IMAGINED, 1, generator=g, dtype=torch.float64).to(dtype),
         "lambda_target": torch.randn(*IMAGINED, 1, generator=g, dtype=torch.float64).to(dtype)},
        list(IMAGINED),
    )


WM_GRADS = tuple(("next", k) for k in ("prior_mean", "prior_std", "posterior_mean", "posterior_std",
                                       "reco_pixels", "reward"))
ACTOR_GRADS = (("next", "reward"), ("next", "state_value"))


# ----------------------------------------------------------------------------- module cases


def _case(case_id, torchrl_cls, our_cls, nets, data, *, functional_call=False, estimator=None, batch=None,
          **kwargs) -> ModuleCase:
    def build():
        ref, mine = M.pair(torchrl_cls, our_cls, nets, **kwargs)
        if estimator is not None:
            for loss in (ref, mine):
                loss.make_value_estimator(estimator, gamma=0.9, **({"lmbda": 0.8} if estimator is ValueEstimators.TDLambda else {}))
        return ref, mine

    def rebatch(new_batch):
        return _case(case_id, torchrl_cls, our_cls, nets, data, functional_call=functional_call,
                     estimator=estimator, batch=new_batch, **kwargs)

    make = data if batch is None else (lambda seed: data(seed, batch))
    return ModuleCase(case_id, build, make, functional_call=functional_call, rebatch=rebatch)


def _model_cases():
    t, o, nets, data = torchrl_objectives.DreamerModelLoss, modules.DreamerModelLoss, lambda: (M.world_model(),), M.world_model_data
    return [
        _case("base", t, o, nets, data, functional_call=True, free_nats=-100),
        _case("free_nats-delayed", t, o, nets, data, free_nats=3, delayed_clamp=True, lambda_kl=0.5),
        _case("global-smooth_l1", t, o, nets, data, free_nats=-100, global_average=True, reco_loss="smooth_l1",
              reward_loss="smooth_l1", lambda_reco=0.3),
    ]


def _actor_nets():
    return M.actor_model(), M.value_model(), M.model_based_env()


def _actor_cases():
    t, o, data = torchrl_objectives.DreamerActorLoss, modules.DreamerActorLoss, M.actor_data
    return [
        _case("td_lambda", t, o, _actor_nets, data, functional_call=True, imagination_horizon=4),
        _case("td_lambda-0.9", t, o, _actor_nets, data, estimator=ValueEstimators.TDLambda, imagination_horizon=3),
        _case("td0-undiscounted", t, o, _actor_nets, data, estimator=ValueEstimators.TD0, discount_loss=False),
        _case("td1", t, o, _actor_nets, data, estimator=ValueEstimators.TD1, imagination_horizon=2),
    ]


def _value_cases():
    t, o, nets, data = torchrl_objectives.DreamerValueLoss, modules.DreamerValueLoss, lambda: (M.value_model(),), M.value_data
    return [
        _case("base", t, o, nets, data, functional_call=True),
        _case("undiscounted-l1", t, o, nets, data, value_loss="l1", discount_loss=False),
        _case("smooth_l1-0.8", t, o, nets, data, value_loss="smooth_l1", gamma=0.8),
    ]


SPECS = [
    LossSpec(
        "dreamer_model_loss", dreamer_model_loss, DreamerModelKeys,
        (
            Layout("clamped", world_model_outputs, {}, WM_GRADS, compile=True),
            Layout("delayed-global", world_model_outputs,
                   {"delayed_clamp": True, "global_average": True, "reco_loss": "smooth_l1", "reward_loss": "l1",
                    "free_nats": 0.1}, WM_GRADS),
        ),
        (
            Hyper("lambda_kl", 0.7), Hyper("lambda_reco", 0.5), Hyper("lambda_reward", 2.0),
            Hyper("free_nats", 19.0, layouts=("clamped",)),
            Hyper("reco_loss", 0.0, invalid=BAD_LOSS, tensor=False),
            Hyper("reward_loss", 0.0, invalid=BAD_LOSS, tensor=False),
        ),
        modules.DreamerModelLoss, torchrl_objectives.DreamerModelLoss, _model_cases,
        grad_outputs=("loss_model_kl", "loss_model_reco", "loss_model_reward"), bench_batch=(16, 50),
    ),
    LossSpec(
        "dreamer_actor_loss", dreamer_actor_loss, DreamerActorKeys,
        (
            Layout("torchrl", imagined_trajectory, {}, ACTOR_GRADS, compile=True),
            Layout("horizon", functools.partial(imagined_trajectory, done=True), {"returns_over_horizon": True},
                   ACTOR_GRADS),
            Layout("horizon-td1-undiscounted", imagined_trajectory,
                   {"returns_over_horizon": True, "value_estimator": "td1", "discount_loss": False}, ACTOR_GRADS),
        ),
        (
            Hyper("gamma", 0.9, invalid=DISCOUNT),
            Hyper("lmbda", 0.7, invalid=DISCOUNT, layouts=("horizon",)),
            Hyper("value_estimator", 0.0, invalid=("gae", "vtrace"), tensor=False),
        ),
        modules.DreamerActorLoss, torchrl_objectives.DreamerActorLoss, _actor_cases,
        grad_outputs=("loss_actor",), bench_batch=(64,),
    ),
    LossSpec(
        "dreamer_value_loss", dreamer_value_loss, DreamerValueKeys,
        (
            Layout("discounted", value_inputs, {}, ("state_value",), compile=True),
            Layout("undiscounted-smooth_l1", value_inputs, {"discount_loss": False, "value_loss": "smooth_l1"},
                   ("state_value",)),
        ),
        (
            Hyper("gamma", 0.8, invalid=DISCOUNT, layouts=("discounted",)),
            Hyper("value_loss", 0.0, invalid=BAD_LOSS, tensor=False),
        ),
        modules.DreamerValueLoss, torchrl_objectives.DreamerValueLoss, _value_cases,
        grad_outputs=("loss_value",), bench_batch=(64, 15),
    ),
]

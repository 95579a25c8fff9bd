"""Specs of the DreamerV3 losses (TorchRL's ``DreamerV3ModelLoss``, ``DreamerV3ValueLoss`` and its
``replay_value_loss``, ``DreamerV3ActorLoss``)."""

from __future__ import annotations

import functools

import torch
from torchrl import objectives as torchrl_objectives
from torchrl.objectives import ValueEstimators

from torchrl_functional import modules
from torchrl_functional.functional import (
    DreamerV3ActorKeys,
    DreamerV3ModelKeys,
    DreamerV3ValueKeys,
    dreamer_v3_actor_loss,
    dreamer_v3_model_loss,
    dreamer_v3_replay_value_loss,
    dreamer_v3_value_loss,
)

from . import _dreamer_v3 as D
from ._spec import Hyper, Layout, LossSpec

UNIT = (-0.1, 1.5)
SEPARATE = {"kl_mode": "separate", "unimix": 0.01, "reward_two_hot": False, "reco_loss": "l1", "lambda_continue": 1.0,
            "continue_target_scale": 0.9, "free_bits": 0.5}


def _model_cases():
    t, m = torchrl_objectives.DreamerV3ModelLoss, modules.DreamerV3ModelLoss
    return [
        D.model_case("two_hot_balanced", t, m, two_hot=True, free_bits=0.1, functional_call=True),
        D.model_case("mse_separate_continue", t, m, two_hot=False, **{
            k: v for k, v in SEPARATE.items() if k != "reward_two_hot"}),
        D.model_case("no_symlog_global", t, m, two_hot=True, reco_symlog=False, global_average=True,
                     detach_output=False),
    ]


def _value_cases():
    t, m = torchrl_objectives.DreamerV3ValueLoss, modules.DreamerV3ValueLoss
    return [
        D.value_case("symlog_time", t, m, two_hot=False, batch=(2, 4), gamma=0.9, functional_call=True),
        D.value_case("two_hot_slow_weighted", t, m, two_hot=True, batch=(6,), slow_critic_regularization=0.5,
                     reduction="sum"),
        D.value_case("symlog_none", t, m, two_hot=False, batch=(2, 4), discount_loss=False, reduction="none",
                     slow_critic_regularization=1.0),
    ]


def _actor_cases():
    t, m = torchrl_objectives.DreamerV3ActorLoss, modules.DreamerV3ActorLoss
    return [
        D.actor_case("reparam", t, m, functional_call=True),
        D.actor_case("reinforce_continuation", t, m, continuation=True, use_reinforce=True, entropy_bonus=0.01,
                     estimator=ValueEstimators.TDLambda),
        D.actor_case("td1_no_discount", t, m, discount_loss=False, return_normalization=False,
                     estimator=ValueEstimators.TD1),
    ]


MODEL_GRADS = ("posterior_logits", "prior_logits", "reco_pixels")
REINFORCE = {"use_reinforce": True, "entropy_bonus": 0.01, "return_low": torch.tensor([-2.0]),
             "return_high": torch.tensor([3.0])}

SPECS = [
    LossSpec(
        "dreamer_v3_model_loss", dreamer_v3_model_loss, DreamerV3ModelKeys,
        (
            Layout("balanced", D.model_td, {"num_reward_bins": D.BINS, "free_bits": 0.3},
                   tuple(("next", k) for k in (*MODEL_GRADS, "reward_logits")), compile=True),
            Layout("separate", functools.partial(D.model_td, separate=True), SEPARATE,
                   tuple(("next", k) for k in (*MODEL_GRADS, "reward", "continue_pred"))),
        ),
        (
            Hyper("lambda_kl", 0.7), Hyper("lambda_reco", 0.6), Hyper("lambda_reward", 0.5),
            # the two balanced terms have equal values: d/d kl_alpha is 0 (only their gradients differ)
            Hyper("kl_alpha", 0.8, invalid=UNIT, tensor=False, layouts=("balanced",)),
            Hyper("free_bits", 0.3, invalid=(-0.5,), layouts=("balanced",)),
            Hyper("unimix", 0.05, invalid=(-0.1, 1.0), layouts=("separate",)),
            Hyper("lambda_dynamic", 0.9, layouts=("separate",)),
            Hyper("lambda_representation", 0.2, layouts=("separate",)),
            Hyper("lambda_continue", 0.7, layouts=("separate",)),
            Hyper("continue_target_scale", 0.9, invalid=(0.0, 1.5), layouts=("separate",)),
        ),
        modules.DreamerV3ModelLoss, torchrl_objectives.DreamerV3ModelLoss, _model_cases, bench_batch=(16, 16),
        grad_outputs=("loss_model_kl", "loss_model_reco", "loss_model_reward", "loss_model_dynamic",
                      "loss_model_representation", "loss_model_continue"),
    ),
    LossSpec(
        "dreamer_v3_value_loss", dreamer_v3_value_loss, DreamerV3ValueKeys,
        (
            Layout("symlog_time", D.value_td, {"gamma": 0.9}, ("state_value",), compile=True),
            Layout("two_hot_slow", functools.partial(D.value_td, two_hot=True),
                   {"value_loss": "two_hot", "num_value_bins": D.BINS, "slow_critic_regularization": 0.5},
                   ("state_value_logits",)),
            # the optional weight changes the loss when dropped: not fuzzed
            Layout("two_hot_weighted", D.value_weighted_td,
                   {"value_loss": "two_hot", "num_value_bins": D.BINS, "reduction": "sum"},
                   ("state_value_logits",), fuzz=False),
        ),
        (
            Hyper("gamma", 0.9, invalid=UNIT, layouts=("symlog_time",)),
            Hyper("slow_critic_regularization", 0.5, invalid=(-1.0,), layouts=("two_hot_slow",)),
        ),
        modules.DreamerV3ValueLoss, torchrl_objectives.DreamerV3ValueLoss, _value_cases, bench_batch=(64, 15),
        grad_outputs=("loss_value",),
    ),
    LossSpec(
        "dreamer_v3_replay_value_loss", dreamer_v3_replay_value_loss, DreamerV3ValueKeys,
        (Layout("symlog", D.replay_td, {"horizon": 4.0, "lmbda": 0.8}, ("state_value",), compile=True),),
        (Hyper("horizon", 4.0, invalid=(0.5,)), Hyper("lmbda", 0.8, invalid=UNIT)),
        grad_outputs=("loss_replay_value",),
    ),
    LossSpec(
        "dreamer_v3_actor_loss", dreamer_v3_actor_loss, DreamerV3ActorKeys,
        (
            Layout("reparam", D.actor_td, {}, (("next", "reward"), ("next", "state_value"), "entropy"), compile=True),
            Layout("reinforce", functools.partial(D.actor_td, reinforce=True), REINFORCE,
                   (("next", "reward"), ("next", "state_value"), "log_prob", "entropy")),
        ),
        (
            Hyper("gamma", 0.9, invalid=UNIT), Hyper("lmbda", 0.8, invalid=UNIT),
            Hyper("entropy_bonus", 0.01, invalid=(-1.0,)),
            Hyper("return_normalization_min_scale", 1.0, invalid=(0.0, -1.0), layouts=("reparam",)),
            Hyper("return_normalization_rate", 0.3, invalid=UNIT, layouts=("reinforce",)),
        ),
        modules.DreamerV3ActorLoss, torchrl_objectives.DreamerV3ActorLoss, _actor_cases, bench_batch=(64,),
        grad_outputs=("loss_actor", "lambda_target"),
    ),
]

"""Specs of the PPO family: ``ppo_loss``, ``clip_ppo_loss``, ``klpen_ppo_loss``."""

from __future__ import annotations

from torchrl import objectives as torchrl_objectives
from torchrl.objectives import ValueEstimators

from torchrl_functional import modules
from torchrl_functional.functional import PPOKeys, clip_ppo_loss, klpen_ppo_loss, ppo_loss

from ._inputs import categorical, composite, diag_normal, flat_given, layout, masked_categorical, on_policy
from ._modules import on_policy_case
from ._spec import Hyper, Layout, LossSpec

ACTOR = (("actor_output", "logits"), "state_value")
ACTOR_NORMAL = (("actor_output", "loc"), ("actor_output", "scale"), "state_value")
DISCOUNT = (-0.1, 1.5, float("nan"))


#: the layouts beyond one plain head, each on the losses whose TorchRL users run it
VTRACE = Layout("vtrace", on_policy(advantage=False),
                {"dist_class": categorical, "value_estimator": "vtrace", "rho_thresh": 0.9}, ACTOR, fuzz=False)
MASKED = Layout("masked", layout("masked"), {"dist_class": masked_categorical}, ACTOR)
COMPOSITE = Layout("composite", layout("composite"),
                   {"dist_class": composite,
                    "keys": {"action": "action",
                             "sample_log_prob": [("action", "move_log_prob"), ("action", "grip_log_prob")]}},
                   (("actor_output", "params", "move", "loc"), "state_value"))
MULTI_AGENT = Layout("multi_agent", layout("multi_agent"), {"dist_class": categorical}, ACTOR)
ESTIMATING = ("gae", "td0", "vtrace", "masked", "composite", "multi_agent")  # layouts that estimate the advantage


def layouts(old_actor: bool = False, *extra: Layout) -> tuple[Layout, ...]:
    return extra + (
        Layout("gae", on_policy(advantage=False, old_actor=old_actor), {"dist_class": categorical}, ACTOR,
               compile=True),
        Layout("given_normal", on_policy(dist="normal", advantage=True, old_actor=old_actor),
               {"dist_class": diag_normal}, ACTOR_NORMAL),
        Layout("flat_given", flat_given, {"dist_class": categorical}, ACTOR, vmap=False),
        Layout("td0", on_policy(advantage=False, old_actor=old_actor),
               {"dist_class": categorical, "value_estimator": "td0"}, ACTOR, fuzz=False),
    )


def common_hypers() -> tuple[Hyper, ...]:
    return (
        Hyper("gamma", 0.9, invalid=DISCOUNT, entry=True, layouts=ESTIMATING),
        Hyper("lmbda", 0.8, invalid=DISCOUNT, entry=True, layouts=("gae", "masked", "composite", "multi_agent")),
        Hyper("entropy_coeff", 0.05, entry=True),
        Hyper("critic_coeff", 0.5, invalid=(-1.0,), entry=True),
    )


def module_cases(torchrl_cls: type, our_cls: type):
    def cases():
        return [
            on_policy_case("gae", torchrl_cls, our_cls, dist="normal", batch=(2, 6), advantage=False,
                           estimator=ValueEstimators.GAE, functional_call=True),
            on_policy_case("given", torchrl_cls, our_cls),
            on_policy_case("given", torchrl_cls, our_cls, dist="tanh_normal"),
        ]

    return cases


GRAD_OUTPUTS = ("loss_objective", "loss_critic", "loss_entropy")
PPO_TAGS = frozenset({"on_policy", "importance_ratio"})
ON_POLICY_BENCH = (16, 64)  # trajectories x time

SPECS = [
    LossSpec(
        "ppo_loss", ppo_loss, PPOKeys, layouts(False, COMPOSITE), common_hypers(),
        modules.PPOLoss, torchrl_objectives.PPOLoss, module_cases(torchrl_objectives.PPOLoss, modules.PPOLoss),
        random=("generator",), grad_outputs=GRAD_OUTPUTS, bench_batch=ON_POLICY_BENCH, tags=PPO_TAGS,
    ),
    LossSpec(
        "clip_ppo_loss", clip_ppo_loss, PPOKeys, layouts(False, VTRACE, MASKED),
        common_hypers() + (Hyper("clip_epsilon", 0.2, invalid=(-0.1, 1.5), entry=True),),
        modules.ClipPPOLoss, torchrl_objectives.ClipPPOLoss,
        module_cases(torchrl_objectives.ClipPPOLoss, modules.ClipPPOLoss),
        random=("generator",), grad_outputs=GRAD_OUTPUTS, bench_batch=ON_POLICY_BENCH, tags=PPO_TAGS,
    ),
    LossSpec(
        "klpen_ppo_loss", klpen_ppo_loss, PPOKeys, layouts(old_actor=True),
        common_hypers() + (
            Hyper("beta", 0.7, invalid=(-1.0,), entry=True),
            Hyper("dtarg", 0.01, invalid=(0.0, -1.0), tensor=False),
            Hyper("increment", 2.0, invalid=(0.5,), tensor=False),
            Hyper("decrement", 0.5, invalid=(1.5, -0.1), tensor=False),
        ),
        modules.KLPENPPOLoss, torchrl_objectives.KLPENPPOLoss,
        module_cases(torchrl_objectives.KLPENPPOLoss, modules.KLPENPPOLoss),
        random=("generator",), grad_outputs=GRAD_OUTPUTS, bench_batch=ON_POLICY_BENCH,
        tags=PPO_TAGS | {"kl_penalty"},
    ),
]

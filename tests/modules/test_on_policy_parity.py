"""Drop-in parity with TorchRL 0.14.1: outputs and parameter gradients, same seed.

Each case builds TorchRL's class and ours on networks with identical weights, runs
both on the same batch under the same RNG seed (TanhNormal's Monte-Carlo entropy and
KL draw from it), and compares every output entry and every parameter gradient.
"""

from __future__ import annotations

import pytest
import torch
from torchrl.objectives import (
    A2CLoss as TorchRLA2C,
)
from torchrl.objectives import (
    ClipPPOLoss as TorchRLClip,
)
from torchrl.objectives import (
    KLPENPPOLoss as TorchRLKLPEN,
)
from torchrl.objectives import (
    PPOLoss as TorchRLPPO,
)
from torchrl.objectives import (
    ReinforceLoss as TorchRLReinforce,
)
from torchrl.objectives import ValueEstimators

from tests.builders import (
    DISTS,
    assert_grads_close,
    assert_td_close,
    clone_nets,
    loss_sum,
    make_data,
    make_nets,
)
from torchrl_functional import modules as ours

PAIRS = {
    "PPOLoss": (TorchRLPPO, ours.PPOLoss),
    "ClipPPOLoss": (TorchRLClip, ours.ClipPPOLoss),
    "KLPENPPOLoss": (TorchRLKLPEN, ours.KLPENPPOLoss),
    "A2CLoss": (TorchRLA2C, ours.A2CLoss),
    "ReinforceLoss": (TorchRLReinforce, ours.ReinforceLoss),
}
PPO_FAMILY = ("PPOLoss", "ClipPPOLoss", "KLPENPPOLoss")

RENAMED = {
    "advantage": "adv2",
    "value_target": "vt2",
    "value": "sv2",
    "reward": "rew2",
    "done": "done2",
    "terminated": "term2",
}

# (case id, constructor kwargs, options, losses it applies to)
CASES = [
    ("base", {}, {}, tuple(PAIRS)),
    ("gae_BT", {}, {"batch": (3, 7), "advantage": False}, tuple(PAIRS)),
    ("gae_mask_BT", {}, {"batch": (3, 7), "advantage": False, "mask": True}, tuple(PAIRS)),
    ("clip_value", {"clip_value": 0.15}, {}, tuple(PAIRS)),
    ("clip_value_gae", {"clip_value": 0.15}, {"batch": (2, 6), "advantage": False}, tuple(PAIRS)),
    ("sum", {"reduction": "sum"}, {}, tuple(PAIRS)),
    ("none", {"reduction": "none"}, {}, tuple(PAIRS)),
    ("none_mask_BT", {"reduction": "none"}, {"batch": (3, 5), "mask": True}, tuple(PAIRS)),
    ("mean_mask_BT", {}, {"batch": (3, 5), "mask": True}, tuple(PAIRS)),
    ("l2", {"loss_critic_type": "l2"}, {}, tuple(PAIRS)),
    ("l1", {"loss_critic_type": "l1"}, {}, tuple(PAIRS)),
    ("renamed_keys", {}, {"keys": RENAMED}, tuple(PAIRS)),
    ("renamed_keys_gae", {}, {"keys": RENAMED, "batch": (2, 6), "advantage": False}, tuple(PAIRS)),
    ("td_lambda", {}, {"batch": (2, 9), "advantage": False, "estimator": ValueEstimators.TDLambda}, tuple(PAIRS)),
    ("td0", {}, {"batch": (2, 9), "advantage": False, "estimator": ValueEstimators.TD0}, tuple(PAIRS)),
    ("normalize_advantage", {"normalize_advantage": True}, {}, PPO_FAMILY),
    ("normalize_advantage_BT_excl", {"normalize_advantage": True, "normalize_advantage_exclude_dims": (-2,)},
     {"batch": (4, 5)}, PPO_FAMILY),
    ("separate_losses", {"separate_losses": True}, {"shared": True}, PPO_FAMILY + ("A2CLoss",)),
    ("shared_trunk", {}, {"shared": True}, tuple(PAIRS)),
    ("no_critic", {"critic_coeff": None}, {"no_critic": True}, PPO_FAMILY),
    ("critic_coeff", {"critic_coeff": 0.3}, {}, PPO_FAMILY + ("A2CLoss",)),
    ("entropy_coeff", {"entropy_coeff": 0.2}, {}, PPO_FAMILY + ("A2CLoss",)),
    ("no_entropy", {"entropy_bonus": False}, {}, PPO_FAMILY + ("A2CLoss",)),
    ("mc_entropy_3", {"samples_mc_entropy": 3}, {}, PPO_FAMILY + ("A2CLoss",)),
    ("explained_variance_off", {"log_explained_variance": False}, {}, PPO_FAMILY),
    ("max_importance_ratio", {"max_importance_ratio": 1.3}, {}, PPO_FAMILY),
    ("clip_eps_0.1", {"clip_epsilon": 0.1}, {}, ("ClipPPOLoss",)),
    ("clip_eps_asym", {"clip_epsilon": (0.1, 0.3)}, {}, ("ClipPPOLoss",)),
    ("clip_value_true", {"clip_value": True}, {}, ("ClipPPOLoss",)),
    ("klpen_beta", {"beta": 0.4, "dtarg": 0.05, "samples_mc_kl": 2}, {}, ("KLPENPPOLoss",)),
    ("delay_value", {"delay_value": True}, {"batch": (2, 6), "advantage": False}, ("ReinforceLoss",)),
]


def _params(case_losses):
    for case_id, kwargs, opts, losses in CASES:
        for loss_name in losses:
            for dist in DISTS:
                yield pytest.param(loss_name, dist, kwargs, opts, id=f"{loss_name}-{dist}-{case_id}")


def _build(cls, nets, kwargs, opts):
    if opts.get("no_critic"):
        loss = cls(nets.actor, None, **kwargs)
    else:
        loss = cls(nets.actor, nets.critic, **kwargs)
    if opts.get("keys"):
        loss.set_keys(**opts["keys"])
    if opts.get("estimator") is not None:
        hyper = {"gamma": 0.9}
        if opts["estimator"] in (ValueEstimators.TDLambda, ValueEstimators.GAE):
            hyper["lmbda"] = 0.8
        loss.make_value_estimator(opts["estimator"], **hyper)
    return loss


@pytest.mark.parametrize("loss_name, dist, kwargs, opts", list(_params(CASES)))
def test_parity_values_and_gradients(loss_name, dist, kwargs, opts):
    torchrl_cls, our_cls = PAIRS[loss_name]
    keys = opts.get("keys") or {}
    nets = make_nets(dist, seed=3, value_key=keys.get("value", "state_value"), shared=opts.get("shared", False))
    data = make_data(
        dist, opts.get("batch", (12,)), seed=4, with_advantage=opts.get("advantage", True),
        with_mask=opts.get("mask", False), keys=keys, nets=nets,
    )
    ref_nets, our_nets = clone_nets(nets), clone_nets(nets)
    ref = _build(torchrl_cls, ref_nets, kwargs, opts)
    mine = _build(our_cls, our_nets, kwargs, opts)

    data_ref, data_ours = data.clone(), data.clone()
    torch.manual_seed(11)
    out_ref = ref(data_ref)
    torch.manual_seed(11)
    out_ours = mine(data_ours)
    assert_td_close(out_ours, out_ref)

    loss_sum(out_ref).backward()
    loss_sum(out_ours).backward()
    assert_grads_close(mine, ref)
    if loss_name == "KLPENPPOLoss":
        torch.testing.assert_close(mine.beta, ref.beta)
    # ours never writes into the caller's data
    assert (data_ours == data).all()


@pytest.mark.parametrize("loss_name", list(PAIRS))
def test_same_out_keys_and_in_keys(loss_name):
    torchrl_cls, our_cls = PAIRS[loss_name]
    nets = make_nets("normal")
    ref = torchrl_cls(clone_nets(nets).actor, clone_nets(nets).critic)
    mine = our_cls(clone_nets(nets).actor, clone_nets(nets).critic)
    assert list(mine.out_keys) == list(ref.out_keys)
    assert sorted(map(str, mine.in_keys)) == sorted(map(str, ref.in_keys))
    assert isinstance(mine, torchrl_cls)


def test_reinforce_does_not_write_into_input_unlike_torchrl():
    """TorchRL's ReinforceLoss writes the advantage & co. into the caller's TensorDict; ours doesn't."""
    nets = make_nets("normal")
    data = make_data("normal", (2, 6), with_advantage=False, nets=nets)
    ref = TorchRLReinforce(clone_nets(nets).actor, clone_nets(nets).critic)
    mine = ours.ReinforceLoss(clone_nets(nets).actor, clone_nets(nets).critic)
    before = set(data.keys(True, True))
    theirs_in = data.clone()
    ref(theirs_in)
    assert "advantage" in theirs_in.keys()
    ours_in = data.clone()
    mine(ours_in)
    assert set(ours_in.keys(True, True)) == before
    assert (ours_in == data).all()


def test_klpen_beta_updates_like_torchrl_over_several_steps():
    nets = make_nets("normal", seed=5)
    ref = TorchRLKLPEN(clone_nets(nets).actor, clone_nets(nets).critic, dtarg=0.001)
    mine = ours.KLPENPPOLoss(clone_nets(nets).actor, clone_nets(nets).critic, dtarg=0.001)
    betas = []
    for step in range(4):
        data = make_data("normal", (16,), seed=step, nets=nets)
        ref(data.clone())
        mine(data.clone())
        torch.testing.assert_close(mine.beta, ref.beta)
        betas.append(mine.beta.item())
    assert betas[0] != 1.0  # it really moved
    mine.reset()
    assert mine.beta == 1.0

"""Drop-in parity with TorchRL 0.14.1: outputs and parameter gradients, same seed.

Each case builds TorchRL's class and ours on networks with identical weights, runs
both on the same batch under the same RNG seed (TanhNormal's Monte-Carlo entropy and
KL draw from it), and compares every output entry and every parameter gradient.
"""

from __future__ import annotations

import re

import pytest
import torch
from torchrl.objectives import ValueEstimators

from tests.builders import DISTS, assert_grads_close, assert_td_close, clone_nets, loss_sum, make_data, make_nets
from tests.modules.by_spec import accepts, on_policy_specs, pairs

PAIRS = pairs(on_policy_specs())

RENAMED = {
    "advantage": "adv2",
    "value_target": "vt2",
    "value": "sv2",
    "reward": "rew2",
    "done": "done2",
    "terminated": "term2",
}

# (case id, constructor kwargs, options[, more keywords]): each case runs on every on-policy class
# whose TorchRL constructor takes its keywords (and the more keywords the option refers to)
CASES = [
    ("base", {}, {}),
    ("gae_BT", {}, {"batch": (3, 7), "advantage": False}),
    ("gae_mask_BT", {}, {"batch": (3, 7), "advantage": False, "mask": True}),
    ("clip_value", {"clip_value": 0.15}, {}),
    ("clip_value_gae", {"clip_value": 0.15}, {"batch": (2, 6), "advantage": False}),
    ("sum", {"reduction": "sum"}, {}),
    ("none", {"reduction": "none"}, {}),
    ("none_mask_BT", {"reduction": "none"}, {"batch": (3, 5), "mask": True}),
    ("mean_mask_BT", {}, {"batch": (3, 5), "mask": True}),
    ("l2", {"loss_critic_type": "l2"}, {}),
    ("l1", {"loss_critic_type": "l1"}, {}),
    ("renamed_keys", {}, {"keys": RENAMED}),
    ("renamed_keys_gae", {}, {"keys": RENAMED, "batch": (2, 6), "advantage": False}),
    ("td_lambda", {}, {"batch": (2, 9), "advantage": False, "estimator": ValueEstimators.TDLambda}),
    ("td0", {}, {"batch": (2, 9), "advantage": False, "estimator": ValueEstimators.TD0}),
    ("normalize_advantage", {"normalize_advantage": True}, {}),
    ("normalize_advantage_BT_excl", {"normalize_advantage": True, "normalize_advantage_exclude_dims": (-2,)},
     {"batch": (4, 5)}),
    ("separate_losses", {"separate_losses": True}, {"shared": True}),
    ("shared_trunk", {}, {"shared": True}),
    ("no_critic", {"critic_coeff": None}, {"no_critic": True}),
    ("critic_coeff", {"critic_coeff": 0.3}, {}),
    ("entropy_coeff", {"entropy_coeff": 0.2}, {}),
    ("no_entropy", {"entropy_bonus": False}, {}),
    ("mc_entropy_3", {"samples_mc_entropy": 3}, {}),
    ("explained_variance_off", {"log_explained_variance": False}, {}),
    ("max_importance_ratio", {"max_importance_ratio": 1.3}, {}),
    ("clip_eps_0.1", {"clip_epsilon": 0.1}, {}),
    ("clip_eps_asym", {"clip_epsilon": (0.1, 0.3)}, {}),
    ("clip_value_true", {"clip_value": True}, {}, ("clip_epsilon",)),  # clips the value by clip_epsilon
    ("klpen_beta", {"beta": 0.4, "dtarg": 0.05, "samples_mc_kl": 2}, {}),
    ("delay_value", {"delay_value": True}, {"batch": (2, 6), "advantage": False}),
]


def _params(case_losses):
    for case_id, kwargs, opts, *more in CASES:
        needs = (*kwargs, *(more[0] if more else ()))
        for loss_name in (name for name, (torchrl_cls, _) in PAIRS.items() if accepts(torchrl_cls, *needs)):
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
    try:
        ref = _build(torchrl_cls, ref_nets, kwargs, opts)
    except TypeError as refused:  # TorchRL refuses the configuration (A2C without a critic): ours too
        with pytest.raises(TypeError, match=re.escape(str(refused))):
            _build(our_cls, our_nets, kwargs, opts)
        return
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
    if hasattr(ref, "beta"):  # the KL-penalty coefficient adapts in forward
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

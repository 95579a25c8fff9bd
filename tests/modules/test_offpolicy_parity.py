"""Drop-in parity of the off-policy modules with TorchRL 0.14.1: outputs, parameter
gradients and the priority written into the data, same seed.

Each case builds TorchRL's class and ours on the same networks, copies TorchRL's
parameters into ours (TorchRL re-samples Q-ensemble members at construction), perturbs
the target parameters identically (so targets differ from the online networks), runs
both on the same batch under the same RNG seed and compares every output entry, every
parameter gradient and the ``td_error`` written into the input.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch import nn
from torchrl.data import Bounded, Categorical, OneHot
from torchrl.modules import OneHotCategorical as OneHotCategoricalDist
from torchrl.modules import ProbabilisticActor, QValueActor, TanhNormal, ValueOperator
from torchrl.objectives import (
    CQLLoss as TCQL,
)
from torchrl.objectives import (
    DDPGLoss as TDDPG,
)
from torchrl.objectives import (
    DiscreteCQLLoss as TDCQL,
)
from torchrl.objectives import (
    DiscreteIQLLoss as TDIQL,
)
from torchrl.objectives import (
    DiscreteSACLoss as TDSAC,
)
from torchrl.objectives import (
    DQNLoss as TDQN,
)
from torchrl.objectives import (
    IQLLoss as TIQL,
)
from torchrl.objectives import (
    SACLoss as TSAC,
)
from torchrl.objectives import (
    TD3Loss as TTD3,
)
from torchrl.objectives import (
    ValueEstimators,
)

from torchrl_functional import modules as ours

OBS, ACT, NACT, HID = 4, 2, 3, 8


# ----------------------------------------------------------------------------- builders


def _init(module: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.4)
    return module


def det_actor(seed=0, action_key="action"):
    net = nn.Sequential(nn.Linear(OBS, HID), nn.Tanh(), nn.Linear(HID, ACT), nn.Tanh())
    return TensorDictModule(_init(net, seed), in_keys=["observation"], out_keys=[action_key])


def stoch_actor(seed=0, action_key="action"):
    net = nn.Sequential(nn.Linear(OBS, HID), nn.Tanh(), nn.Linear(HID, 2 * ACT), NormalParamExtractor())
    module = TensorDictModule(_init(net, seed), in_keys=["observation"], out_keys=["loc", "scale"])
    spec = Bounded(-torch.ones(ACT), torch.ones(ACT), (ACT,))
    return ProbabilisticActor(module, in_keys=["loc", "scale"], out_keys=[action_key], spec=spec,
                              distribution_class=TanhNormal, return_log_prob=True)


def discrete_actor(seed=0, one_hot=False):
    net = nn.Sequential(nn.Linear(OBS, HID), nn.Tanh(), nn.Linear(HID, NACT))
    module = TensorDictModule(_init(net, seed), in_keys=["observation"], out_keys=["logits"])
    dist = OneHotCategoricalDist if one_hot else torch.distributions.Categorical
    spec = OneHot(NACT) if one_hot else Categorical(NACT)
    return ProbabilisticActor(module, in_keys=["logits"], distribution_class=dist, spec=spec, return_log_prob=True)


class _QNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(OBS + ACT, HID), nn.Tanh(), nn.Linear(HID, 1))

    def forward(self, obs, action):
        return self.net(torch.cat([obs, action], -1))


def qvalue(seed=1, out_key="state_action_value", action_key="action"):
    return ValueOperator(_init(_QNet(), seed), in_keys=["observation", action_key], out_keys=[out_key])


def vvalue(seed=2, out_key="state_value"):
    net = nn.Sequential(nn.Linear(OBS, HID), nn.Tanh(), nn.Linear(HID, 1))
    return ValueOperator(_init(net, seed), in_keys=["observation"], out_keys=[out_key])


def discrete_q(seed=1, out_key="action_value"):
    net = nn.Sequential(nn.Linear(OBS, HID), nn.Tanh(), nn.Linear(HID, NACT))
    return TensorDictModule(_init(net, seed), in_keys=["observation"], out_keys=[out_key])


def dqn_actor(seed=1, one_hot=False):
    net = nn.Sequential(nn.Linear(OBS, HID), nn.Tanh(), nn.Linear(HID, NACT))
    return QValueActor(_init(net, seed), in_keys=["observation"], spec=OneHot(NACT) if one_hot else Categorical(NACT))


def make_data(batch, *, discrete=None, seed=0, mask=False, weights=False, keys=None):
    """A replay batch. ``discrete``: None (continuous), "categorical" or "one_hot"."""
    keys = {"reward": "reward", "done": "done", "terminated": "terminated", "action": "action",
            "priority_weight": "priority_weight", **(keys or {})}
    g = torch.Generator().manual_seed(seed + 100)
    shape = torch.Size(batch)
    if discrete == "categorical":
        action = torch.randint(NACT, shape, generator=g)
    elif discrete == "one_hot":
        action = nn.functional.one_hot(torch.randint(NACT, shape, generator=g), NACT)
    else:
        action = torch.rand(*shape, ACT, generator=g) * 1.8 - 0.9
    done = torch.rand(*shape, 1, generator=g) < 0.2
    terminated = done & (torch.rand(*shape, 1, generator=g) < 0.6)
    td = TensorDict({
        "observation": torch.randn(*shape, OBS, generator=g),
        keys["action"]: action,
        "next": {
            "observation": torch.randn(*shape, OBS, generator=g),
            keys["reward"]: torch.randn(*shape, 1, generator=g),
            keys["done"]: done,
            keys["terminated"]: terminated,
        },
    }, shape)
    if weights:
        td[keys["priority_weight"]] = torch.rand(*shape, generator=g) + 0.1
    if mask:
        m = torch.rand(*shape, generator=g) < 0.7
        m.view(-1)[0] = True
        td["collector", "mask"] = m
    return td


# ----------------------------------------------------------------------------- comparison


def sync(mine, ref):
    """Copy TorchRL's parameters/buffers into ours; perturb the targets of both identically."""
    mine.load_state_dict(ref.state_dict())
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for (name, p_ref), (name2, p_mine) in zip(ref.state_dict(keep_vars=True).items(),
                                                   mine.state_dict(keep_vars=True).items()):
            assert name == name2
            if name.startswith("target_") and p_ref.is_floating_point():
                noise = 0.05 * torch.randn(p_ref.shape, generator=g)
                p_ref.add_(noise)
                p_mine.add_(noise)


def loss_sum(out):
    return sum(v.sum() for k, v in out.items() if k.startswith("loss_") or k == "loss")


def compare(ref, mine, data, *, seed=11, skip=(), atol=1e-6, rtol=1e-5, sum_only=(), skip_grads=None):
    d_ref, d_mine = data.clone(), data.clone()
    torch.manual_seed(seed)
    out_ref = ref(d_ref)
    torch.manual_seed(seed)
    out_mine = mine(d_mine)
    assert type(out_mine) is type(out_ref)
    assert set(out_mine.keys(True, True)) == set(out_ref.keys(True, True)), (
        sorted(out_mine.keys(True, True)), sorted(out_ref.keys(True, True)))
    assert out_mine.batch_size == out_ref.batch_size
    for key in out_ref.keys(True, True):
        if key in skip:
            continue
        a, b = out_mine.get(key), out_ref.get(key)
        if key in sum_only:
            a, b = a.sum(), b.sum()
        if not isinstance(b, torch.Tensor):
            a, b = torch.as_tensor(a), torch.as_tensor(b)
        assert a.shape == b.shape, (key, a.shape, b.shape)
        torch.testing.assert_close(a, b, atol=atol, rtol=rtol, msg=lambda m, k=key: f"{k}: {m}")
    # the priority written into the data for prioritized replay
    prio = ref.tensor_keys.priority
    torch.testing.assert_close(d_mine.get(prio), d_ref.get(prio), atol=atol, rtol=rtol)
    # nothing else written into the caller's data
    assert set(d_mine.keys(True, True)) == set(data.keys(True, True)) | {prio if isinstance(prio, tuple) else prio}
    loss_sum(out_ref).backward()
    loss_sum(out_mine).backward()
    named_ref = dict(ref.named_parameters())
    named_mine = dict(mine.named_parameters())
    assert named_ref.keys() == named_mine.keys()
    checked = 0
    for name, p in named_ref.items():
        q = named_mine[name]
        if skip_grads is not None and skip_grads in name:
            continue
        if p.grad is None:
            assert q.grad is None or not q.grad.any(), name
            continue
        assert q.grad is not None, name
        torch.testing.assert_close(q.grad, p.grad, atol=atol, rtol=rtol, msg=lambda m, n=name: f"grad {n}: {m}")
        checked += 1
    assert checked > 0
    return out_mine, out_ref


def build(ref_cls, our_cls, nets, kwargs, keys=None, estimator=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = ref_cls(*copy.deepcopy(nets), **kwargs)
        mine = our_cls(*copy.deepcopy(nets), **kwargs)
    for loss in (ref, mine):
        if keys:
            loss.set_keys(**keys)
        if estimator is not None:
            hp = {"gamma": 0.9}
            if estimator is ValueEstimators.TDLambda:
                hp["lmbda"] = 0.7
            loss.make_value_estimator(estimator, **hp)
    sync(mine, ref)
    return ref, mine


# ----------------------------------------------------------------------------- cases

# (id, constructor kwargs, data options) shared by every loss
COMMON = [
    ("base", {}, {}),
    ("BT", {}, {"batch": (3, 5)}),
    ("sum", {"reduction": "sum"}, {}),
    ("none", {"reduction": "none"}, {}),
    ("mask_BT", {}, {"batch": (3, 5), "mask": True}),
    ("none_mask", {"reduction": "none"}, {"mask": True}),
    ("l1", {"loss_function": "l1"}, {}),
    ("l2", {"loss_function": "l2"}, {}),
    ("smooth_l1", {"loss_function": "smooth_l1"}, {}),
    ("td1_BT", {}, {"batch": (2, 6), "estimator": ValueEstimators.TD1}),
    ("tdlambda_BT", {}, {"batch": (2, 6), "estimator": ValueEstimators.TDLambda}),
    ("renamed", {}, {"keys": {"reward": "rew2", "done": "done2", "terminated": "term2"}}),
]
# priority weights (only for losses that read them)
WEIGHTED = [
    ("weights", {}, {"weights": True}),
    ("weights_sum_mask", {"reduction": "sum"}, {"weights": True, "mask": True}),
    ("weights_none", {"reduction": "none"}, {"weights": True}),
    ("weights_off", {"use_prioritized_weights": False}, {"weights": True}),
    ("weights_renamed", {}, {"weights": True, "keys": {"priority_weight": "pw2"}}),
]


def _ids(cases):
    return [c[0] for c in cases]


def _data(opts, discrete=None):
    return make_data(opts.get("batch", (12,)), discrete=discrete, mask=opts.get("mask", False),
                     weights=opts.get("weights", False), keys=opts.get("keys"))


def _run(ref_cls, our_cls, nets, kwargs, opts, discrete=None, **kw):
    ref, mine = build(ref_cls, our_cls, nets, kwargs, opts.get("keys"), opts.get("estimator"))
    return compare(ref, mine, _data(opts, discrete), **kw)


DQN_CASES = COMMON + WEIGHTED + [
    ("double", {"double_dqn": True}, {}),
    ("double_BT_mask", {"double_dqn": True}, {"batch": (3, 4), "mask": True}),
    ("no_delay", {"delay_value": False}, {}),
]


@pytest.mark.parametrize("space", ["categorical", "one_hot"])
@pytest.mark.parametrize("case_id, kwargs, opts", DQN_CASES, ids=_ids(DQN_CASES))
def test_dqn_parity(space, case_id, kwargs, opts):
    _run(TDQN, ours.DQNLoss, (dqn_actor(one_hot=space == "one_hot"),), {"action_space": space, **kwargs}, opts,
         discrete=space)


DDPG_CASES = COMMON + WEIGHTED + [
    ("delay_actor", {"delay_actor": True}, {}),
    ("no_delay_value", {"delay_value": False}, {}),
    ("renamed_value", {}, {"keys": {"state_action_value": "sav2"}}),
]


@pytest.mark.parametrize("case_id, kwargs, opts", DDPG_CASES, ids=_ids(DDPG_CASES))
def test_ddpg_parity(case_id, kwargs, opts):
    out_key = (opts.get("keys") or {}).get("state_action_value", "state_action_value")
    _run(TDDPG, ours.DDPGLoss, (det_actor(), qvalue(out_key=out_key)), kwargs, opts)


TD3_CASES = COMMON + WEIGHTED + [
    ("ensemble_3", {"num_qvalue_nets": 3}, {}),
    ("ensemble_1", {"num_qvalue_nets": 1}, {}),
    ("no_delay", {"delay_actor": False, "delay_qvalue": False}, {}),
    ("noise", {"policy_noise": 0.5, "noise_clip": 0.3}, {}),
    ("renamed_action", {}, {"keys": {"action": "act2", "state_action_value": "sav2"}}),
]


@pytest.mark.parametrize("case_id, kwargs, opts", TD3_CASES, ids=_ids(TD3_CASES))
def test_td3_parity(case_id, kwargs, opts):
    keys = opts.get("keys") or {}
    act, sav = keys.get("action", "action"), keys.get("state_action_value", "state_action_value")
    bounds = (-torch.ones(ACT) * 0.8, torch.ones(ACT) * 0.8)
    _run(TTD3, ours.TD3Loss, (det_actor(action_key=act), qvalue(out_key=sav, action_key=act)),
         {"bounds": bounds, **kwargs}, opts)


SAC_CASES = COMMON + WEIGHTED + [
    ("ensemble_1", {"num_qvalue_nets": 1}, {}),
    ("ensemble_3_BT", {"num_qvalue_nets": 3}, {"batch": (3, 4)}),
    ("delay_actor", {"delay_actor": True, "delay_qvalue": False}, {}),
    ("fixed_alpha", {"fixed_alpha": True, "alpha_init": 0.3}, {}),
    ("alpha_bounds", {"alpha_init": 5.0, "min_alpha": 0.1, "max_alpha": 2.0}, {}),
    ("target_entropy", {"target_entropy": -0.5}, {}),
    ("separate_losses", {"separate_losses": True}, {}),
    ("none_non_tensor", {"reduction": "none", "scalar_output_mode": "non_tensor"}, {}),
    ("renamed_action", {}, {"keys": {"action": "act2", "state_action_value": "sav2"}}),
]


@pytest.mark.parametrize("case_id, kwargs, opts", SAC_CASES, ids=_ids(SAC_CASES))
def test_sac_parity(case_id, kwargs, opts):
    keys = opts.get("keys") or {}
    act, sav = keys.get("action", "action"), keys.get("state_action_value", "state_action_value")
    ref, mine = _pair_sac(act, sav, kwargs, opts)
    out_mine, _ = compare(ref, mine, _data(opts))
    torch.testing.assert_close(mine.log_alpha, ref.log_alpha)
    if case_id == "alpha_bounds":
        assert float(mine.log_alpha.exp()) == pytest.approx(2.0)  # clamped in place, as TorchRL


def _pair_sac(act, sav, kwargs, opts):
    nets = (stoch_actor(action_key=act), qvalue(out_key=sav, action_key=act))
    return build(TSAC, ours.SACLoss, nets, kwargs, opts.get("keys"), opts.get("estimator"))


def test_sac_v1_is_a_clear_error():
    with pytest.raises(NotImplementedError, match="SAC v1"):
        ours.SACLoss(stoch_actor(), qvalue(), vvalue())


def test_sac_alpha_bounds_follow_torchrl_over_steps():
    ref, mine = _pair_sac("action", "state_action_value", {"alpha_init": 1.0, "min_alpha": 0.5, "max_alpha": 1.5}, {})
    for loss in (ref, mine):
        opt = torch.optim.SGD([loss.log_alpha], lr=5.0)
        for step in range(3):
            torch.manual_seed(step)
            out = loss(make_data((8,), seed=step))
            opt.zero_grad()
            out["loss_alpha"].backward()
            opt.step()
    torch.testing.assert_close(mine.log_alpha, ref.log_alpha)


DSAC_CASES = COMMON + WEIGHTED + [
    ("ensemble_3", {"num_qvalue_nets": 3}, {}),
    ("fixed_alpha", {"fixed_alpha": True, "alpha_init": 0.3}, {}),
    ("alpha_bounds", {"alpha_init": 5.0, "min_alpha": 0.1, "max_alpha": 2.0}, {}),
    ("target_entropy", {"target_entropy": 0.4}, {}),
    ("entropy_weight", {"target_entropy_weight": 0.5}, {}),
]


@pytest.mark.parametrize("space", ["categorical", "one_hot"])
@pytest.mark.parametrize("case_id, kwargs, opts", DSAC_CASES, ids=_ids(DSAC_CASES))
def test_discrete_sac_parity(space, case_id, kwargs, opts):
    nets = (discrete_actor(one_hot=space == "one_hot"), discrete_q())
    kwargs = {"action_space": space, "num_actions": NACT, **kwargs}
    ref, mine = build(TDSAC, ours.DiscreteSACLoss, nets, kwargs, opts.get("keys"), opts.get("estimator"))
    compare(ref, mine, _data(opts, space))
    torch.testing.assert_close(mine.log_alpha, ref.log_alpha)


IQL_CASES = COMMON + [
    ("ensemble_1", {"num_qvalue_nets": 1}, {}),
    ("ensemble_3_BT", {"num_qvalue_nets": 3}, {"batch": (3, 4)}),
    ("expectile_temperature", {"expectile": 0.8, "temperature": 3.0}, {}),
    ("none_non_tensor", {"reduction": "none", "scalar_output_mode": "non_tensor"}, {}),
    ("renamed_value", {}, {"keys": {"value": "sv2", "state_action_value": "sav2"}}),
]


@pytest.mark.parametrize("case_id, kwargs, opts", IQL_CASES, ids=_ids(IQL_CASES))
def test_iql_parity(case_id, kwargs, opts):
    keys = opts.get("keys") or {}
    nets = (stoch_actor(), qvalue(out_key=keys.get("state_action_value", "state_action_value")),
            vvalue(out_key=keys.get("value", "state_value")))
    ref, mine = build(TIQL, ours.IQLLoss, nets, kwargs, keys, opts.get("estimator"))
    if opts.get("mask"):
        # TorchRL's IQLLoss drops the mask from loss_qvalue (see test_iql_masks_loss_qvalue_unlike_torchrl)
        compare(ref, mine, _data(opts), skip=("loss_qvalue",), skip_grads="qvalue_network")
    else:
        compare(ref, mine, _data(opts))


def test_iql_masks_loss_qvalue_unlike_torchrl():
    """TorchRL 0.14.1's IQLLoss.qvalue_loss selects entries without the mask; ours masks it
    like every other term: the masked loss equals the loss on the valid samples alone."""
    nets = (stoch_actor(), qvalue(), vvalue())
    ref, mine = build(TIQL, ours.IQLLoss, nets, {}, None, None)
    data = make_data((12,), mask=True)
    valid = data["collector", "mask"]
    assert not valid.all()
    masked = mine(data.clone())["loss_qvalue"]
    only_valid = data[valid].clone()
    del only_valid["collector"]
    torch.testing.assert_close(masked, mine(only_valid)["loss_qvalue"])
    unmasked = data.clone()
    del unmasked["collector"]
    torch.testing.assert_close(ref(data.clone())["loss_qvalue"], mine(unmasked)["loss_qvalue"])


@pytest.mark.parametrize("space", ["categorical", "one_hot"])
@pytest.mark.parametrize("case_id, kwargs, opts", IQL_CASES, ids=_ids(IQL_CASES))
def test_discrete_iql_parity(space, case_id, kwargs, opts):
    keys = opts.get("keys") or {}
    nets = (discrete_actor(one_hot=space == "one_hot"),
            discrete_q(out_key=keys.get("state_action_value", "state_action_value")),
            vvalue(out_key=keys.get("value", "state_value")))
    ref, mine = build(TDIQL, ours.DiscreteIQLLoss, nets, {"action_space": space, **kwargs}, keys, opts.get("estimator"))
    compare(ref, mine, _data(opts, space))


CQL_COMMON = [c for c in COMMON if c[0] not in ("none", "mask_BT", "none_mask")]
CQL_CASES = CQL_COMMON + [
    ("num_random_3_BT", {"num_random": 3}, {"batch": (2, 3)}),
    ("stochastic_backup", {"deterministic_backup": False}, {}),
    ("max_q_backup", {"max_q_backup": True, "num_random": 4}, {}),
    ("max_q_backup_BT", {"max_q_backup": True, "num_random": 2}, {"batch": (2, 3)}),
    ("temperature_weight", {"temperature": 2.0, "min_q_weight": 0.5}, {}),
    ("lagrange", {"with_lagrange": True, "lagrange_thresh": 0.3}, {}),
    ("alpha_bounds", {"alpha_init": 5.0, "min_alpha": 0.1, "max_alpha": 2.0}, {}),
    ("fixed_alpha", {"fixed_alpha": True, "alpha_init": 0.4}, {}),
    ("delay_actor", {"delay_actor": True}, {}),
    # per-sample loss_cql differs by design (see cql_loss); its total and all else match
    ("none", {"reduction": "none", "scalar_output_mode": "exclude"}, {"sum_only": ("loss_cql",)}),
    ("none_BT", {"reduction": "none", "scalar_output_mode": "exclude"}, {"batch": (2, 3), "sum_only": ("loss_cql",)}),
]


@pytest.mark.parametrize("case_id, kwargs, opts", CQL_CASES, ids=_ids(CQL_CASES))
def test_cql_parity(case_id, kwargs, opts):
    ref, mine = build(TCQL, ours.CQLLoss, (stoch_actor(), qvalue()), kwargs, opts.get("keys"), opts.get("estimator"))
    compare(ref, mine, _data(opts), sum_only=opts.get("sum_only", ()), atol=2e-6)
    torch.testing.assert_close(mine.log_alpha, ref.log_alpha)


def test_cql_per_sample_penalty_differs_from_torchrl_only_per_sample():
    """TorchRL broadcasts the [B] log-sum-exp against Q(s, a) [B, 1]: each sample gets the
    batch mean of the log-sum-exp. Ours keeps each sample's own; totals agree."""
    ref, mine = build(TCQL, ours.CQLLoss, (stoch_actor(), qvalue()), {"reduction": "none"}, None, None)
    data = _data({})
    torch.manual_seed(3)
    out_ref = ref(data.clone())
    torch.manual_seed(3)
    out_mine = mine(data.clone())
    torch.testing.assert_close(out_mine["loss_cql"].sum(), out_ref["loss_cql"].sum())
    assert not torch.allclose(out_mine["loss_cql"], out_ref["loss_cql"])


DCQL_CASES = [c for c in COMMON] + [
    ("no_delay", {"delay_value": False}, {}),
]


@pytest.mark.parametrize("space", ["categorical", "one_hot"])
@pytest.mark.parametrize("case_id, kwargs, opts", DCQL_CASES, ids=_ids(DCQL_CASES))
def test_discrete_cql_parity(space, case_id, kwargs, opts):
    ref, mine = build(TDCQL, ours.DiscreteCQLLoss, (dqn_actor(one_hot=space == "one_hot"),),
                      {"action_space": space, **kwargs}, opts.get("keys"), opts.get("estimator"))
    compare(ref, mine, _data(opts, space))


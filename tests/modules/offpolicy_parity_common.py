"""Builders and the comparison behind the off-policy module parity tests (``test_<family>.py``):
drop-in modules against TorchRL 0.14.1's classes, same networks, same data, same seed.

Each case builds TorchRL's class and ours on the same networks, copies TorchRL's
parameters into ours (TorchRL re-samples Q-ensemble members at construction), perturbs
the target parameters identically (so targets differ from the online networks), runs
both on the same batch under the same RNG seed and compares every output entry, every
parameter gradient and the ``td_error`` written into the input.
"""

from __future__ import annotations

import copy
import warnings

import torch
from tensordict import TensorDict
from tensordict.nn import NormalParamExtractor, TensorDictModule, TensorDictSequential
from torch import nn
from torchrl.data import Bounded, Categorical, MultiOneHot, OneHot
from torchrl.data.postprocs.postprocs import MultiStep
from torchrl.modules import OneHotCategorical as OneHotCategoricalDist
from torchrl.modules import ProbabilisticActor, QValueActor, QValueModule, TanhNormal, ValueOperator
from torchrl.objectives import ValueEstimators

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


class _TieFirstTwo(nn.Module):
    """``[x0, x1] -> [x0, x0, x1]``: actions 0 and 1 always share their value, so the greedy
    action is a tie wherever ``x0 > x1``."""

    def forward(self, x):
        return torch.cat([x[..., :1], x], -1)


#: the sub-action sizes of the multi one-hot action space
NVEC = (2, 3)


def dqn_actor(seed=1, one_hot=False, tied=False, mult=False):
    """A QValueActor over ``NACT`` actions (categorical or one-hot), or with ``mult`` over a multi
    one-hot space of sub-actions ``NVEC``; ``tied``: actions 0 and 1 always share their value."""
    n = sum(NVEC) if mult else NACT
    head = nn.Sequential(nn.Linear(HID, n - 1), _TieFirstTwo()) if tied else nn.Linear(HID, n)
    net = nn.Sequential(nn.Linear(OBS, HID), nn.Tanh(), head)
    if mult:  # TorchRL's QValueActor does not pass var_nums on: its two parts, by hand
        return TensorDictSequential(
            TensorDictModule(_init(net, seed), in_keys=["observation"], out_keys=["action_value"]),
            QValueModule(action_space="mult_one_hot", var_nums=list(NVEC), spec=MultiOneHot(list(NVEC))),
        )
    return QValueActor(_init(net, seed), in_keys=["observation"], spec=OneHot(NACT) if one_hot else Categorical(NACT))


def make_data(batch, *, discrete=None, seed=0, mask=False, weights=False, keys=None, nstep=None, shifted=False):
    """A replay batch. ``discrete``: None (continuous), "categorical", "one_hot" or "mult_one_hot"; ``nstep=n``:
    a ``[B, T]`` batch turned into n-step data by TorchRL's ``MultiStep`` (``gamma=0.9``);
    ``shifted``: a ``"shifted_valid"`` mask (TorchRL's shifted estimators), a valid prefix per row."""
    keys = {"reward": "reward", "done": "done", "terminated": "terminated", "action": "action",
            "priority_weight": "priority_weight", **(keys or {})}
    g = torch.Generator().manual_seed(seed + 100)
    shape = torch.Size(batch)
    if discrete == "categorical":
        action = torch.randint(NACT, shape, generator=g)
    elif discrete == "one_hot":
        action = nn.functional.one_hot(torch.randint(NACT, shape, generator=g), NACT)
    elif discrete == "mult_one_hot":
        action = torch.cat([nn.functional.one_hot(torch.randint(n, shape, generator=g), n) for n in NVEC], -1)
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
    if shifted:
        lengths = torch.randint(2, shape[-1] + 1, shape[:-1], generator=g)
        td["shifted_valid"] = torch.arange(shape[-1]) < lengths.unsqueeze(-1)
        assert not td["shifted_valid"].all()
    if nstep is not None:
        td.names = [None] * (len(shape) - 1) + ["time"]
        td = MultiStep(gamma=0.9, n_steps=nstep)(td)
        assert td["steps_to_next_obs"].max() > 1 or nstep == 1
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
    # a ValueEstimators member, or (member, its extra arguments)
    estimator, extra = estimator if isinstance(estimator, tuple) else (estimator, {})
    for loss in (ref, mine):
        if keys:
            loss.set_keys(**keys)
        if estimator is not None:
            hp = {"gamma": 0.9, **extra}
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
    # n-step data from TorchRL's MultiStep: each sample discounted by gamma ** steps_to_next_obs
    ("nstep1_BT", {}, {"batch": (3, 5), "nstep": 1}),
    ("nstep3_BT", {}, {"batch": (3, 5), "nstep": 3}),
    ("nstep2_mask_BT", {}, {"batch": (3, 5), "nstep": 2, "mask": True}),
    ("nstep2_tdlambda_BT", {}, {"batch": (2, 6), "nstep": 2, "estimator": ValueEstimators.TDLambda}),
    # "shifted_valid": a loss mask, and the end of each trajectory for multi-step returns
    ("shifted_td1_BT", {}, {"batch": (4, 6), "shifted": True, "estimator": ValueEstimators.TD1}),
    ("shifted_tdlambda_BT", {}, {"batch": (4, 6), "shifted": True, "estimator": ValueEstimators.TDLambda}),
    # rewards standardised over the batch before the target (the estimators' average_rewards)
    ("average_rewards", {}, {"estimator": (ValueEstimators.TD0, {"average_rewards": True})}),
    ("average_rewards_tdlambda_BT", {}, {"batch": (2, 6),
                                         "estimator": (ValueEstimators.TDLambda, {"average_rewards": True})}),
]
# priority weights (only for losses that read them)
WEIGHTED = [
    ("weights", {}, {"weights": True}),
    ("weights_sum_mask", {"reduction": "sum"}, {"weights": True, "mask": True}),
    ("weights_none", {"reduction": "none"}, {"weights": True}),
    ("weights_off", {"use_prioritized_weights": False}, {"weights": True}),
    ("weights_renamed", {}, {"weights": True, "keys": {"priority_weight": "pw2"}}),
]


def ids(cases):
    return [c[0] for c in cases]


def data_for(opts, discrete=None):
    return make_data(opts.get("batch", (12,)), discrete=discrete, mask=opts.get("mask", False),
                     weights=opts.get("weights", False), keys=opts.get("keys"), nstep=opts.get("nstep"),
                     shifted=opts.get("shifted", False))


def run(ref_cls, our_cls, nets, kwargs, opts, discrete=None, **kw):
    ref, mine = build(ref_cls, our_cls, nets, kwargs, opts.get("keys"), opts.get("estimator"))
    return compare(ref, mine, data_for(opts, discrete), **kw)


"""No fallback: the on-policy modules never reach TorchRL's loss ``forward``, its loss helpers,
its value estimators' ``forward``/``value_estimate`` or its value kernels for a number.

Every such TorchRL function is patched to raise; each module then runs (forward and backward)
on each configuration: every value estimator and its options, composite/masked/multi-agent
layouts, ``delay_actor``, ``advantage_norm``, value clipping."""

from __future__ import annotations

import functools
import inspect

import pytest
import torchrl.objectives.value.advantages as trl_adv
from tensordict.nn import set_composite_lp_aggregate
from torchrl.modules import PopArtValueNorm
from torchrl.objectives import ValueEstimators as E
from torchrl.objectives.common import LossModule

from tests.builders import loss_sum, make_data, make_nets
from tests.modules.by_spec import accepts, on_policy_specs, pairs
from tests.modules.onpolicy_nets import (
    MARL_KEYS,
    composite_data,
    composite_nets,
    marl_data,
    marl_nets,
    masked_data,
    masked_nets,
)


class Reached(AssertionError):
    pass


def _raiser(name):
    def boom(*args, **kwargs):
        raise Reached(f"reached TorchRL's {name}")

    return boom


#: TorchRL's loss methods and helpers that compute numbers (patched wherever a class defines them)
_LOSS_METHODS = ("forward", "loss_critic", "_get_entropy", "_get_cur_log_prob", "_log_weight", "_standardize_advantage",
                 "_maybe_normalize_advantage", "_scale_advantage", "_weighted_loss_entropy", "get_entropy_bonus",
                 "_log_probs")
SPECS = on_policy_specs()
_ESTIMATORS = (trl_adv.TD0Estimator, trl_adv.TD1Estimator, trl_adv.TDLambdaEstimator, trl_adv.GAE,
               trl_adv.MultiAgentGAE, trl_adv.VTrace)
_KERNELS = ("generalized_advantage_estimate", "vec_generalized_advantage_estimate", "td0_return_estimate",
            "td_lambda_return_estimate", "vec_td_lambda_return_estimate", "vec_td1_return_estimate",
            "vtrace_advantage_estimate")
_HELPERS = ("distance_loss", "_clip_value_loss", "_standardize")


@pytest.fixture
def torchrl_math_raises(monkeypatch):
    for cls in {k for spec in SPECS for k in spec.torchrl.__mro__ if issubclass(k, LossModule) and k is not LossModule}:
        for name in _LOSS_METHODS:
            if name in cls.__dict__:
                monkeypatch.setattr(cls, name, _raiser(f"{cls.__name__}.{name}"))
    for cls in _ESTIMATORS:
        for name in ("forward", "value_estimate", "_call_value_nets", "_call_value_net_shifted"):
            if name in cls.__dict__:
                monkeypatch.setattr(cls, name, _raiser(f"{cls.__name__}.{name}"))
    for name in ("_call_value_nets", "_call_value_net_shifted", "_normalize_advantage"):
        monkeypatch.setattr(trl_adv.ValueEstimatorBase, name, _raiser(f"ValueEstimatorBase.{name}"), raising=False)
    for name in _KERNELS:
        monkeypatch.setattr(trl_adv, name, _raiser(name))
    for module in {inspect.getmodule(spec.torchrl) for spec in SPECS}:
        for name in _HELPERS:
            if hasattr(module, name):
                monkeypatch.setattr(module, name, _raiser(f"{module.__name__}.{name}"))
    yield


PAIRS = pairs(SPECS)


def _plain(dist="normal", **data_kw):
    nets = make_nets(dist, seed=1)
    return nets, make_data(dist, (3, 6), seed=1, nets=nets, **data_kw)


# (id, build nets+data, constructor kwargs, estimator and its kwargs, set_keys): each configuration
# runs on every on-policy class whose TorchRL constructor takes its keywords
CONFIGS = [
    ("given_advantage", _plain, {}, None, None),
    ("clip_value", _plain, {"clip_value": 0.2}, None, None),
    ("clip_value_estimated", functools.partial(_plain, with_advantage=False),
     {"clip_value": 0.2}, None, None),
    ("normalize_advantage", _plain, {"normalize_advantage": True}, None, None),
    *[
        (f"estimator_{e.name}", functools.partial(_plain, with_advantage=False), {},
         (e, {"gamma": 0.9} if e in (E.TD0, E.TD1, E.VTrace) else {"gamma": 0.9, "lmbda": 0.8}), None)
        for e in E
    ],
    ("gae_options", functools.partial(_plain, with_advantage=False), {},
     (E.GAE, {"gamma": 0.9, "lmbda": 0.8, "average_gae": True, "value_chunk_size": 2, "skip_existing": False}), None),
    ("td_lambda_average_rewards", functools.partial(_plain, with_advantage=False), {},
     (E.TDLambda, {"gamma": 0.9, "lmbda": 0.8, "average_rewards": True}), None),
    ("vtrace_average", functools.partial(_plain, with_advantage=False), {},
     (E.VTrace, {"gamma": 0.9, "average_adv": True, "rho_thresh": 0.9}), None),
    ("shifted", functools.partial(_plain, with_advantage=False), {},
     (E.GAE, {"gamma": 0.9, "lmbda": 0.8, "shifted": True, "shifted_budget": 2}), None),
    ("delay_actor", functools.partial(_plain, with_advantage=False), {"delay_actor": True,
                                                                           "max_importance_ratio": 1.5}, None, None),
    ("advantage_norm", functools.partial(_plain, with_advantage=False),
     {"advantage_norm": PopArtValueNorm(shape=1)}, None, None),
    ("composite",
     lambda: (n := composite_nets(seed=2, heads=("cont", "cont2")), composite_data(n, (3, 4), seed=2)), {}, None, None),
    ("composite_estimated",
     lambda: (n := composite_nets(seed=2, heads=("cont", "cont2")),
              composite_data(n, (3, 4), seed=2, with_advantage=False)), {}, None, None),
    ("composite_vtrace",
     lambda: (n := composite_nets(seed=2, heads=("cont", "cont2")),
              composite_data(n, (3, 4), seed=2, with_advantage=False)), {}, (E.VTrace, {"gamma": 0.9}),
     {"sample_log_prob": [("action", "cont_log_prob"), ("action", "cont2_log_prob")]}),
    ("masked", lambda: (n := masked_nets(seed=3), masked_data(n, (3, 4), seed=3)), {}, None, None),
    ("multi_agent",
     lambda: (n := marl_nets(seed=4), marl_data(n, (2, 5), seed=4, with_advantage=False)), {},
     (E.GAE, {"gamma": 0.9, "lmbda": 0.8}), MARL_KEYS),
]


def _cases():
    for config in CONFIGS:
        for loss_name in (name for name, (torchrl_cls, _) in PAIRS.items() if accepts(torchrl_cls, *config[2])):
            yield pytest.param(loss_name, config, id=f"{loss_name}-{config[0]}")


@pytest.mark.parametrize("loss_name, config", list(_cases()))
def test_forward_never_reaches_torchrl_math(torchrl_math_raises, loss_name, config):
    _, build, ctor, estimator, keys = config
    setter = set_composite_lp_aggregate(False)
    setter.set()
    try:
        nets, data = build()
        loss = PAIRS[loss_name][1](nets.actor, nets.critic, **ctor)
        if keys:
            loss.set_keys(**keys)
        if estimator is not None:
            loss.make_value_estimator(estimator[0], **estimator[1])
        out = loss(data)
        loss_sum(out).backward()
    finally:
        setter.unset()
    assert any(p.grad is not None for p in loss.parameters())


def test_the_patches_bite(torchrl_math_raises):
    """The harness really blocks TorchRL: its own classes, unpatched by us, hit a raiser."""
    nets, data = _plain(with_advantage=False)
    for torchrl_cls, _ in PAIRS.values():
        with pytest.raises(Reached):
            torchrl_cls(nets.actor, nets.critic)(data.clone())
    with pytest.raises(Reached):
        trl_adv.GAE(gamma=0.9, lmbda=0.9, value_network=nets.critic)(data)

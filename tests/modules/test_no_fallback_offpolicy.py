"""No fallback: the off-policy drop-in modules compute every number with
``torchrl_functional.functional``. TorchRL's ``forward``, every loss helper of the replaced
classes (``actor_loss``, ``qvalue_v2_loss``, ``_compute_target_v2``, ``cql_loss``, ...), its
value estimators' math and its ``distance_loss`` are patched to raise; each module then runs
forward and backward over every configuration of its parity table."""

from __future__ import annotations

import contextlib
import inspect
import warnings

import pytest
import torch
from torchrl.objectives.common import LossModule
from torchrl.objectives.value import advantages

from tests.modules import (
    offpolicy_parity_common as common,
)
from tests.modules import (
    test_offpolicy_parity as p_dqn,
)
from tests.modules import (
    test_offpolicy_parity_iql_cql as p_iql,
)
from tests.modules import (
    test_offpolicy_parity_sac as p_sac,
)
from torchrl_functional import modules as ours

CLASSES = ("DQNLoss", "DDPGLoss", "TD3Loss", "SACLoss", "DiscreteSACLoss", "IQLLoss", "DiscreteIQLLoss",
           "CQLLoss", "DiscreteCQLLoss", "TD3BCLoss", "REDQLoss", "CrossQLoss")
#: TorchRL methods the drop-in classes may use: construction and configuration, no numbers
ALLOWED = {"__init__", "_forward_value_estimator_keys", "_set_in_keys", "make_value_estimator", "_make_vmap",
           "_compute_composite_spec_numel", "state_dict", "load_state_dict",
           # properties: keys and the configured target entropy
           "in_keys", "out_keys", "target_entropy", "target_entropy_buffer", "device"}


class Reached(AssertionError):
    pass


def _raiser(name, prop=False):
    def fail(*args, **kwargs):
        raise Reached(f"reached TorchRL's {name}")
    return property(fail) if prop else fail


def torchrl_class(name: str) -> type:
    """TorchRL's class that our drop-in class ``name`` subclasses."""
    return next(k for k in getattr(ours, name).__mro__ if k.__module__.startswith("torchrl.objectives"))


def _forbidden():
    """``(owner, attribute name, qualified name)`` of everything a module must not call."""
    out = []
    for cls_name in CLASSES:
        theirs = torchrl_class(cls_name)
        for klass in theirs.__mro__:
            if klass is LossModule or not issubclass(klass, LossModule):
                continue
            for name, attr in vars(klass).items():
                if name in ALLOWED or not (inspect.isfunction(attr) or isinstance(attr, (staticmethod, property))):
                    continue
                out.append((klass, name, f"{klass.__name__}.{name}"))
    for est in (advantages.TD0Estimator, advantages.TD1Estimator, advantages.TDLambdaEstimator):
        for name in ("value_estimate", "forward"):
            out.append((est, name, f"{est.__name__}.{name}"))
    for module in {inspect.getmodule(torchrl_class(c)) for c in CLASSES}:
        if hasattr(module, "distance_loss"):
            out.append((module, "distance_loss", f"{module.__name__}.distance_loss"))
    return out


FORBIDDEN = _forbidden()


def test_the_forbidden_list_covers_the_loss_helpers():
    names = {q for _, _, q in FORBIDDEN}
    for helper in ("SACLoss.forward", "SACLoss._compute_target_v2", "SACLoss.qvalue_v1_loss", "SACLoss.value_loss",
                   "DiscreteSACLoss._compute_target", "IQLLoss.loss_value_diff", "CQLLoss._get_policy_actions",
                   "CQLLoss._get_value_v", "DiscreteCQLLoss.cql_loss", "TD3Loss.actor_loss", "DDPGLoss.loss_value",
                   "DQNLoss.forward", "TD0Estimator.value_estimate", "TDLambdaEstimator.value_estimate",
                   "SACLoss._alpha", "CQLLoss._alpha", "SACLoss._cached_detached_qvalue_params"):
        assert helper in names, helper


@contextlib.contextmanager
def forbid_torchrl_math():
    saved = [(owner, name, owner.__dict__[name]) for owner, name, _ in FORBIDDEN]
    try:
        for owner, name, qualified in FORBIDDEN:
            setattr(owner, name, _raiser(qualified, isinstance(owner.__dict__[name], property)))
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)


def _run_ours(our_cls, nets, kwargs, opts, discrete=None, estimator_keys=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loss = our_cls(*nets, **kwargs)
    if opts.get("keys"):
        loss.set_keys(**opts["keys"])
    if opts.get("estimator") is not None:
        loss.make_value_estimator(opts["estimator"], gamma=0.9)
    data = common.data_for(opts, discrete)
    torch.manual_seed(0)
    with forbid_torchrl_math():
        out = loss(data)
        common.loss_sum(out).backward()
    assert any(p.grad is not None for p in loss.parameters())


def _keys(opts):
    return opts.get("keys") or {}


def _cases(table):
    return pytest.mark.parametrize("case_id, kwargs, opts", table, ids=common.ids(table))


@_cases(p_dqn.DQN_CASES)
def test_dqn(case_id, kwargs, opts):
    _run_ours(ours.DQNLoss, (common.dqn_actor(),), {"action_space": "categorical", **kwargs}, opts, "categorical")


@_cases(p_dqn.DDPG_CASES)
def test_ddpg(case_id, kwargs, opts):
    sav = _keys(opts).get("state_action_value", "state_action_value")
    _run_ours(ours.DDPGLoss, (common.det_actor(), common.qvalue(out_key=sav)), kwargs, opts)


@_cases(p_dqn.TD3_CASES)
def test_td3(case_id, kwargs, opts):
    act, sav = _keys(opts).get("action", "action"), _keys(opts).get("state_action_value", "state_action_value")
    bounds = (-torch.ones(common.ACT), torch.ones(common.ACT))
    _run_ours(ours.TD3Loss, (common.det_actor(action_key=act), common.qvalue(out_key=sav, action_key=act)),
              {"bounds": bounds, **kwargs}, opts)


@_cases(p_dqn.DCQL_CASES)
def test_discrete_cql(case_id, kwargs, opts):
    _run_ours(ours.DiscreteCQLLoss, (common.dqn_actor(),), {"action_space": "categorical", **kwargs}, opts,
              "categorical")


@_cases(p_sac.SAC_CASES)
def test_sac(case_id, kwargs, opts):
    act, sav = _keys(opts).get("action", "action"), _keys(opts).get("state_action_value", "state_action_value")
    _run_ours(ours.SACLoss, (common.stoch_actor(action_key=act), common.qvalue(out_key=sav, action_key=act)),
              kwargs, opts)


@_cases(p_sac.SAC_V1_CASES)
def test_sac_v1(case_id, kwargs, opts):
    nets = (common.stoch_actor(), common.qvalue(), common.vvalue(out_key=_keys(opts).get("value", "state_value")))
    _run_ours(ours.SACLoss, nets, kwargs, opts)


@_cases(p_sac.DSAC_CASES)
def test_discrete_sac(case_id, kwargs, opts):
    _run_ours(ours.DiscreteSACLoss, (common.discrete_actor(), common.discrete_q()),
              {"action_space": "categorical", "num_actions": common.NACT, **kwargs}, opts, "categorical")


@_cases(p_iql.IQL_CASES)
def test_iql(case_id, kwargs, opts):
    k = _keys(opts)
    nets = (common.stoch_actor(), common.qvalue(out_key=k.get("state_action_value", "state_action_value")),
            common.vvalue(out_key=k.get("value", "state_value")))
    _run_ours(ours.IQLLoss, nets, kwargs, opts)


@_cases(p_iql.IQL_CASES)
def test_discrete_iql(case_id, kwargs, opts):
    k = _keys(opts)
    nets = (common.discrete_actor(), common.discrete_q(out_key=k.get("state_action_value", "state_action_value")),
            common.vvalue(out_key=k.get("value", "state_value")))
    _run_ours(ours.DiscreteIQLLoss, nets, {"action_space": "categorical", **kwargs}, opts, "categorical")


@_cases(p_iql.CQL_CASES)
def test_cql(case_id, kwargs, opts):
    _run_ours(ours.CQLLoss, (common.stoch_actor(), common.qvalue()), kwargs, opts)


def test_a_fallback_would_be_caught():
    """The guard is live: TorchRL's own class fails under it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = torchrl_class("SACLoss")(common.stoch_actor(), common.qvalue())
    with forbid_torchrl_math(), pytest.raises(Reached):
        theirs(common.make_data((4,)))

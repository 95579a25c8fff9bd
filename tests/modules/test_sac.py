"""The SAC drop-ins (``SACLoss`` with and without a value network, ``DiscreteSACLoss``): parity
with TorchRL 0.14.1 (values, every parameter gradient, the written priority; see
``offpolicy_parity_common``), no TorchRL math reached (see ``offpolicy_no_fallback``), ``functional_call``, multi-agent layouts and a training pipeline
(see ``offpolicy_checks``, ``offpolicy_marl``). The cross-cutting guarantees find them through
the registry."""

from __future__ import annotations

import functools

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import CompositeDistribution, NormalParamExtractor, TensorDictModule
from torchrl.data import Bounded, Composite
from torchrl.modules import ProbabilisticActor, TanhNormal, ValueOperator
from torchrl.objectives import DiscreteSACLoss as TDSAC
from torchrl.objectives import SACLoss as TSAC

from tests.modules import offpolicy_checks as C
from tests.modules import offpolicy_marl as M
from tests.modules import offpolicy_parity_common as common
from tests.modules.offpolicy_checks import check_functional_call
from tests.modules.offpolicy_marl import MODE_PARAMS, marl_parity
from tests.modules.offpolicy_no_fallback import FORBIDDEN_NAMES, keys_of, run_ours
from tests.modules.offpolicy_parity_common import (
    COMMON,
    NACT,
    WEIGHTED,
    build,
    compare,
    data_for,
    discrete_actor,
    discrete_q,
    ids,
    make_data,
    qvalue,
    stoch_actor,
    vvalue,
)
from torchrl_functional import modules as ours

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
    ("skip_done_states", {"skip_done_states": True}, {}),
]


@pytest.mark.parametrize("case_id, kwargs, opts", SAC_CASES, ids=ids(SAC_CASES))
def test_sac_parity(case_id, kwargs, opts):
    keys = opts.get("keys") or {}
    act, sav = keys.get("action", "action"), keys.get("state_action_value", "state_action_value")
    ref, mine = _pair_sac(act, sav, kwargs, opts)
    out_mine, _ = compare(ref, mine, data_for(opts))
    torch.testing.assert_close(mine.log_alpha, ref.log_alpha)
    if case_id == "alpha_bounds":
        assert float(mine.log_alpha.detach().exp()) == pytest.approx(2.0)  # clamped in place, as TorchRL


def _pair_sac(act, sav, kwargs, opts):
    nets = (stoch_actor(action_key=act), qvalue(out_key=sav, action_key=act))
    return build(TSAC, ours.SACLoss, nets, kwargs, opts.get("keys"), opts.get("estimator"))


def test_sac_skip_done_states_on_a_time_batch():
    """TorchRL 0.14.1's SACLoss fails with ``skip_done_states`` on ``[B, T]`` data (its scatter of
    the sampled actions breaks); ours equals TorchRL on the same transitions flattened to ``[B*T]``."""
    ref, mine = _pair_sac("action", "state_action_value", {"skip_done_states": True, "reduction": "none",
                                                          "scalar_output_mode": "exclude"}, {})
    data = make_data((3, 5))
    assert data["next", "done"].any()
    torch.manual_seed(0)
    out = mine(data.clone())
    torch.manual_seed(0)
    flat = ref(data.reshape(-1).clone())
    for key in flat.keys():
        torch.testing.assert_close(out[key].reshape(-1), flat[key])


def _even(opts):
    """SAC v1 splits the first batch dimension between the critics: make it even."""
    batch = opts.get("batch", (12,))
    return {**opts, "batch": (batch[0] + batch[0] % 2, *batch[1:])}


SAC_V1_CASES = [(i, k, _even(o)) for i, k, o in COMMON + WEIGHTED] + [
    ("ensemble_3", {"num_qvalue_nets": 3}, {}),
    ("no_delay", {"delay_value": False, "delay_qvalue": False}, {}),
    ("delay_actor", {"delay_actor": True}, {}),
    ("fixed_alpha", {"fixed_alpha": True, "alpha_init": 0.3}, {}),
    ("target_entropy", {"target_entropy": -0.5}, {}),
    ("none_non_tensor", {"reduction": "none", "scalar_output_mode": "non_tensor"}, {}),
    ("renamed_value", {}, {"keys": {"value": "sv2"}}),
    ("skip_done_states", {"skip_done_states": True}, {}),  # no effect in version 1, as TorchRL
]


@pytest.mark.parametrize("case_id, kwargs, opts", SAC_V1_CASES, ids=ids(SAC_V1_CASES))
def test_sac_v1_parity(case_id, kwargs, opts):
    """SAC with a value network (TorchRL's version 1): loss_value included."""
    keys = opts.get("keys") or {}
    nets = (stoch_actor(), qvalue(), vvalue(out_key=keys.get("value", "state_value")))
    ref, mine = build(TSAC, ours.SACLoss, nets, kwargs, keys, opts.get("estimator"))
    out, _ = compare(ref, mine, data_for(opts))
    assert "loss_value" in out.keys()


def test_sac_v1_odd_batch_is_torchrl_error():
    ref, mine = build(TSAC, ours.SACLoss, (stoch_actor(), qvalue(), vvalue()), {}, None, None)
    for loss in (ref, mine):
        with pytest.raises(RuntimeError, match="incompatible"):
            loss(make_data((5,)))


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
    ("skip_done_states", {"skip_done_states": True}, {}),
    ("skip_done_states_BT", {"skip_done_states": True}, {"batch": (3, 5)}),
]


@pytest.mark.parametrize("space", ["categorical", "one_hot"])
@pytest.mark.parametrize("case_id, kwargs, opts", DSAC_CASES, ids=ids(DSAC_CASES))
def test_discrete_sac_parity(space, case_id, kwargs, opts):
    nets = (discrete_actor(one_hot=space == "one_hot"), discrete_q())
    kwargs = {"action_space": space, "num_actions": NACT, **kwargs}
    ref, mine = build(TDSAC, ours.DiscreteSACLoss, nets, kwargs, opts.get("keys"), opts.get("estimator"))
    compare(ref, mine, data_for(opts, space))
    torch.testing.assert_close(mine.log_alpha, ref.log_alpha)


class _CompositeQ(torch.nn.Module):
    """Q(s, a) reading the one head of a composite action (TorchRL's composite SAC tests)."""

    def __init__(self):
        super().__init__()
        self.net = common._QNet()

    def forward(self, obs, action):
        return self.net(obs, action.get("action1"))


def _composite_sac_nets(version):
    """A composite action ``{"action": {"action1": ...}}`` from a ``CompositeDistribution`` (one
    TanhNormal head; TorchRL's SACLoss cannot be built with several heads)."""
    net = torch.nn.Sequential(torch.nn.Linear(common.OBS, common.HID), torch.nn.Tanh(),
                              torch.nn.Linear(common.HID, 2 * common.ACT), NormalParamExtractor())
    module = TensorDictModule(common._init(net, 0), in_keys=["observation"],
                              out_keys=[("params", "action1", "loc"), ("params", "action1", "scale")])
    leaf = Bounded(-torch.ones(common.ACT), torch.ones(common.ACT), (common.ACT,))
    spec = Composite({"action": {"action1": leaf}})
    actor = ProbabilisticActor(module, in_keys=["params"], out_keys=["action"], spec=spec,
                               distribution_class=functools.partial(CompositeDistribution,
                                                                    distribution_map={"action1": TanhNormal}))
    q = ValueOperator(common._init(_CompositeQ(), 1), in_keys=["observation", "action"])
    nets = (actor, q) + ((common.vvalue(),) if version == 1 else ())
    return nets, spec


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("case_id, opts", [("base", {}), ("nstep", {"batch": (4, 5), "nstep": 2})])
def test_sac_composite_action_parity(version, case_id, opts):
    nets, spec = _composite_sac_nets(version)
    ref, mine = build(TSAC, ours.SACLoss, nets, {"action_spec": spec})
    data = data_for(opts)
    data["action"] = TensorDict({"action1": data.pop("action")}, data.batch_size)
    compare(ref, mine, data)


@pytest.mark.parametrize("case_id, kwargs, opts", SAC_CASES, ids=ids(SAC_CASES))
def test_sac_never_reaches_torchrl_math(case_id, kwargs, opts):
    act, sav = keys_of(opts).get("action", "action"), keys_of(opts).get("state_action_value", "state_action_value")
    run_ours(ours.SACLoss, (stoch_actor(action_key=act), qvalue(out_key=sav, action_key=act)),
              kwargs, opts)


@pytest.mark.parametrize("case_id, kwargs, opts", SAC_V1_CASES, ids=ids(SAC_V1_CASES))
def test_sac_v1_never_reaches_torchrl_math(case_id, kwargs, opts):
    nets = (stoch_actor(), qvalue(), vvalue(out_key=keys_of(opts).get("value", "state_value")))
    run_ours(ours.SACLoss, nets, kwargs, opts)


@pytest.mark.parametrize("case_id, kwargs, opts", DSAC_CASES, ids=ids(DSAC_CASES))
def test_discrete_sac_never_reaches_torchrl_math(case_id, kwargs, opts):
    run_ours(ours.DiscreteSACLoss, (discrete_actor(), discrete_q()),
              {"action_space": "categorical", "num_actions": NACT, **kwargs}, opts, "categorical")


def test_the_forbidden_list_covers_the_loss_helpers():
    assert {"SACLoss.forward", "SACLoss._compute_target_v2", "SACLoss.qvalue_v1_loss", "SACLoss.value_loss",
            "DiscreteSACLoss._compute_target", "SACLoss._alpha",
            "SACLoss._cached_detached_qvalue_params"} <= FORBIDDEN_NAMES


FUNCTIONAL_CALL = {
    "SACLoss": (lambda: ours.SACLoss(stoch_actor(), qvalue(), num_qvalue_nets=3), None),
    "SACLoss-v1": (lambda: ours.SACLoss(stoch_actor(), qvalue(), vvalue(), delay_actor=True), None),
    "SACLoss-skip_done": (lambda: ours.SACLoss(stoch_actor(), qvalue(), skip_done_states=True), None),
    "DiscreteSACLoss": (lambda: ours.DiscreteSACLoss(discrete_actor(), discrete_q(), action_space="categorical",
                                                      num_actions=NACT), "categorical"),
}


@pytest.mark.parametrize("name", list(FUNCTIONAL_CALL))
def test_functional_call_equals_loading_the_parameters(name):
    check_functional_call(*FUNCTIONAL_CALL[name])


@MODE_PARAMS
def test_sac_multiagent_parity(mode, kwargs, estimator):
    marl_parity(TSAC, ours.SACLoss, lambda: (M.stoch_actor(), M.qvalue()), {},
                {**M.ACTION, "state_action_value": M._k("state_action_value"), "log_prob": M._k("action_log_prob")},
                False, mode, kwargs, estimator, scalar_output_mode=True)


@MODE_PARAMS
def test_discrete_sac_multiagent_parity(mode, kwargs, estimator):
    marl_parity(TDSAC, ours.DiscreteSACLoss, lambda: (M.discrete_actor(), M.discrete_q()),
                {"action_space": "categorical", "num_actions": NACT},
                {**M.ACTION, "action_value": M._k("action_value")},
                True, mode, kwargs, estimator, scalar_output_mode=True)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_sac_trains_in_a_torchrl_pipeline():
    def make(env):
        qnet, _, actor = C.qnet(env), C.vnet(env), C.stoch_actor(env)
        return ours.SACLoss(actor, qnet), actor
    C.train_in_pipeline("Pendulum-v1", make)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_discrete_sac_trains_in_a_torchrl_pipeline():
    def make(env):
        actor = C.discrete_actor(env)
        qnet = C.discrete_qnet(env, "action_value")
        n = env.action_spec.space.n
        return ours.DiscreteSACLoss(actor, qnet, action_space=env.action_spec, num_actions=n), actor
    C.train_in_pipeline("CartPole-v1", make)

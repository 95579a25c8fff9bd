"""The ``DQNLoss`` drop-in: parity with TorchRL 0.14.1 (values, every parameter gradient, the
written priority; see ``offpolicy_parity_common``), no TorchRL math reached (see
``offpolicy_no_fallback``), ``functional_call``, multi-agent layouts and a training pipeline (see
``offpolicy_checks``, ``offpolicy_marl``). The cross-cutting guarantees find it through the registry."""

from __future__ import annotations

import pytest
import torch
from torchrl.objectives import DQNLoss as TDQN

from tests.modules import offpolicy_checks as C
from tests.modules import offpolicy_marl as M
from tests.modules.offpolicy_checks import check_functional_call
from tests.modules.offpolicy_marl import MODE_PARAMS, marl_parity
from tests.modules.offpolicy_no_fallback import FORBIDDEN_NAMES, run_ours
from tests.modules.offpolicy_parity_common import COMMON, WEIGHTED, build, data_for, dqn_actor, ids, run
from tests.specs import SPECS
from torchrl_functional import modules as ours

DQN_CASES = COMMON + WEIGHTED + [
    ("double", {"double_dqn": True}, {}),
    ("double_BT_mask", {"double_dqn": True}, {"batch": (3, 4), "mask": True}),
    ("no_delay", {"delay_value": False}, {}),
]


SPACES = ["categorical", "one_hot", "mult_one_hot"]


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("case_id, kwargs, opts", DQN_CASES, ids=ids(DQN_CASES))
def test_dqn_parity(space, case_id, kwargs, opts):
    actor = dqn_actor(one_hot=space == "one_hot", mult=space == "mult_one_hot")
    run(TDQN, ours.DQNLoss, (actor,), {"action_space": space, **kwargs}, opts, discrete=space)


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("double", [False, True], ids=["single", "double"])
def test_dqn_parity_at_tied_greedy_actions(space, double):
    """Actions 0 and 1 share their Q-value: TorchRL's one-hot greedy action marks both and its
    bootstrap sums their values (multi one-hot: within the first sub-action); the categorical one
    takes the first. Ours gives the same numbers."""
    actor = dqn_actor(one_hot=space == "one_hot", tied=True, mult=space == "mult_one_hot")
    data = data_for({}, space)
    with torch.no_grad():
        q = actor(data["next"].clone())["action_value"]
    assert (q[..., 0] > q[..., 2]).any(), "the data must hold tied greedy actions"
    run(TDQN, ours.DQNLoss, (actor,), {"action_space": space, "double_dqn": double, "delay_value": True}, {},
        discrete=space)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bool])
def test_nstep_entry_of_the_wrong_dtype_names_loss_and_entry(dtype):
    """n-step data must hold integer step counts (MultiStep writes int64): a module says which
    loss and which entry, instead of discounting by gamma ** (a float or a flag)."""
    from torchrl_functional.errors import EntryDtypeError

    _, mine = build(TDQN, ours.DQNLoss, (dqn_actor(),), {"action_space": "categorical"})
    data = data_for({"batch": (3, 5), "nstep": 2}, "categorical")
    data["steps_to_next_obs"] = data["steps_to_next_obs"].to(dtype)
    with pytest.raises(EntryDtypeError) as info:
        mine(data)
    assert info.value.loss == next(s.name for s in SPECS if s.module is ours.DQNLoss)
    assert info.value.entry == "steps_to_next_obs"


@pytest.mark.parametrize("space", ["categorical", "mult_one_hot"])
@pytest.mark.parametrize("case_id, kwargs, opts", DQN_CASES, ids=ids(DQN_CASES))
def test_dqn_never_reaches_torchrl_math(space, case_id, kwargs, opts):
    run_ours(ours.DQNLoss, (dqn_actor(mult=space == "mult_one_hot"),), {"action_space": space, **kwargs}, opts, space)


def test_multi_one_hot_without_sub_action_sizes_is_refused_by_name():
    """A value network that is not TorchRL's QValueModule with var_nums: no greedy action to
    take per sub-action; the module says so instead of scoring one greedy action over all N."""
    from tensordict.nn import TensorDictModule

    class _Values(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 5)

        def forward(self, obs):
            values = self.lin(obs)
            return values, values.max(-1, keepdim=True)[0]

    net = TensorDictModule(_Values(), in_keys=["observation"], out_keys=["action_value", "chosen_action_value"])
    loss = ours.DQNLoss(net, action_space="mult_one_hot")
    with pytest.raises(ValueError, match="DQNLoss.*var_nums"):
        loss(data_for({}, "mult_one_hot"))


def test_the_forbidden_list_covers_the_loss_helpers():
    assert {"DQNLoss.forward"} <= FORBIDDEN_NAMES


FUNCTIONAL_CALL = {
    "DQNLoss": (lambda: ours.DQNLoss(dqn_actor(), action_space="categorical", delay_value=True), "categorical"),
}


@pytest.mark.parametrize("name", list(FUNCTIONAL_CALL))
def test_functional_call_equals_loading_the_parameters(name):
    check_functional_call(*FUNCTIONAL_CALL[name])


@MODE_PARAMS
def test_dqn_multiagent_parity(mode, kwargs, estimator):
    marl_parity(TDQN, ours.DQNLoss, lambda: (M.dqn_actor(),), {"action_space": "categorical"},
                {**M.ACTION, "action_value": M._k("action_value"), "value": M._k("chosen_action_value")},
                True, mode, kwargs, estimator)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_dqn_trains_in_a_torchrl_pipeline():
    def make(env):
        qactor = C.qvalue_actor(env)
        return ours.DQNLoss(qactor, action_space=env.action_spec), qactor
    C.train_in_pipeline("CartPole-v1", make, hard_update=True)

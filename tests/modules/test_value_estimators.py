"""The on-policy modules run TorchRL's value estimators with our kernels: every estimator
class and every option that changes the numbers, values and every parameter gradient vs
TorchRL's own loss class (float32, 1e-6), same networks, data and seed."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torchrl.objectives import ValueEstimators
from torchrl.objectives.value import GAE, TDLambdaEstimator

from tests.builders import assert_grads_close, assert_td_close, clone_nets, loss_sum, make_data, make_nets
from tests.modules.by_spec import accepts, on_policy_specs, pairs
from tests.modules.onpolicy_nets import MARL_KEYS, marl_data, marl_nets

PAIRS = pairs(on_policy_specs())

E = ValueEstimators
# (id, estimator, its keyword arguments, data options, constructor kwargs)
CASES = [
    ("td0", E.TD0, {"gamma": 0.9}, {}, {}),
    ("td1", E.TD1, {"gamma": 0.9}, {}, {}),
    ("td_lambda", E.TDLambda, {"gamma": 0.9, "lmbda": 0.7}, {}, {}),
    ("gae", E.GAE, {"gamma": 0.9, "lmbda": 0.7}, {}, {}),
    ("magae", E.MAGAE, {"gamma": 0.9, "lmbda": 0.7}, {}, {}),
    # float64: TorchRL's V-trace recursion and our scan round differently in float32 (~1e-7
    # relative), which the policy gradient's cancellations amplify past 1e-6
    ("vtrace", E.VTrace, {"gamma": 0.9}, {"float64": True}, {}),
    ("vtrace_thresholds_average", E.VTrace, {"gamma": 0.9, "rho_thresh": 0.8, "c_thresh": 1.2, "average_adv": True},
     {"float64": True}, {}),
    ("gae_average", E.GAE, {"gamma": 0.9, "lmbda": 0.7, "average_gae": True}, {}, {}),
    ("gae_not_differentiable", E.GAE, {"gamma": 0.9, "lmbda": 0.7, "differentiable": False}, {}, {}),
    ("gae_loop_kernel", E.GAE, {"gamma": 0.9, "lmbda": 0.7, "vectorized": False}, {}, {}),
    ("td0_average_rewards", E.TD0, {"gamma": 0.9, "average_rewards": True}, {}, {}),
    ("td1_average_rewards", E.TD1, {"gamma": 0.9, "average_rewards": True}, {}, {}),
    ("td_lambda_average_rewards", E.TDLambda, {"gamma": 0.9, "lmbda": 0.7, "average_rewards": True}, {}, {}),
    ("gae_steps_to_next_obs", E.GAE, {"gamma": 0.9, "lmbda": 0.7}, {"steps": True}, {}),
    ("td_lambda_steps_to_next_obs", E.TDLambda, {"gamma": 0.9, "lmbda": 0.7}, {"steps": True}, {}),
    ("gae_time_dim_0", E.GAE, {"gamma": 0.9, "lmbda": 0.7, "time_dim": 0}, {}, {}),
    ("gae_time_named", E.GAE, {"gamma": 0.9, "lmbda": 0.7}, {"names": ["time", None]}, {}),
    ("gae_chunks", E.GAE, {"gamma": 0.9, "lmbda": 0.7, "value_chunk_size": 2}, {}, {}),
    ("td1_num_chunks", E.TD1, {"gamma": 0.9, "num_chunks": 2}, {}, {}),
    ("gae_group_average", E.GAE, {"gamma": 0.9, "lmbda": 0.7, "average_gae": True, "group_key": "group"},
     {"groups": True}, {}),
    ("td0_group_average_rewards", E.TD0, {"gamma": 0.9, "average_rewards": True, "group_key": "group"},
     {"groups": True}, {}),
    ("gae_auto_reset_env", E.GAE, {"gamma": 0.9, "lmbda": 0.7, "auto_reset_env": True}, {"truncated": True}, {}),
    ("gae_skip_existing", E.GAE, {"gamma": 0.9, "lmbda": 0.7, "skip_existing": True}, {}, {}),
    ("gae_shifted_valid_in_input", E.GAE, {"gamma": 0.9, "lmbda": 0.7, "average_gae": True}, {"valid": True}, {}),
    ("gae_shifted_budget_1", E.GAE, {"gamma": 0.9, "lmbda": 0.7, "shifted": True}, {}, {"functional": False}),
    ("gae_shifted_budget_2", E.GAE, {"gamma": 0.9, "lmbda": 0.7, "shifted": True, "shifted_budget": 2}, {},
     {"functional": False}),
    ("td_lambda_shifted", E.TDLambda, {"gamma": 0.9, "lmbda": 0.7, "shifted": True}, {}, {"functional": False}),
    ("gae_non_functional", E.GAE, {"gamma": 0.9, "lmbda": 0.7}, {}, {"functional": False}),
]


def _data(dist: str, opts: dict, nets) -> TensorDict:
    data = make_data(dist, (4, 6), seed=7, with_advantage=False, nets=nets)
    g = torch.Generator().manual_seed(9)
    if opts.get("steps"):
        data["steps_to_next_obs"] = torch.randint(1, 4, (4, 6, 1), generator=g)
    if opts.get("groups"):
        data["group"] = torch.randint(0, 3, (4, 6, 1), generator=g)
    if opts.get("truncated"):
        data["next", "truncated"] = data["next", "done"] & ~data["next", "terminated"]
    if opts.get("valid"):
        valid = torch.ones(4, 6, dtype=torch.bool)
        valid[1, 4:] = False
        data["shifted_valid"] = valid
    if opts.get("names"):
        data.refine_names(*opts["names"])
    if opts.get("float64"):
        data = data.apply(lambda x: x.double() if x.is_floating_point() else x)
    return data


def _run_pair(loss_name: str, nets, build, data: TensorDict, *, seed: int = 11):
    torchrl_cls, our_cls = PAIRS[loss_name]
    ref, mine = build(torchrl_cls, clone_nets(nets)), build(our_cls, clone_nets(nets))
    torch.manual_seed(seed)
    out_ref = ref(data.clone())
    torch.manual_seed(seed)
    out_ours = mine(data.clone())
    assert_td_close(out_ours, out_ref)
    loss_sum(out_ref).backward()
    loss_sum(out_ours).backward()
    assert_grads_close(mine, ref)
    return ref, mine


@pytest.mark.parametrize("loss_name", list(PAIRS))
@pytest.mark.parametrize("case_id, estimator, hyper, opts, ctor", CASES, ids=[c[0] for c in CASES])
def test_estimator_parity(loss_name, case_id, estimator, hyper, opts, ctor):
    # the KL-penalty losses on a TanhNormal policy: their KL is a Monte-Carlo estimate drawn under the seed
    dist = "tanh_normal" if accepts(PAIRS[loss_name][0], "samples_mc_kl") else "normal"
    nets = make_nets(dist, seed=3)
    data = _data(dist, opts, nets)
    if opts.get("float64"):
        nets.actor.double(), nets.critic.double()

    def build(cls, nets):
        loss = cls(nets.actor, nets.critic, **ctor)
        loss.make_value_estimator(estimator, **hyper)
        return loss

    _run_pair(loss_name, nets, build, data)


@pytest.mark.parametrize("loss_name", list(PAIRS))
def test_estimator_instance_with_its_own_value_network_entries(loss_name):
    """An estimator built by hand (``value_network=None``: values read from the data) and
    handed to ``make_value_estimator``."""
    nets = make_nets("normal", seed=3)
    data = _data("normal", {}, nets)

    def build(cls, nets):
        loss = cls(nets.actor, nets.critic)
        loss.make_value_estimator(GAE(gamma=0.9, lmbda=0.7, value_network=None))
        return loss

    _run_pair(loss_name, nets, build, data)


@pytest.mark.parametrize("loss_name", list(PAIRS))
@pytest.mark.parametrize("estimator", [E.GAE, E.TDLambda, E.MAGAE, E.TD0])
def test_multi_agent_parity(loss_name, estimator):
    """``[B, T]`` data with ``[B, T, N, ...]`` agent entries under ``("agents", ...)`` keys: time is
    the TensorDict's last batch dim (not the entries' second-to-last)."""
    nets = marl_nets(seed=2)
    data = marl_data(nets, (3, 5), seed=2, with_advantage=False)

    def build(cls, nets):
        loss = cls(nets.actor, nets.critic)
        loss.set_keys(**MARL_KEYS)
        loss.make_value_estimator(estimator, gamma=0.9, **({} if estimator is E.TD0 else {"lmbda": 0.7}))
        return loss

    _run_pair(loss_name, nets, build, data)


def test_multi_agent_gae_broadcasts_team_rewards():
    """``MultiAgentGAE``: per-agent values ``[B, T, N, 1]``, team reward and flags ``[B, T, 1]``."""
    nets = marl_nets(seed=4)
    data = marl_data(nets, (8, 6), seed=4, with_advantage=False)
    for key in ("reward", "done", "terminated"):
        data["next", key] = data["next", "agents", key][..., 0, :]
        del data["next", "agents", key]
    keys = dict(MARL_KEYS, reward="reward", done="done", terminated="terminated")

    def build(cls, nets):
        loss = cls(nets.actor, nets.critic)
        loss.set_keys(**keys)
        loss.make_value_estimator(E.MAGAE, gamma=0.9, lmbda=0.7, average_gae=True)
        return loss

    for name in PAIRS:
        _run_pair(name, nets, build, data)


@pytest.mark.parametrize("loss_name", list(PAIRS))
def test_torchrl_shifted_estimator_raises_in_a_functional_loss_ours_computes(loss_name):
    """TorchRL 0.14.1: ``shifted=True`` inside a functional loss raises (it passes detached and
    cloned next parameters to a single-call path that refuses two parameter sets). Ours runs the
    single call with the current parameters and equals TorchRL's non-functional result."""
    torchrl_cls, our_cls = PAIRS[loss_name]
    nets = make_nets("normal", seed=3)
    data = _data("normal", {}, nets)
    ref = torchrl_cls(clone_nets(nets).actor, clone_nets(nets).critic)
    ref.make_value_estimator(E.GAE, gamma=0.9, lmbda=0.7, shifted=True)
    with pytest.raises(ValueError, match="single call"):
        ref(data.clone())
    mine = our_cls(clone_nets(nets).actor, clone_nets(nets).critic)
    mine.make_value_estimator(E.GAE, gamma=0.9, lmbda=0.7, shifted=True)
    plain = torchrl_cls(clone_nets(nets).actor, clone_nets(nets).critic, functional=False)
    plain.make_value_estimator(E.GAE, gamma=0.9, lmbda=0.7, shifted=True)
    torch.manual_seed(0)
    want = plain(data.clone())
    torch.manual_seed(0)
    assert_td_close(mine(data.clone()), want)


@pytest.mark.parametrize("loss_name", list(PAIRS))
def test_user_estimator_is_called_as_is(loss_name):
    """An estimator that is not one of TorchRL's classes runs its own ``forward``."""

    class Halved(TDLambdaEstimator):
        def forward(self, tensordict, *, params=None, target_params=None):
            out = super().forward(tensordict, params=params, target_params=target_params)
            out.set(self.tensor_keys.advantage, out.get(self.tensor_keys.advantage) / 2)
            return out

    nets = make_nets("normal", seed=3)
    data = _data("normal", {}, nets)

    def build(cls, nets):
        loss = cls(nets.actor, nets.critic)
        loss.make_value_estimator(Halved(gamma=0.9, lmbda=0.7, value_network=nets.critic))
        return loss

    _run_pair(loss_name, nets, build, data)

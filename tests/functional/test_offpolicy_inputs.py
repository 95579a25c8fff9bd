"""TorchRL's input conventions in the off-policy functional losses: n-step data
(``steps_to_next_obs``, as ``MultiStep`` writes it), ``[B]``-batched TensorDicts with
Q-ensembles after the batch, nested multi-agent keys and ``ValueEstimators`` members.
Each is checked against an independent computation (a plain loop, the one-step loss with
the same per-sample discount, the unbatched layout) and its bad inputs."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torchrl.data.postprocs.postprocs import MultiStep
from torchrl.objectives.utils import ValueEstimators

from tests.specs._inputs import ENSEMBLE_KEYS, off_policy_td, to_batched
from torchrl_functional.errors import EntryDtypeError, EntryShapeError, HyperparameterError
from torchrl_functional.functional import (
    cql_loss,
    ddpg_loss,
    discrete_cql_loss,
    discrete_iql_loss,
    discrete_sac_loss,
    dqn_loss,
    iql_loss,
    sac_loss,
    td3_loss,
)

from .offpolicy_common import assert_bad, assert_pure

LOSSES = {
    "dqn": dqn_loss, "ddpg": ddpg_loss, "td3": td3_loss, "sac": sac_loss, "discrete_sac": discrete_sac_loss,
    "iql": iql_loss, "discrete_iql": discrete_iql_loss, "cql": cql_loss, "discrete_cql": discrete_cql_loss,
}
KINDS = list(LOSSES)


def _make(kind, **kw):
    return off_policy_td(0, torch.float64, kind=kind, **kw)


def _assert_same(a: TensorDict, b: TensorDict) -> None:
    assert set(a.keys()) == set(b.keys())
    for key in a.keys():
        torch.testing.assert_close(a[key], b[key], rtol=1e-12, atol=1e-12, msg=lambda m, k=key: f"{k}: {m}")


# ----------------------------------------------------------------------------- n-step data


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("estimator", ["td0", "td_lambda"])
def test_nstep_discounts_each_sample_by_gamma_to_the_steps(kind, estimator):
    """n-step data equals the one-step loss given each sample's discount ``gamma ** n``."""
    td = _make(kind, nstep=True)
    steps = td["steps_to_next_obs"]
    assert steps.unique().numel() > 1
    kw = {"gamma": 0.9, "value_estimator": estimator}
    if estimator == "td_lambda":
        kw["time_dim"] = 0
    out = assert_pure(LOSSES[kind], td, **kw)
    one_step = td.exclude("steps_to_next_obs")
    one_step["gamma"] = 0.9 ** steps.double()
    _assert_same(out, LOSSES[kind](one_step, **kw))
    differs = LOSSES[kind](td.exclude("steps_to_next_obs"), **kw)
    loss = "loss" if kind == "dqn" else ("loss_value" if kind == "ddpg" else "loss_qvalue")
    assert not torch.allclose(out[loss], differs[loss])


def test_nstep_target_by_hand():
    """DDPG's target on n-step data, one sample at a time: ``r + gamma^n (1 - terminated) Q'``."""
    td = _make("ddpg", nstep=True)
    out = ddpg_loss(td, gamma=0.8, reduction="none", loss_function="l2")
    for i in range(td["next", "reward"].shape[0]):
        n = int(td["steps_to_next_obs"][i])
        y = td["next", "reward"][i, 0].item() + 0.8 ** n * (not td["next", "terminated"][i, 0]) * \
            td["next", "state_action_value"][i, 0].item()
        assert out["target_value"][i].item() == pytest.approx(y, rel=1e-12)
        assert out["loss_value"][i].item() == pytest.approx((td["state_action_value"][i, 0].item() - y) ** 2, rel=1e-12)


def test_nstep_from_torchrl_multistep_and_gamma_gradient():
    """On data from TorchRL's ``MultiStep`` the target discounts ``gamma ** steps_to_next_obs``
    and ``d loss / d gamma`` equals central finite differences (float64)."""
    g = torch.Generator().manual_seed(3)
    B, T = 2, 6
    done = torch.zeros(B, T, 1, dtype=torch.bool)
    done[0, 3] = True
    data = TensorDict({"observation": torch.randn(B, T, 2, generator=g, dtype=torch.float64),
                       "next": {"observation": torch.randn(B, T, 2, generator=g, dtype=torch.float64),
                                "reward": torch.randn(B, T, 1, generator=g, dtype=torch.float64),
                                "done": done, "terminated": done.clone()}},
                      [B, T], names=[None, "time"])
    ms = MultiStep(gamma=0.9, n_steps=3)(data).exclude("gamma")  # MultiStep's own discount: see below
    ms["state_action_value"] = torch.randn(B, T, 1, generator=g, dtype=torch.float64)
    ms["next", "state_action_value"] = torch.randn(B, T, 1, generator=g, dtype=torch.float64)
    ms["state_action_value_actor"] = torch.randn(B, T, 1, generator=g, dtype=torch.float64)
    steps = ms["steps_to_next_obs"]
    out = ddpg_loss(ms, gamma=0.9, reduction="none")
    expected = ms["next", "reward"] + 0.9 ** steps.unsqueeze(-1).double() * (~ms["next", "terminated"]) * \
        ms["next", "state_action_value"]
    torch.testing.assert_close(out["target_value"], expected.squeeze(-1))

    def f(gamma):
        return ddpg_loss(ms, gamma=gamma)["loss_value"]

    gamma = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(f(gamma), gamma)
    h = 1e-6
    fd = (f(torch.tensor(0.9 + h, dtype=torch.float64)) - f(torch.tensor(0.9 - h, dtype=torch.float64))) / (2 * h)
    assert grad.item() == pytest.approx(fd.item(), rel=1e-6)


@pytest.mark.parametrize("kind", ["dqn", "sac"])
def test_nstep_bad_inputs(kind):
    name = LOSSES[kind].__name__
    td = _make(kind, nstep=True)
    bad = td.clone()
    bad["steps_to_next_obs"] = bad["steps_to_next_obs"].double()
    assert_bad(LOSSES[kind], bad, EntryDtypeError, name, "steps_to_next_obs")
    bad["steps_to_next_obs"] = td["steps_to_next_obs"] > 1
    assert_bad(LOSSES[kind], bad, EntryDtypeError, name, "steps_to_next_obs")
    bad["steps_to_next_obs"] = td["steps_to_next_obs"][:-1]
    assert_bad(LOSSES[kind], bad, EntryShapeError, name, "steps_to_next_obs")
    # MultiStep's "gamma" entry (gamma ** steps) beside the steps: an ambiguous discount
    bad = td.clone()
    bad["gamma"] = 0.9 ** td["steps_to_next_obs"].double()
    assert_bad(LOSSES[kind], bad, HyperparameterError, name, "gamma")
    # renamed through the keys object
    renamed = td.clone()
    renamed["n"] = renamed.pop("steps_to_next_obs")
    _assert_same(LOSSES[kind](renamed, keys={"steps_to_next_obs": "n"}), LOSSES[kind](td))


# ----------------------------------------------------------------------------- [B]-batched layout


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch", [None, (2, 3)], ids=["B", "BT"])
def test_batched_tensordict_equals_ensemble_first(kind, batch):
    """A ``[*B]``-batched TensorDict (ensembles ``[*B, E, ...]``, TorchRL's replay layout) gives
    the numbers and gradients of the unbatched, ensemble-first layout."""
    td = _make(kind, nstep=True)
    kw = {"gamma": 0.9}
    ref = LOSSES[kind](td, **kw)
    batched = to_batched(td, ENSEMBLE_KEYS.get(kind, ()), batch)
    assert batched.batch_dims == (1 if batch is None else 2)
    out = assert_pure(LOSSES[kind], batched, **kw)
    for key in ref.keys():
        a, b = out[key], ref[key]
        if batch is not None and b.ndim and key not in ("alpha",):
            a = a.reshape(b.shape)
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, msg=lambda m, k=key: f"{k}: {m}")
    # gradients reach the batched ensemble entries exactly as the unbatched ones
    first = ENSEMBLE_KEYS.get(kind, ("action_value",) if "dqn" in kind or "cql" in kind else ("state_action_value",))[0]
    x = td[first].clone().requires_grad_(True)
    xb = batched[first].clone().requires_grad_(True)
    td[first], batched[first] = x, xb
    (g,) = torch.autograd.grad(sum(v.sum() for k, v in LOSSES[kind](td, **kw).items() if k.startswith("loss")), x)
    (gb,) = torch.autograd.grad(sum(v.sum() for k, v in LOSSES[kind](batched, **kw).items() if k.startswith("loss")), xb)
    if kind in ENSEMBLE_KEYS:
        gb = gb.movedim(batched.batch_dims, 0)
    torch.testing.assert_close(gb.reshape(g.shape), g, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["td3", "sac", "iql"])
def test_batched_layout_bad_inputs(kind):
    name = LOSSES[kind].__name__
    td = _make(kind)
    key = ENSEMBLE_KEYS[kind][0]
    # TorchRL's vmapped critic output [E, B, 1] stored as is in a [B]-batched TensorDict is
    # impossible; a [B, 1] single critic is missing its ensemble dimension
    batched = to_batched(td, ENSEMBLE_KEYS[kind])
    batched[key] = batched[key][:, 0]
    with pytest.raises(EntryShapeError, match=r"unsqueeze\(1\)") as info:
        LOSSES[kind](batched)
    assert info.value.loss == name and info.value.entry == key
    # ensembles of different sizes
    batched = to_batched(td, ENSEMBLE_KEYS[kind])
    other = ENSEMBLE_KEYS[kind][1]
    batched[other] = batched[other][:, :1]
    assert_bad(LOSSES[kind], batched, EntryShapeError, name, other)


# ----------------------------------------------------------------------------- multi-agent


@pytest.mark.parametrize("kind", KINDS)
def test_nested_agent_keys(kind):
    """Multi-agent layout: entries under ``"agents"`` of batch ``[B, N_agents]`` in a
    ``[B]``-batched TensorDict (ensembles ``[B, N, E, ...]``), renamed with the keys object;
    equals the flat loss on the ``[B * N]`` samples (every loss here is per sample)."""
    td = _make(kind, nstep=True)
    B, N = 3, 2  # the 6 samples as 3 batches of 2 agents
    flat = to_batched(td, ENSEMBLE_KEYS.get(kind, ()), (B, N))
    root = TensorDict({"agents": TensorDict(batch_size=[B, N]),
                       "next": {"agents": TensorDict(batch_size=[B, N])}}, batch_size=[B])
    for key, x in flat.items(True, True):
        key = key if isinstance(key, tuple) else (key,)
        nested = ("next", "agents", *key[1:]) if key[0] == "next" else ("agents", *key)
        root.set(nested, x)
    defaults = _keys_class(kind)()
    keys = {f: ("agents", getattr(defaults, f)) for f in defaults.__dataclass_fields__}
    out = LOSSES[kind](root, gamma=0.9, keys=keys)
    ref = LOSSES[kind](td, gamma=0.9)
    for key in ref.keys():
        torch.testing.assert_close(out[key].reshape(ref[key].shape), ref[key], rtol=1e-12, atol=1e-12,
                                   msg=lambda m, k=key: f"{k}: {m}")


def _keys_class(kind):
    from torchrl_functional.functional import keys as K

    return {"dqn": K.DQNKeys, "ddpg": K.DDPGKeys, "td3": K.TD3Keys, "sac": K.SACKeys,
            "discrete_sac": K.DiscreteSACKeys, "iql": K.IQLKeys, "discrete_iql": K.IQLKeys,
            "cql": K.CQLKeys, "discrete_cql": K.DiscreteCQLKeys}[kind]


# ----------------------------------------------------------------------------- value estimators


@pytest.mark.parametrize("member, name", [(ValueEstimators.TD0, "td0"), (ValueEstimators.TD1, "td1"),
                                          (ValueEstimators.TDLambda, "td_lambda")])
def test_value_estimator_accepts_torchrl_members(member, name):
    td = _make("td3")
    kw = {"gamma": 0.9, "time_dim": 0}
    _assert_same(td3_loss(td, value_estimator=member, **kw), td3_loss(td, value_estimator=name, **kw))


def test_value_estimator_refuses_other_members():
    td = _make("td3")
    assert_bad(td3_loss, td, HyperparameterError, "td3_loss", "value_estimator", value_estimator=ValueEstimators.GAE)
    assert_bad(td3_loss, td, HyperparameterError, "td3_loss", "value_estimator", value_estimator=3)


# ----------------------------------------------------------------------------- composite actions


def test_auto_target_entropy_counts_every_head_of_a_composite_action():
    """``target_entropy="auto"`` is minus the action dimensions per sample (TorchRL's rule): with a
    composite action (a sub-TensorDict), summed over its heads; a head of the wrong batch raises."""
    td = _make("sac")
    b = td["next", "reward"].shape[0]
    a = sac_loss(td, log_alpha=0.3)["loss_alpha"]
    composite = td.clone()
    composite["action"] = TensorDict({"a1": torch.zeros(b, 2), "a2": torch.zeros(b, 3, 2)}, [b])
    lp = td["log_prob"]
    expected = (-torch.tensor(0.3, dtype=torch.float64) * (lp + (-8.0))).mean()
    torch.testing.assert_close(sac_loss(composite, log_alpha=0.3)["loss_alpha"], expected)
    assert not torch.allclose(a, expected)
    bad = composite.clone()
    bad["action"] = TensorDict({"a1": torch.zeros(b, 2), "a2": torch.zeros(1, b, 2)}, [])
    assert_bad(sac_loss, bad, EntryShapeError, "sac_loss", ("action", "a2"))


# ----------------------------------------------------------------------------- shifted_valid


@pytest.mark.parametrize("estimator", ["td1", "td_lambda"])
def test_shifted_valid_ends_multistep_returns_at_the_last_valid_step(estimator):
    """``"shifted_valid"`` (TorchRL's shifted estimators) masks the losses and, for multi-step
    returns, ends each trajectory at its last valid step, truncated (TorchRL's ``value_estimate``)."""
    td = to_batched(_make("ddpg"), (), (2, 3))
    valid = torch.tensor([[True, True, False], [True, True, True]])
    shifted = td.clone()
    shifted["shifted_valid"] = valid
    explicit = td.clone()
    explicit["next", "done"] = td["next", "done"].clone()
    explicit["next", "done"][0, 1] = True
    explicit["next", "terminated"] = td["next", "terminated"].clone()
    explicit["next", "terminated"][0, 1] = False
    explicit["collector", "mask"] = valid
    kw = {"gamma": 0.9, "value_estimator": estimator, "reduction": "none"}
    _assert_same(ddpg_loss(shifted, **kw), ddpg_loss(explicit, **kw))
    assert not torch.allclose(ddpg_loss(shifted, **kw)["target_value"], ddpg_loss(td, **kw)["target_value"])
    bad = shifted.clone()
    bad["shifted_valid"] = valid.float()
    assert_bad(ddpg_loss, bad, EntryDtypeError, "ddpg_loss", "shifted_valid", **kw)

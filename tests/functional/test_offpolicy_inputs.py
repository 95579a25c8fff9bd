"""TorchRL's input conventions in the off-policy functional losses: n-step data
(``steps_to_next_obs``, as ``MultiStep`` writes it), ``[B]``-batched TensorDicts with
Q-ensembles after the batch and nested multi-agent keys.
Each is checked against an independent computation (a plain loop, the one-step loss with
the same per-sample discount, the unbatched layout) and its bad inputs. The losses are the
registry's ``"replay"`` specs, each known here by the kind of its input builder."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from tests.specs import tagged
from tests.specs._inputs import ENSEMBLE_KEYS, to_batched
from torchrl_functional.errors import EntryDtypeError, EntryShapeError, HyperparameterError

from .offpolicy_common import assert_bad, assert_pure, assert_same, replay_td

#: the replay losses by the kind of their input (``off_policy_td(kind=...)``)
SPECS = {s.layouts[0].make_td.keywords["kind"]: s for s in tagged("replay")}
LOSSES = {kind: s.function for kind, s in SPECS.items()}
KINDS = list(LOSSES)
#: the kinds whose input holds several ensembles (their sizes must agree)
ENSEMBLES = [kind for kind in KINDS if len(ENSEMBLE_KEYS.get(kind, ())) >= 2]


# ----------------------------------------------------------------------------- n-step data


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("estimator", ["td0", "td_lambda"])
def test_nstep_discounts_each_sample_by_gamma_to_the_steps(kind, estimator):
    """n-step data equals the one-step loss given each sample's discount ``gamma ** n``."""
    td = replay_td(kind, nstep=True)
    steps = td["steps_to_next_obs"]
    assert steps.unique().numel() > 1
    kw = {"gamma": 0.9, "value_estimator": estimator}
    if estimator == "td_lambda":
        kw["time_dim"] = 0
    out = assert_pure(LOSSES[kind], td, **kw)
    one_step = td.exclude("steps_to_next_obs")
    one_step["gamma"] = 0.9 ** steps.double()
    assert_same(out, LOSSES[kind](one_step, **kw))
    differs = LOSSES[kind](td.exclude("steps_to_next_obs"), **kw)
    loss = "loss" if kind == "dqn" else ("loss_value" if kind == "ddpg" else "loss_qvalue")
    assert not torch.allclose(out[loss], differs[loss])


@pytest.mark.parametrize("kind", KINDS)
def test_nstep_bad_inputs(kind):
    name = LOSSES[kind].__name__
    td = replay_td(kind, nstep=True)
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
    assert_same(LOSSES[kind](renamed, keys={"steps_to_next_obs": "n"}), LOSSES[kind](td))


# ----------------------------------------------------------------------------- [B]-batched layout


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch", [None, (2, 3)], ids=["B", "BT"])
def test_batched_tensordict_equals_ensemble_first(kind, batch):
    """A ``[*B]``-batched TensorDict (ensembles ``[*B, E, ...]``, TorchRL's replay layout) gives
    the numbers and gradients of the unbatched, ensemble-first layout."""
    td = replay_td(kind, nstep=True)
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


@pytest.mark.parametrize("kind", ENSEMBLES)
def test_batched_layout_bad_inputs(kind):
    name = LOSSES[kind].__name__
    td = replay_td(kind)
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
    td = replay_td(kind, nstep=True)
    B, N = 3, 2  # the 6 samples as 3 batches of 2 agents
    flat = to_batched(td, ENSEMBLE_KEYS.get(kind, ()), (B, N))
    root = TensorDict({"agents": TensorDict(batch_size=[B, N]),
                       "next": {"agents": TensorDict(batch_size=[B, N])}}, batch_size=[B])
    for key, x in flat.items(True, True):
        key = key if isinstance(key, tuple) else (key,)
        nested = ("next", "agents", *key[1:]) if key[0] == "next" else ("agents", *key)
        root.set(nested, x)
    defaults = SPECS[kind].keys()
    keys = {f: ("agents", getattr(defaults, f)) for f in defaults.__dataclass_fields__}
    out = LOSSES[kind](root, gamma=0.9, keys=keys)
    ref = LOSSES[kind](td, gamma=0.9)
    for key in ref.keys():
        torch.testing.assert_close(out[key].reshape(ref[key].shape), ref[key], rtol=1e-12, atol=1e-12,
                                   msg=lambda m, k=key: f"{k}: {m}")


def test_replay_specs_read_the_replay_builder():
    """What the ``"replay"`` tag promises: the first layout is ``off_policy_td`` of one kind each."""
    from tests.specs._inputs import off_policy_td

    for spec in SPECS.values():
        assert spec.layouts[0].make_td.func is off_policy_td, spec.name
    assert len(SPECS) == len(tagged("replay"))  # one kind per loss

"""dqn_loss against a plain-Python computation, finite differences, purity and bad inputs."""

from __future__ import annotations

import pytest
import torch

import torchrl_functional.functional.dqn as dqn_module
from torchrl_functional.errors import EntryDtypeError, EntryShapeError, HyperparameterError, MissingEntryError
from torchrl_functional.functional import dqn_loss

from .offpolicy_common import assert_bad, assert_fd, assert_pure, assert_stateless, randn, transition

B, N = 6, 4


def make(one_hot=False, double=False, weights=False, ties=False, sizes=None):
    """``ties``: next-state action values drawn from {0, 1, 2}, so greedy actions tie; ``sizes``:
    a multi one-hot action, one one-hot per sub-action of these sizes (summing to N)."""
    td, g = transition((B,))
    td["action_value"] = randn(g, B, N, grad=True)
    td["next", "action_value"] = randn(g, B, N)
    if double:
        td["next", "online_action_value"] = randn(g, B, N)
    if ties:
        for key in [k for k in (("next", "action_value"), ("next", "online_action_value")) if k in td.keys(True)]:
            td[key] = torch.randint(3, (B, N), generator=g).to(torch.float64)
    a = torch.randint(N, (B,), generator=g)
    td["action"] = torch.nn.functional.one_hot(a, N) if one_hot else a
    if sizes is not None:
        td["action"] = torch.cat([torch.nn.functional.one_hot(torch.randint(n, (B,), generator=g), n) for n in sizes], -1)
    if weights:
        td["priority_weight"] = torch.rand(B, generator=g, dtype=torch.float64) + 0.5
    return td


def reference(td, gamma, double=False, weights=False, sizes=None):
    """Plain Python: one sample at a time, l2 loss. The bootstrap takes the greedy action as
    TorchRL's QValueModule does: categorical, the first maximum; one-hot, every tied maximum
    marked and the target values summed over the marks; multi one-hot, the one-hot rule within
    each sub-action, summed over the sub-actions."""
    one_hot = td["action"].ndim == 2
    td = td.detach()
    segments = [range(sum(sizes[:k]), sum(sizes[:k + 1])) for k in range(len(sizes))] if sizes else [range(N)]
    losses, ws = [], []
    for i in range(B):
        marked = [j for j in range(N) if td["action"][i, j]] if one_hot else [int(td["action"][i])]
        q = sum(float(td["action_value"][i, j]) for j in marked)
        nxt = td["next", "action_value"][i].tolist()
        by = td["next", "online_action_value"][i].tolist() if double else nxt
        v = 0.0
        for seg in segments:
            greedy = [j for j in seg if by[j] == max(by[k] for k in seg)]
            v += sum(nxt[j] for j in greedy) if one_hot else nxt[greedy[0]]
        y = float(td["next", "reward"][i, 0]) + gamma * (0.0 if td["next", "terminated"][i, 0] else 1.0) * v
        losses.append((q - y) ** 2)
        ws.append(float(td["priority_weight"][i]) if weights else 1.0)
    return sum(x * w for x, w in zip(losses, ws)) / sum(ws), losses


@pytest.mark.parametrize("one_hot", [False, True])
@pytest.mark.parametrize("double", [False, True])
@pytest.mark.parametrize("weights", [False, True])
def test_matches_python_reference(one_hot, double, weights):
    td = make(one_hot, double, weights)
    out = dqn_loss(td, action_space="one_hot" if one_hot else "categorical", double_dqn=double, gamma=0.9)
    ref, per_sample = reference(td, 0.9, double, weights)
    assert out["loss"].item() == pytest.approx(ref, rel=1e-12)
    torch.testing.assert_close(out["td_error"].squeeze(-1), torch.tensor(per_sample, dtype=torch.float64))
    assert not out["td_error"].requires_grad


@pytest.mark.parametrize("one_hot", [False, True])
@pytest.mark.parametrize("double", [False, True])
def test_tied_greedy_actions_as_torchrl_takes_them(one_hot, double):
    td = make(one_hot, double, ties=True)
    by = td["next", "online_action_value" if double else "action_value"]
    assert ((by == by.max(-1, keepdim=True)[0]).sum(-1) > 1).any()  # the data holds ties
    out = dqn_loss(td, action_space="one_hot" if one_hot else "categorical", double_dqn=double, gamma=0.9)
    ref, per_sample = reference(td, 0.9, double)
    assert out["loss"].item() == pytest.approx(ref, rel=1e-12)
    torch.testing.assert_close(out["td_error"].squeeze(-1), torch.tensor(per_sample, dtype=torch.float64))


@pytest.mark.parametrize("sizes", [(2, 2), (3, 1)], ids=["2+2", "3+1"])
@pytest.mark.parametrize("double", [False, True])
@pytest.mark.parametrize("ties", [False, True])
def test_multi_one_hot_actions_as_torchrl_takes_them(sizes, double, ties):
    td = make(double=double, ties=ties, sizes=sizes)
    out = dqn_loss(td, action_space="mult_one_hot", action_sizes=sizes, double_dqn=double, gamma=0.9)
    ref, per_sample = reference(td, 0.9, double, sizes=sizes)
    assert out["loss"].item() == pytest.approx(ref, rel=1e-12)
    torch.testing.assert_close(out["td_error"].squeeze(-1), torch.tensor(per_sample, dtype=torch.float64))
    # TorchRL's spelling is accepted; the one-hot rule over all N actions is another number
    assert dqn_loss(td, action_space="mult-one-hot", action_sizes=list(sizes), double_dqn=double,
                    gamma=0.9)["loss"].item() == out["loss"].item()
    if not ties:
        assert dqn_loss(td, action_space="one_hot", double_dqn=double, gamma=0.9)["loss"].item() != pytest.approx(ref)


def test_multi_one_hot_needs_sub_action_sizes_that_add_up():
    td = make(sizes=(2, 2))
    for sizes in (None, (2, 0), (2.0, 2), "22", ()):
        assert_bad(dqn_loss, td, HyperparameterError, "dqn_loss", "action_sizes", action_space="mult_one_hot",
                   action_sizes=sizes)
    assert_bad(dqn_loss, td, EntryShapeError, "dqn_loss", "action_value", action_space="mult_one_hot",
               action_sizes=(2, 3))
    assert_bad(dqn_loss, td, HyperparameterError, "dqn_loss", "action_sizes", action_space="one_hot",
               action_sizes=(2, 2))


def test_gradient_flows_to_online_q_only_and_gamma_by_finite_differences():
    td = make()
    out = dqn_loss(td)
    out["loss"].backward()
    assert td["action_value"].grad is not None
    assert_fd(lambda gamma: dqn_loss(td, gamma=gamma)["loss"], 0.8)


def test_pure_and_stateless():
    td = make(double=True)
    assert_pure(dqn_loss, td, double_dqn=True)
    assert_stateless(dqn_module)


def test_bad_inputs():
    td = make()
    missing = td.clone()
    del missing["next", "action_value"]
    assert_bad(dqn_loss, missing, MissingEntryError, "dqn_loss", ("next", "action_value"))
    bad = td.clone()
    bad["next", "reward"] = bad["next", "reward"].squeeze(-1)  # [B] would broadcast against [B, 1]
    assert_bad(dqn_loss, bad, EntryShapeError, "dqn_loss", ("next", "reward"))
    bad = td.clone()
    bad["next", "done"] = bad["next", "done"].float()
    assert_bad(dqn_loss, bad, EntryDtypeError, "dqn_loss", ("next", "done"))
    bad = td.clone()
    bad["action"] = bad["action"].double()
    assert_bad(dqn_loss, bad, EntryDtypeError, "dqn_loss", "action")
    assert_bad(dqn_loss, td, HyperparameterError, "dqn_loss", "gamma", gamma=1.5)
    assert_bad(dqn_loss, td, MissingEntryError, "dqn_loss", ("next", "online_action_value"), double_dqn=True)
    assert_bad(dqn_loss, td, HyperparameterError, "dqn_loss", "loss_function", loss_function="huber")

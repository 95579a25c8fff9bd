"""cql_loss and discrete_cql_loss against plain-Python computations, finite differences,
purity and bad inputs."""

from __future__ import annotations

import math

import pytest
import torch

import torchrl_functional.functional.cql as cql_module
from torchrl_functional.errors import EntryShapeError, HyperparameterError, MissingEntryError
from torchrl_functional.functional import cql_loss, discrete_cql_loss

from .offpolicy_common import assert_bad, assert_fd, assert_pure, assert_stateless, randn, transition

B, E, K, A, N = 4, 2, 3, 2, 3


def make():
    td, g = transition((B,))
    td["state_action_value"] = randn(g, E, B, 1, grad=True)
    td["next", "state_action_value"] = randn(g, E, B, 1)
    td["next", "log_prob"] = randn(g, B)
    for name in ("cql_random_value", "cql_current_value", "cql_next_value"):
        td[name] = randn(g, E, B, K, 1, grad=True)
    td["cql_current_log_prob"] = randn(g, B, K)
    td["cql_next_log_prob"] = randn(g, B, K)
    td["state_action_value_actor"] = randn(g, E, B, 1)
    td["log_prob"] = randn(g, B, grad=True)
    td["bc_log_prob"] = randn(g, B, grad=True)
    td["action"] = randn(g, B, A)
    return td


def test_matches_python_reference():
    td = make()
    temp, w, alpha = 2.0, 0.5, 0.5
    out = cql_loss(td, log_alpha=math.log(alpha), temperature=temp, min_q_weight=w, gamma=0.9,
                   loss_function="l2", deterministic_backup=False)
    d = td.detach()
    rd = math.log(0.5 ** A)
    qloss = cql = actor = bc = 0.0
    for i in range(B):
        v = min(d["next", "state_action_value"][e, i, 0].item() for e in range(E)) - alpha * d["next", "log_prob"][i].item()
        y = d["next", "reward"][i, 0].item() + 0.9 * (not d["next", "terminated"][i, 0]) * v
        for e in range(E):
            q = d["state_action_value"][e, i, 0].item()
            qloss += (q - y) ** 2 / B
            lses = []
            for k in range(K):
                xs = [d["cql_random_value"][e, i, k, 0].item() - rd,
                      d["cql_next_value"][e, i, k, 0].item() - d["cql_next_log_prob"][i, k].item(),
                      d["cql_current_value"][e, i, k, 0].item() - d["cql_current_log_prob"][i, k].item()]
                lses.append(temp * w * math.log(sum(math.exp(x / temp) for x in xs)))
            cql += (sum(lses) / K - w * q) / B
        lp = d["log_prob"][i].item()
        actor += (alpha * lp - min(d["state_action_value_actor"][e, i, 0].item() for e in range(E))) / B
        bc += (alpha * lp - d["bc_log_prob"][i].item()) / B
    assert out["loss_qvalue"].item() == pytest.approx(qloss, rel=1e-10)
    assert out["loss_cql"].item() == pytest.approx(cql, rel=1e-10)
    assert out["loss_actor"].item() == pytest.approx(actor, rel=1e-10)
    assert out["loss_actor_bc"].item() == pytest.approx(bc, rel=1e-10)


def test_finite_differences_and_lagrange():
    assert_fd(lambda w: cql_loss(make(), min_q_weight=w)["loss_cql"], 0.7)
    assert_fd(lambda t: cql_loss(make(), temperature=t)["loss_cql"], 1.3)
    assert_fd(lambda lap: cql_loss(make(), with_lagrange=True, log_alpha_prime=lap, lagrange_thresh=0.2)["loss_alpha_prime"], 0.1)
    out = cql_loss(make(), with_lagrange=True, log_alpha_prime=math.log(3.0), lagrange_thresh=0.2)
    # -alpha' / 2 * sum_i (mean(cql_i) - thresh), and loss_cql = sum_i mean(cql_i)
    expected = -0.5 * 3.0 * (out["loss_cql"].item() - 2 * 0.2)
    assert out["loss_alpha_prime"].item() == pytest.approx(expected, rel=1e-10)


def test_discrete_matches_python_reference():
    td, g = transition((B,))
    td["action_value"] = randn(g, B, N, grad=True)
    td["next", "action_value"] = randn(g, B, N)
    td["action"] = torch.randint(N, (B,), generator=g)
    out = discrete_cql_loss(td, gamma=0.9)
    d = td.detach()
    qloss = cql = 0.0
    for i in range(B):
        qs = d["action_value"][i].tolist()
        q = qs[int(d["action"][i])]
        y = d["next", "reward"][i, 0].item() + 0.9 * (not d["next", "terminated"][i, 0]) * max(d["next", "action_value"][i].tolist())
        qloss += 0.5 * (q - y) ** 2 / B
        cql += (math.log(sum(math.exp(x) for x in qs)) - q) / B
    assert out["loss_qvalue"].item() == pytest.approx(qloss, rel=1e-10)
    assert out["loss_cql"].item() == pytest.approx(cql, rel=1e-10)
    assert_fd(lambda gamma: discrete_cql_loss(td, gamma=gamma)["loss_qvalue"], 0.5)
    assert_pure(discrete_cql_loss, td)


def test_discrete_multi_one_hot_matches_python_reference():
    """Two sub-actions of sizes (1, N - 1): Q(s, a) sums the two marked values, the bootstrap
    sums each sub-action's greedy value (every tie marked, as TorchRL's QValueModule), the
    logsumexp runs over all N values (TorchRL's DiscreteCQLLoss)."""
    sizes = (1, N - 1)
    td, g = transition((B,))
    td["action_value"] = randn(g, B, N, grad=True)
    td["next", "action_value"] = torch.randint(3, (B, N), generator=g).to(torch.float64)  # ties
    td["action"] = torch.cat([torch.ones(B, 1, dtype=torch.long),
                              torch.nn.functional.one_hot(torch.randint(N - 1, (B,), generator=g), N - 1)], -1)
    out = discrete_cql_loss(td, gamma=0.9, action_space="mult_one_hot", action_sizes=sizes)
    d = td.detach()
    qloss = cql = 0.0
    for i in range(B):
        qs = d["action_value"][i].tolist()
        q = sum(qs[j] for j in range(N) if d["action"][i, j])
        nxt = d["next", "action_value"][i].tolist()
        rest = nxt[1:]
        v = nxt[0] + sum(x for x in rest if x == max(rest))
        y = d["next", "reward"][i, 0].item() + 0.9 * (not d["next", "terminated"][i, 0]) * v
        qloss += 0.5 * (q - y) ** 2 / B
        cql += (math.log(sum(math.exp(x) for x in qs)) - q) / B
    assert out["loss_qvalue"].item() == pytest.approx(qloss, rel=1e-10)
    assert out["loss_cql"].item() == pytest.approx(cql, rel=1e-10)


def test_pure_and_stateless():
    assert_pure(cql_loss, make())
    assert_stateless(cql_module)


def test_bad_inputs():
    td = make()
    bad = td.clone()
    bad["cql_current_log_prob"] = bad["cql_current_log_prob"][:, :2]
    assert_bad(cql_loss, bad, EntryShapeError, "cql_loss", "cql_current_log_prob")
    bad = td.clone()
    del bad["bc_log_prob"]
    assert_bad(cql_loss, bad, MissingEntryError, "cql_loss", "bc_log_prob")
    assert_bad(cql_loss, td, HyperparameterError, "cql_loss", "temperature", temperature=0.0)
    bad = td.clone()
    bad["cql_random_value"] = bad["cql_random_value"].squeeze(-1)
    assert_bad(cql_loss, bad, EntryShapeError, "cql_loss", "cql_random_value")

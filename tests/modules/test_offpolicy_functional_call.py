"""``torch.func.functional_call`` on the off-policy drop-in modules with swapped parameters
equals loading those parameters (values and gradients, target networks included), and
leaves the module as it was."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torchrl.data import Bounded

from tests.modules import offpolicy_parity_common as P
from torchrl_functional import modules as ours


def _td3():
    spec = Bounded(-torch.ones(P.ACT), torch.ones(P.ACT), (P.ACT,))
    return ours.TD3Loss(P.det_actor(), P.qvalue(), action_spec=spec)


CASES = {
    "DQNLoss": (lambda: ours.DQNLoss(P.dqn_actor(), action_space="categorical", delay_value=True), "categorical"),
    "DDPGLoss": (lambda: ours.DDPGLoss(P.det_actor(), P.qvalue()), None),
    "TD3Loss": (_td3, None),
    "SACLoss": (lambda: ours.SACLoss(P.stoch_actor(), P.qvalue(), num_qvalue_nets=3), None),
    "SACLoss-v1": (lambda: ours.SACLoss(P.stoch_actor(), P.qvalue(), P.vvalue(), delay_actor=True), None),
    "SACLoss-skip_done": (lambda: ours.SACLoss(P.stoch_actor(), P.qvalue(), skip_done_states=True), None),
    "DiscreteSACLoss": (lambda: ours.DiscreteSACLoss(P.discrete_actor(), P.discrete_q(), action_space="categorical",
                                                      num_actions=P.NACT), "categorical"),
    "IQLLoss": (lambda: ours.IQLLoss(P.stoch_actor(), P.qvalue(), P.vvalue()), None),
    "DiscreteIQLLoss": (lambda: ours.DiscreteIQLLoss(P.discrete_actor(), P.discrete_q(out_key="state_action_value"),
                                                      P.vvalue(), action_space="categorical"), "categorical"),
    "CQLLoss": (lambda: ours.CQLLoss(P.stoch_actor(), P.qvalue()), None),
    "DiscreteCQLLoss": (lambda: ours.DiscreteCQLLoss(P.dqn_actor(), action_space="categorical"), "categorical"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_functional_call_equals_loading_the_parameters(name):
    make, discrete = CASES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loss = make()
    data = P.make_data((8,), discrete=discrete, seed=1)
    g = torch.Generator().manual_seed(0)
    new = {n: (p.detach() + 0.2 * torch.randn(p.shape, generator=g)).requires_grad_()
           for n, p in loss.named_parameters()}
    loaded = copy.deepcopy(loss)
    with torch.no_grad():
        for n, p in loaded.named_parameters():
            p.copy_(new[n])
    before = {n: p.detach().clone() for n, p in loss.named_parameters()}
    original = loss(data.clone())

    torch.manual_seed(0)
    got = torch.func.functional_call(loss, new, (data.clone(),))
    torch.manual_seed(0)
    want = loaded(data.clone())
    for key in want.keys():
        torch.testing.assert_close(got[key], want[key], msg=lambda m, key=key: f"{key}: {m}")
    assert any(not torch.allclose(got[k], original[k]) for k in original.keys() if k.startswith("loss"))

    P.loss_sum(got).backward()
    P.loss_sum(want).backward()
    for n, p in loaded.named_parameters():
        if p.grad is None:
            assert new[n].grad is None or torch.count_nonzero(new[n].grad) == 0, n
        else:
            torch.testing.assert_close(new[n].grad, p.grad, msg=lambda m, n=n: f"grad {n}: {m}")
    # the module computes with its own parameters again
    assert all(torch.equal(p, before[n]) for n, p in loss.named_parameters())
    assert all(p.grad is None for p in loss.parameters())

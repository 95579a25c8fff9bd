"""The ``A2CLoss`` drop-in: behaviour of its own beyond the cross-cutting module tests (those
find it through the registry)."""

from __future__ import annotations

import pytest
import torch
from tensordict.nn import set_composite_lp_aggregate
from torchrl.objectives import A2CLoss as TorchRLA2C

from tests.builders import clone_nets
from tests.modules.onpolicy_nets import composite_data, composite_nets, torchrl_forward
from torchrl_functional import modules as ours


@pytest.fixture(autouse=True)
def _no_log_prob_aggregation():
    """Composite log-probs per head, as TorchRL's own tests run them."""
    setter = set_composite_lp_aggregate(False)
    setter.set()
    yield
    setter.unset()


def test_a2c_discrete_head_entropy():
    """TorchRL's ``A2CLoss`` raises on a composite policy with a discrete head (its entropy
    samples every head with ``rsample``); ours uses that head's analytic entropy. Checked against
    a hand computation: the continuous head's one-sample estimate (same draw) plus the categorical's."""
    nets = composite_nets(seed=2, heads=("cont", "disc"))
    data = composite_data(nets, (4, 3), seed=2)
    ref = TorchRLA2C(clone_nets(nets).actor, clone_nets(nets).critic)
    with pytest.raises(NotImplementedError):
        torchrl_forward(ref)(data.clone())
    mine = ours.A2CLoss(clone_nets(nets).actor, clone_nets(nets).critic, entropy_coeff=0.3)
    torch.manual_seed(0)
    out = mine(data.clone())
    dist = nets.actor.get_dist(data.select("observation"))
    torch.manual_seed(0)
    cont = dist.dists["action", "cont"]
    x = cont.rsample((1,))
    want_entropy = -cont.log_prob(x).mean(0) + dist.dists["action", "disc"].entropy()
    torch.testing.assert_close(out["entropy"], want_entropy.mean())
    torch.testing.assert_close(out["loss_entropy"], -0.3 * want_entropy.mean())
    log_prob = sum(dist.dists[("action", h)].log_prob(data["action", h]) for h in ("cont", "disc"))
    torch.testing.assert_close(out["loss_objective"], -(log_prob.unsqueeze(-1) * data["advantage"]).mean())

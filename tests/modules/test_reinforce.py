"""The ``ReinforceLoss`` drop-in: behaviour of its own beyond the cross-cutting module tests
(those find it through the registry)."""

from __future__ import annotations

from torchrl.objectives import ReinforceLoss as TorchRLReinforce

from tests.builders import clone_nets, make_data, make_nets
from torchrl_functional import modules as ours


def test_reinforce_does_not_write_into_input_unlike_torchrl():
    """TorchRL's ReinforceLoss writes the advantage & co. into the caller's TensorDict; ours doesn't."""
    nets = make_nets("normal")
    data = make_data("normal", (2, 6), with_advantage=False, nets=nets)
    ref = TorchRLReinforce(clone_nets(nets).actor, clone_nets(nets).critic)
    mine = ours.ReinforceLoss(clone_nets(nets).actor, clone_nets(nets).critic)
    before = set(data.keys(True, True))
    theirs_in = data.clone()
    ref(theirs_in)
    assert "advantage" in theirs_in.keys()
    ours_in = data.clone()
    mine(ours_in)
    assert set(ours_in.keys(True, True)) == before
    assert (ours_in == data).all()

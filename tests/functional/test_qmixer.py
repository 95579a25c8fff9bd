"""qmixer_loss: hand-computed numbers, options, bad input; the module with renamed keys vs TorchRL."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from tensordict.nn import TensorDictModule

from tests.specs import by_name
from tests.specs.qmixer import data, inputs, nets
from torchrl_functional.errors import EntryShapeError, MissingEntryError
from torchrl_functional.functional import qmixer_loss


def test_td0_by_hand():
    td = inputs(0, torch.float64)
    q, q_next = td["chosen_action_value"], td["next", "chosen_action_value"]
    r, term = td["next", "reward"], td["next", "terminated"]
    y = r + 0.9 * (~term) * q_next
    out = qmixer_loss(td, gamma=0.9)
    torch.testing.assert_close(out["loss"], ((q - y) ** 2).mean())
    torch.testing.assert_close(out["td_error"], (q - y) ** 2)
    out = qmixer_loss(td, gamma=0.9, loss_function="l1", reduction="none")
    torch.testing.assert_close(out["loss"], (q - y).abs().squeeze(-1))


def test_target_is_detached_prediction_is_not():
    td = inputs(1)
    q = td["chosen_action_value"].clone().requires_grad_(True)
    q_next = td["next", "chosen_action_value"].clone().requires_grad_(True)
    td["chosen_action_value"], td["next", "chosen_action_value"] = q, q_next
    loss = qmixer_loss(td)["loss"]
    g_q, g_next = torch.autograd.grad(loss, (q, q_next), allow_unused=True)
    assert g_q.abs().sum() > 0
    assert g_next is None or not g_next.any()


def test_options_mask_and_weights():
    td = inputs(2, torch.float64)
    td["priority_weight"] = torch.rand(6, dtype=torch.float64) + 0.1
    td["collector", "mask"] = torch.tensor([True, False, True, True, False, True])
    per_sample = qmixer_loss(td, reduction="none")["loss"]  # TorchRL's defaults: no mask, no weights
    m, w = td["collector", "mask"], td["priority_weight"]
    got = qmixer_loss(td, loss_mask_key="auto", use_prioritized_weights=True)["loss"]
    torch.testing.assert_close(got, (per_sample * w * m).sum() / (w * m).sum())


def test_bad_input():
    td = inputs(0)
    with pytest.raises(EntryShapeError, match="chosen_action_value"):
        qmixer_loss(td.set("chosen_action_value", td["chosen_action_value"].squeeze(-1)))
    with pytest.raises(MissingEntryError, match="target mixer"):
        qmixer_loss(inputs(0).exclude(("next", "chosen_action_value")))


def test_module_renamed_global_value_matches_torchrl():
    warnings.simplefilter("ignore")
    actor, mixer = nets()
    mixer = TensorDictModule(mixer.module, in_keys=mixer.in_keys, out_keys=[("mixed", "q_tot")])
    spec = by_name("qmixer_loss")
    ref = spec.torchrl(actor, mixer, delay_value=True)
    mine = spec.module(copy.deepcopy(actor), copy.deepcopy(mixer), delay_value=True)
    for loss in (ref, mine):
        loss.set_keys(global_value=("mixed", "q_tot"))
    mine.load_state_dict(ref.state_dict())
    td = data((10,), seed=1)
    d_ref, d_mine = td.clone(), td.clone()
    out_ref, out_mine = ref(d_ref), mine(d_mine)
    torch.testing.assert_close(out_mine["loss"], out_ref["loss"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(d_mine["td_error"], d_ref["td_error"], rtol=1e-5, atol=1e-6)
    out_ref["loss"].backward()
    out_mine["loss"].backward()
    for (name, p), q in zip(ref.named_parameters(), mine.parameters()):
        if p.grad is not None:
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-5, atol=1e-6, msg=name)

"""Specs of the imitation-learning losses: ``bc_loss`` (TorchRL's ``BCLoss``).

The padded layouts are not fuzzed: their padding mask is optional (a missing mask means no
padding, as TorchRL) and lives in a non-default keys object; tests/losses/test_imitation.py
covers them."""

from __future__ import annotations

import functools

from torchrl import objectives as torchrl_objectives

from torchrl_functional import modules
from torchrl_functional.functional import BCKeys, bc_loss

from . import _imitation as I
from ._inputs import diag_normal
from ._spec import Layout, LossSpec


def _bc_cases():
    theirs, ours = torchrl_objectives.BCLoss, modules.BCLoss

    def case(case_id, make_actor, data_kw=None, keys=None, batch=I.BATCH, functional_call=False, **kwargs):
        def build():
            pair = I.pair(theirs, ours, make_actor, **kwargs)
            for loss in pair:
                if keys:
                    loss.set_keys(**keys)
            return pair

        def rebatch(new_batch):
            return case(case_id, make_actor, data_kw, keys, new_batch, functional_call, **kwargs)

        return I.module_case(case_id, build, I.obs_action_data(batch, **(data_kw or {})),
                             functional_call=functional_call, rebatch=rebatch)

    return [
        case("mse", I.det_actor, functional_call=True),
        case("nll", I.tanh_normal_actor, functional_call=True),
        case("l1-pad", I.det_actor, {"pad": True}, keys={"pad_mask": "is_pad"}, loss_function="l1"),
        case("smooth_l1-mask-sum", I.det_actor, {"mask": True}, loss_function="smooth_l1", reduction="sum"),
        case("l2-none-seq", I.det_actor, {"mask": True}, batch=(2, 3), loss_function="l2", reduction="none"),
        case("cross_entropy", functools.partial(I.det_actor, n_out=I.N_CLASSES), {"discrete": True}),
    ]


SPECS = [
    LossSpec(
        "bc_loss", bc_loss, BCKeys,
        (
            Layout("l2", I.bc_td, {"loss_function": "l2"}, ("action_pred",), compile=True),
            Layout("nll", functools.partial(I.bc_td, variant="nll"), {"loss_function": "nll", "dist_class": diag_normal},
                   (("actor_output", "loc"), ("actor_output", "scale"))),
            Layout("cross_entropy", functools.partial(I.bc_td, variant="cross_entropy"),
                   {"loss_function": "cross_entropy"}, ("action_pred",)),
            Layout("l1_pad_none", functools.partial(I.bc_td, pad=True, batch=(2, 3)),
                   {"loss_function": "l1", "reduction": "none", "keys": BCKeys(pad_mask="is_pad")},
                   ("action_pred",), fuzz=False, vmap=False),
            Layout("smooth_l1_pad", functools.partial(I.bc_td, pad=True),
                   {"loss_function": "smooth_l1", "keys": BCKeys(pad_mask="is_pad")}, ("action_pred",),
                   fuzz=False),
        ),
        (),
        modules.BCLoss, torchrl_objectives.BCLoss, _bc_cases,
        grad_outputs=("loss_bc",),
    ),
]

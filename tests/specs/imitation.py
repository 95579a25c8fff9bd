"""Specs of the imitation-learning losses: ``bc_loss``, ``dt_loss``, ``online_dt_loss``, ``act_loss``,
``diffusion_bc_loss`` (TorchRL's ``BCLoss``, ``DTLoss``, ``OnlineDTLoss``, ``ACTLoss``, ``DiffusionBCLoss``).

The padded and masked layouts are not fuzzed: masks are optional (a missing mask means no
padding, as TorchRL) and lives in a non-default keys object; tests/losses/test_imitation.py
covers them."""

from __future__ import annotations

import functools

from torchrl import objectives as torchrl_objectives

from torchrl_functional import modules
from torchrl_functional.functional import (
    ACTKeys,
    BCKeys,
    DiffusionBCKeys,
    DTKeys,
    OnlineDTKeys,
    act_loss,
    bc_loss,
    diffusion_bc_loss,
    dt_loss,
    online_dt_loss,
)

from . import _imitation as I
from ._inputs import diag_normal
from ._spec import Hyper, Layout, LossSpec


def _case(theirs, ours, case_id, make_actor, data, *, keys=None, functional_call=False, **kwargs):
    def build():
        pair = I.pair(theirs, ours, make_actor, **kwargs)
        for loss in pair:
            if keys:
                loss.set_keys(**keys)
        return pair

    return I.module_case(case_id, build, data, functional_call=functional_call)


def _dt_cases():
    theirs, ours = torchrl_objectives.DTLoss, modules.DTLoss
    return [
        _case(theirs, ours, "l2", I.det_actor, I.obs_action_data(I.SEQ), functional_call=True),
        _case(theirs, ours, "l1-mask-none", I.det_actor, I.obs_action_data(I.SEQ, mask=True), loss_function="l1",
              reduction="none"),
        _case(theirs, ours, "smooth_l1-keys-sum", functools.partial(I.det_actor, out_key="pred"),
              I.obs_action_data(I.BATCH), keys={"action_pred": "pred"}, loss_function="smooth_l1", reduction="sum"),
    ]


def _odt_cases():
    theirs, ours = torchrl_objectives.OnlineDTLoss, modules.OnlineDTLoss
    return [
        _case(theirs, ours, "base", I.tanh_normal_actor, I.obs_action_data(I.BATCH), functional_call=True),
        _case(theirs, ours, "seq-mask-mc3", I.tanh_normal_actor, I.obs_action_data(I.SEQ, mask=True),
              samples_mc_entropy=3, alpha_init=0.5),
        _case(theirs, ours, "clamped-sum", I.tanh_normal_actor, I.obs_action_data(I.BATCH), alpha_init=3.0,
              min_alpha=0.5, max_alpha=2.0, reduction="sum", target_entropy=-1.5),
        _case(theirs, ours, "none", I.tanh_normal_actor, I.obs_action_data(I.SEQ), reduction="none",
              scalar_output_mode="exclude"),
    ]


def _act_cases():
    theirs, ours = torchrl_objectives.ACTLoss, modules.ACTLoss
    return [
        _case(theirs, ours, "base", I.act_actor, I.chunk_data(), functional_call=True),
        _case(theirs, ours, "keys-sum", I.act_actor, I.chunk_data(key="demo", obs_key="obs"),
              keys={"observation": "obs", "action_chunk": "demo"}, kl_weight=0.5, reduction="sum"),
        _case(theirs, ours, "none-seq", I.act_actor, I.chunk_data(I.SEQ), reduction="none"),
    ]


def _diffusion_cases():
    theirs, ours = torchrl_objectives.DiffusionBCLoss, modules.DiffusionBCLoss
    return [
        _case(theirs, ours, "base", I.diffusion_actor, I.obs_action_data(I.BATCH), functional_call=True),
        _case(theirs, ours, "none-seq", I.diffusion_actor, I.obs_action_data(I.SEQ), reduction="none"),
    ]


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


ACT_GRADS = ("action_pred", "mu", "log_var")
ODT_GRADS = (("actor_output", "loc"), ("actor_output", "scale"))

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
    LossSpec(
        "dt_loss", dt_loss, DTKeys,
        (
            Layout("l2", I.dt_td, {}, ("action_pred",), compile=True),
            Layout("l1_mask_none", functools.partial(I.dt_td, mask=True), {"loss_function": "l1", "reduction": "none"},
                   ("action_pred",), fuzz=False),
        ),
        (),
        modules.DTLoss, torchrl_objectives.DTLoss, _dt_cases,
        grad_outputs=("loss",),
    ),
    LossSpec(
        "online_dt_loss", online_dt_loss, OnlineDTKeys,
        (
            # vmap=False: the entropy samples are drawn inside; tests/losses/test_imitation.py vmaps it reseeded
            Layout("normal", I.odt_td, {"dist_class": diag_normal}, ODT_GRADS, compile=True, vmap=False),
            Layout("tanh_normal_mc3_sum", functools.partial(I.odt_td, batch=I.BATCH),
                   {"dist_class": I.tanh_normal, "samples_mc_entropy": 3, "reduction": "sum"}, ODT_GRADS, vmap=False),
        ),
        (
            Hyper("log_alpha", -0.5, invalid=(float("nan"),), objective=("loss_alpha",)),
            Hyper("target_entropy", -2.0, invalid=(float("nan"),), objective=("loss_alpha",)),
        ),
        modules.OnlineDTLoss, torchrl_objectives.OnlineDTLoss, _odt_cases,
        grad_outputs=("loss_log_likelihood", "loss_entropy", "loss_alpha"),
    ),
    LossSpec(
        "act_loss", act_loss, ACTKeys,
        (
            Layout("mean", I.act_td, {}, ACT_GRADS, compile=True),
            Layout("none_seq", functools.partial(I.act_td, batch=I.SEQ), {"reduction": "none"}, ACT_GRADS),
        ),
        (Hyper("kl_weight", 2.0, invalid=(-1.0, float("nan"))),),
        modules.ACTLoss, torchrl_objectives.ACTLoss, _act_cases,
        grad_outputs=("loss_act",),
    ),
    LossSpec(
        "diffusion_bc_loss", diffusion_bc_loss, DiffusionBCKeys,
        (
            Layout("mean", I.diffusion_td, {}, ("noise_pred",), compile=True),
            Layout("none_seq", functools.partial(I.diffusion_td, batch=I.SEQ), {"reduction": "none"}, ("noise_pred",)),
        ),
        (),
        modules.DiffusionBCLoss, torchrl_objectives.DiffusionBCLoss, _diffusion_cases,
        grad_outputs=("loss_diffusion_bc",),
    ),
]

"""Spec of ``rnd_loss`` (TorchRL's ``RNDLoss``): predictor and target features of 6 next
observations; module cases run TorchRL's class and ours on copies of two small MLPs."""

from __future__ import annotations

import copy

import torch
from tensordict import TensorDict
from torch import nn
from torchrl import objectives as torchrl_objectives
from torchrl.envs.transforms.rnd import RunningMeanStd

from torchrl_functional import modules
from torchrl_functional.functional import RNDKeys, rnd_loss

from ._spec import Hyper, Layout, LossSpec, ModuleCase

B, FEATURES, OBS = 6, 4, 3


def features(seed: int, dtype: torch.dtype = torch.float32, *, mask: bool = False) -> TensorDict:
    g = torch.Generator().manual_seed(seed)
    data = {"predictor_features": torch.randn(B, FEATURES, generator=g, dtype=torch.float64).to(dtype),
            "target_features": torch.randn(B, FEATURES, generator=g, dtype=torch.float64).to(dtype)}
    if mask:
        valid = torch.ones(B, 1, dtype=torch.bool)
        valid[1] = False
        data["collector"] = {"mask": valid}
    return TensorDict(data, [B])


def _nets():
    torch.manual_seed(0)
    predictor = nn.Sequential(nn.Linear(OBS, 8), nn.ReLU(), nn.Linear(8, FEATURES))
    target = nn.Sequential(nn.Linear(OBS, 8), nn.ReLU(), nn.Linear(8, FEATURES))
    return predictor, target


def _rms() -> RunningMeanStd:
    rms = RunningMeanStd(shape=(OBS,))
    rms.update(torch.randn(20, OBS, generator=torch.Generator().manual_seed(3)) * 2 + 1)
    return rms


def _case(case_id: str, *, batch: tuple[int, ...] = (12,), mask: bool = False, rms: bool = False,
          functional_call: bool = False, **kwargs) -> ModuleCase:
    def build():
        nets = _nets()
        stats = _rms() if rms else None
        return tuple(
            cls(*copy.deepcopy(nets), obs_rms=copy.deepcopy(stats), **kwargs)
            for cls in (torchrl_objectives.RNDLoss, modules.RNDLoss)
        )

    def data(seed: int) -> TensorDict:
        g = torch.Generator().manual_seed(seed)
        td = TensorDict({"next": {"observation": torch.randn(*batch, OBS, generator=g) * 3}}, list(batch))
        if mask:
            valid = torch.rand(*batch, 1, generator=g) > 0.3
            td["collector", "mask"] = valid
        return td

    def rebatch(new_batch):
        return _case(case_id, batch=new_batch, mask=mask, rms=rms, functional_call=functional_call, **kwargs)

    return ModuleCase(case_id, build, data, functional_call=functional_call, rebatch=rebatch)


def _cases():
    return [
        _case("base", functional_call=True),
        _case("obs_rms-sum", rms=True, reduction="sum", obs_clip=1.0),
        _case("all-none-mask", update_fraction=1.0, reduction="none", mask=True),
        _case("mask-mean", mask=True, update_fraction=0.6, batch=(3, 4)),
    ]


SPECS = [
    LossSpec(
        "rnd_loss", rnd_loss, RNDKeys,
        (
            Layout("fraction", features, {}, ("predictor_features",), compile=True),
            Layout("all-none-mask", lambda seed, dtype=torch.float32: features(seed, dtype, mask=True),
                   {"update_fraction": 1.0, "reduction": "none"}, ("predictor_features",),
                   fuzz=False),  # the mask is optional: dropping it changes the result by design
            Layout("sum", features, {"update_fraction": 0.5, "reduction": "sum"}, ("predictor_features",)),
        ),
        (
            Hyper("update_fraction", 0.25, invalid=(-0.1, 1.5), tensor=False),
            Hyper("reduction", 0.0, invalid=("max",), tensor=False),
        ),
        modules.RNDLoss, torchrl_objectives.RNDLoss, _cases,
        grad_outputs=("loss_predictor",), bench_batch=(256,),
    ),
]

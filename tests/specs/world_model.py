"""Spec of ``world_model_loss`` (TorchRL's ``WorldModelLoss``): predictions and targets of
6 transitions; module cases run TorchRL's class and ours on copies of one small ``WorldModel``
(TorchRL's own test layout: linear encoder, dynamics, reward and done heads, decoder)."""

from __future__ import annotations

import copy

import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule, TensorDictSequential
from torchrl import objectives as torchrl_objectives
from torchrl.modules import WorldModel
from torchrl.testing import CatLinear

from torchrl_functional import modules
from torchrl_functional.functional import WorldModelKeys, world_model_loss

from ._spec import Hyper, Layout, LossSpec, ModuleCase

B, OBS, LATENT, ACTION = 6, 5, 3, 2
ALL = ("reward", "done", "reconstruction", "latent")
GRADS = (("next", "reward"), ("next", "done"), "reconstructed_observation", "predicted_latent")


def heads(seed: int, dtype: torch.dtype = torch.float32) -> TensorDict:
    g = torch.Generator().manual_seed(seed)

    def randn(*s: int) -> torch.Tensor:
        return torch.randn(*s, generator=g, dtype=torch.float64).to(dtype)

    done = torch.zeros(B, 1, dtype=torch.bool)
    done[2] = True
    return TensorDict(
        {
            "observation": randn(B, OBS), "reconstructed_observation": randn(B, OBS),
            "predicted_latent": randn(B, LATENT), "target_latent": randn(B, LATENT),
            "next": {"reward": randn(B, 1), "true_reward": randn(B, 1), "done": randn(B, 1).sigmoid(),
                     "true_done": done},
        },
        [B],
    )


def _world_model() -> WorldModel:
    torch.manual_seed(0)
    lin = torch.nn.Linear
    return WorldModel(
        TensorDictModule(lin(OBS, LATENT), in_keys=["observation"], out_keys=["latent"]),
        TensorDictModule(CatLinear(LATENT + ACTION, LATENT), in_keys=["latent", "action"], out_keys=[("next", "latent")]),
        TensorDictModule(lin(LATENT, 1), in_keys=[("next", "latent")], out_keys=[("next", "reward")]),
        done_head=TensorDictModule(lin(LATENT, 1), in_keys=[("next", "latent")], out_keys=[("next", "done")]),
        decoder=TensorDictModule(lin(LATENT, OBS), in_keys=["latent"], out_keys=["reconstructed_observation"]),
    )


def _sequential_model() -> TensorDictSequential:
    """Encoder, dynamics and reward head in one sequence: no module shared by two containers.
    (``torch.func.functional_call`` on TorchRL's ``WorldModel``, whose step and full sequences
    share its heads, does not give the original parameter objects back, with or without a loss
    around it; the functional_call guarantee runs on this one.)"""
    model = _world_model()
    return TensorDictSequential(model.encoder, model.dynamics, model.reward_head)


def _case(case_id: str, *, batch: tuple[int, ...] = (8,), functional_call: bool = False, **kwargs) -> ModuleCase:
    def build():
        model = _sequential_model() if functional_call else _world_model()
        return tuple(cls(copy.deepcopy(model), **kwargs)
                     for cls in (torchrl_objectives.WorldModelLoss, modules.WorldModelLoss))

    def data(seed: int) -> TensorDict:
        g = torch.Generator().manual_seed(seed)
        return TensorDict(
            {"observation": torch.randn(*batch, OBS, generator=g), "action": torch.randn(*batch, ACTION, generator=g),
             "next": {"reward": torch.randn(*batch, 1, generator=g),
                      "done": torch.rand(*batch, 1, generator=g) > 0.7,
                      "terminated": torch.zeros(*batch, 1, dtype=torch.bool)}},
            list(batch),
        )

    def rebatch(new_batch):
        return _case(case_id, batch=new_batch, functional_call=functional_call, **kwargs)

    return ModuleCase(case_id, build, data, functional_call=functional_call, rebatch=rebatch)


def _cases():
    return [
        _case("reward-sequential", functional_call=True),
        _case("reward"),
        _case("reward-done-reco", losses=["reward", "done", "reconstruction"], done_loss="l1",
              reconstruction_loss="smooth_l1", reward_weight=0.5, done_weight=2.0),
    ]


SPECS = [
    LossSpec(
        "world_model_loss", world_model_loss, WorldModelKeys,
        (
            Layout("all", heads, {"losses": ALL, "latent_loss": "smooth_l1", "done_loss": "l1"}, GRADS, compile=True),
            Layout("reward", lambda seed, dtype=torch.float32: heads(seed, dtype).select(("next", "reward"),
                                                                                         ("next", "true_reward")),
                   {}, (("next", "reward"),)),
        ),
        (
            Hyper("reward_weight", 0.5), Hyper("done_weight", 2.0, layouts=("all",)),
            Hyper("reconstruction_weight", 0.3, layouts=("all",)), Hyper("latent_weight", 1.5, layouts=("all",)),
            Hyper("losses", 0.0, invalid=(["bad_loss"], "reward"), tensor=False),
            Hyper("reward_loss", 0.0, invalid=("l3",), tensor=False),
        ),
        modules.WorldModelLoss, torchrl_objectives.WorldModelLoss, _cases,
        grad_outputs=("loss_reward", "loss_done", "loss_reconstruction", "loss_latent"), bench_batch=(256,),
    ),
]

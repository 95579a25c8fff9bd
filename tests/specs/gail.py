"""Spec of the GAIL discriminator loss: ``gail_loss``."""

from __future__ import annotations

import copy

import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule, TensorDictSequential
from torchrl.modules import MLP
from torchrl.objectives import GAILLoss as TorchRLGAIL

from torchrl_functional import modules
from torchrl_functional.functional import GAILKeys, gail_loss

from ._modules import _quiet
from ._spec import Hyper, Layout, LossSpec, ModuleCase

B, OBS, ACT = 6, 3, 2


def gail_td(seed: int, dtype: torch.dtype = torch.float32, *, gp: bool = False, batch: tuple = (B,)) -> TensorDict:
    """Discriminator probabilities on expert and collector pairs ``[*B, 1]`` (and the input
    gradient at the interpolates ``[*B, OBS + ACT]`` with ``gp``)."""
    g = torch.Generator().manual_seed(seed)

    def randn(*s: int) -> torch.Tensor:
        return torch.randn(*s, generator=g, dtype=torch.float64).to(dtype)

    data = {"expert_pred": torch.sigmoid(randn(*batch, 1) + 0.5), "collector_pred": torch.sigmoid(randn(*batch, 1) - 0.5)}
    if gp:
        data["gp_gradient"] = randn(*batch, OBS + ACT)
    return TensorDict(data, batch_size=batch)


def _gp(seed, dtype=torch.float32):
    return gail_td(seed, dtype, gp=True)


def _seq(seed, dtype=torch.float32):
    return gail_td(seed, dtype, gp=True, batch=(2, 4))


PREDS = ("expert_pred", "collector_pred")
LAYOUTS = (
    Layout("gp", _gp, {"use_grad_penalty": True, "gp_lambda": 1.0}, (*PREDS, "gp_gradient"), compile=True),
    Layout("plain", gail_td, {}, PREDS),
    Layout("seq_gp", _seq, {"use_grad_penalty": True}, (*PREDS, "gp_gradient")),
)


def _discriminator(seed: int = 2):
    torch.manual_seed(seed)
    body = TensorDictModule(MLP(in_features=OBS + ACT, out_features=16, depth=1, num_cells=16,
                                activation_class=torch.nn.Tanh, activate_last_layer=True),
                            in_keys=["observation", "action"], out_keys="hidden")
    head = TensorDictModule(MLP(in_features=16, out_features=1, depth=0, activation_class=torch.nn.Sigmoid,
                                activate_last_layer=True), in_keys="hidden", out_keys="d_logits")
    return TensorDictSequential(body, head)


def module_case(case_id: str, kwargs: dict | None = None, batch: tuple = (8,), functional_call: bool = False,
                mask: bool = False) -> ModuleCase:
    kwargs = kwargs or {}

    def build():
        disc = _discriminator()
        return tuple(_quiet(lambda cls=cls: cls(copy.deepcopy(disc), **kwargs)) for cls in (TorchRLGAIL, modules.GAILLoss))

    def data(seed: int) -> TensorDict:
        g = torch.Generator().manual_seed(seed)
        td = TensorDict({
            "observation": torch.randn(*batch, OBS, generator=g),
            "action": torch.randn(*batch, ACT, generator=g).clamp(-1, 1),
            "collector_observation": torch.randn(*batch, OBS, generator=g) + 1,
            "collector_action": torch.randn(*batch, ACT, generator=g).clamp(-1, 1),
        }, batch_size=batch)
        if mask:
            td["collector", "mask"] = torch.rand(*batch, generator=g) > 0.3
        return td

    def rebatch(new_batch):
        return module_case(case_id, kwargs, tuple(new_batch), functional_call, mask)

    return ModuleCase(case_id, build, data, functional_call=functional_call, rebatch=rebatch)


def module_cases():
    return [
        module_case("gp", {"use_grad_penalty": True, "gp_lambda": 0.5}, functional_call=True),
        module_case("plain"),
        module_case("seq_gp", {"use_grad_penalty": True}, batch=(2, 5)),
        module_case("none_mask", {"reduction": "none"}, mask=True),
        module_case("sum_gp_mask", {"reduction": "sum", "use_grad_penalty": True}, mask=True),
    ]


SPECS = [
    LossSpec(
        "gail_loss", gail_loss, GAILKeys, LAYOUTS,
        (Hyper("gp_lambda", 2.0, invalid=(-1.0,), layouts=("gp", "seq_gp")),),
        modules.GAILLoss, TorchRLGAIL, module_cases, grad_outputs=("loss",), bench_batch=(256,),
    ),
]

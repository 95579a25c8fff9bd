"""Inputs and module cases of the imitation-learning losses (BC, DT, online DT, ACT, diffusion BC).

Functional inputs are ``(seed, dtype) -> TensorDict`` builders on a batch of 6 samples (a
``[2, 3]`` sequence batch for the DT losses); module cases run TorchRL's class and ours on two
deep copies of one small policy.
"""

from __future__ import annotations

import copy
import warnings

import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn

from ._spec import ModuleCase

OBS, ACT, N_CLASSES = 4, 3, 5
BATCH = (6,)


def _randn(g: torch.Generator, dtype: torch.dtype, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)


def bc_td(seed: int, dtype: torch.dtype = torch.float32, *, variant: str = "l2", pad: bool = False,
          batch: tuple[int, ...] = BATCH) -> TensorDict:
    """Expert actions with a prediction (``"l2"``), logits and class indices
    (``"cross_entropy"``) or Gaussian parameters (``"nll"``); optional padding mask."""
    g = torch.Generator().manual_seed(seed)
    entries: dict = {}
    if variant == "cross_entropy":
        entries["action"] = torch.randint(N_CLASSES, (*batch, 1), generator=g)
        entries["action_pred"] = _randn(g, dtype, *batch, N_CLASSES)
    elif variant == "nll":
        entries["action"] = _randn(g, dtype, *batch, ACT)
        entries["actor_output"] = {"loc": _randn(g, dtype, *batch, ACT),
                                   "scale": _randn(g, dtype, *batch, ACT).exp() * 0.5 + 0.3}
    else:
        entries["action"] = _randn(g, dtype, *batch, ACT)
        entries["action_pred"] = _randn(g, dtype, *batch, ACT)
    if pad:
        entries["is_pad"] = torch.arange(batch[-1]).expand(*batch) % 3 == 2
    return TensorDict(entries, batch_size=batch)


# ----------------------------------------------------------------------------- module cases


def _quiet(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn()


def pair(torchrl_cls: type, our_cls: type, make_actor, **kwargs) -> tuple:
    """TorchRL's class and ours on deep copies of one actor (identical weights)."""
    torch.manual_seed(3)
    actor = make_actor()
    return tuple(_quiet(lambda cls=cls: cls(copy.deepcopy(actor), **kwargs)) for cls in (torchrl_cls, our_cls))


def det_actor(out_key: str = "action", n_out: int = ACT) -> TensorDictModule:
    return TensorDictModule(nn.Sequential(nn.Linear(OBS, 8), nn.Tanh(), nn.Linear(8, n_out)),
                            in_keys=["observation"], out_keys=[out_key])


def tanh_normal_actor() -> nn.Module:
    from torchrl.data.tensor_specs import Bounded
    from torchrl.modules import NormalParamExtractor, ProbabilisticActor, TanhNormal

    spec = Bounded(-torch.ones(ACT), torch.ones(ACT), (ACT,))
    net = nn.Sequential(nn.Linear(OBS, 8), nn.Tanh(), nn.Linear(8, 2 * ACT), NormalParamExtractor())
    module = TensorDictModule(net, in_keys=["observation"], out_keys=["loc", "scale"])
    return ProbabilisticActor(module=module, distribution_class=TanhNormal, in_keys=["loc", "scale"], spec=spec)


def obs_action_data(batch: tuple[int, ...] = BATCH, *, discrete: bool = False, pad: bool = False,
                    mask: bool = False):
    def data(seed: int) -> TensorDict:
        g = torch.Generator().manual_seed(seed)
        td = TensorDict({"observation": torch.randn(*batch, OBS, generator=g)}, batch_size=batch)
        if discrete:
            td["action"] = torch.randint(N_CLASSES, batch, generator=g)
        else:
            td["action"] = (torch.randn(*batch, ACT, generator=g) * 0.5).clamp(-0.95, 0.95)
        if pad:
            td["is_pad"] = torch.arange(batch[-1]).expand(*batch) % 3 == 2
        if mask:
            td["collector", "mask"] = torch.arange(batch[-1]).expand(*batch) % 4 != 1
        return td

    return data


def module_case(case_id: str, build, data, *, functional_call: bool = False, rebatch=None, **kw) -> ModuleCase:
    return ModuleCase(case_id, build, data, functional_call=functional_call, rebatch=rebatch, **kw)


SEQ = (2, 3)


def dt_td(seed: int, dtype: torch.dtype = torch.float32, *, mask: bool = False) -> TensorDict:
    """A ``[2, 3]`` sequence batch: target and predicted actions (optional collector mask)."""
    g = torch.Generator().manual_seed(seed)
    td = TensorDict({"action": _randn(g, dtype, *SEQ, ACT), "action_pred": _randn(g, dtype, *SEQ, ACT)},
                    batch_size=SEQ)
    if mask:
        td["collector", "mask"] = torch.tensor([[True, True, False], [True, False, True]])
    return td


def odt_td(seed: int, dtype: torch.dtype = torch.float32, *, batch: tuple[int, ...] = SEQ) -> TensorDict:
    """Target actions in ``(-1, 1)`` and Gaussian parameters of the policy."""
    g = torch.Generator().manual_seed(seed)
    return TensorDict({
        "action": (_randn(g, dtype, *batch, ACT) * 0.4).clamp(-0.9, 0.9),
        "actor_output": {"loc": _randn(g, dtype, *batch, ACT) * 0.5,
                         "scale": _randn(g, dtype, *batch, ACT).exp() * 0.3 + 0.2},
    }, batch_size=batch)


def tanh_normal(loc: torch.Tensor, scale: torch.Tensor):
    from torchrl.modules import TanhNormal

    return TanhNormal(loc, scale)


CHUNK, LATENT = 4, 2


def act_td(seed: int, dtype: torch.dtype = torch.float32, *, batch: tuple[int, ...] = BATCH) -> TensorDict:
    """Expert chunk ``[*B, 4, 3]``, predicted chunk, CVAE mean and log-variance ``[*B, 2]``."""
    g = torch.Generator().manual_seed(seed)
    return TensorDict({
        "vla_action": {"chunk": _randn(g, dtype, *batch, CHUNK, ACT)},
        "action_pred": _randn(g, dtype, *batch, CHUNK, ACT),
        "mu": _randn(g, dtype, *batch, LATENT),
        "log_var": _randn(g, dtype, *batch, LATENT) * 0.5,
    }, batch_size=batch)


def diffusion_td(seed: int, dtype: torch.dtype = torch.float32, *, batch: tuple[int, ...] = BATCH) -> TensorDict:
    """Drawn noise and the score network's prediction ``[*B, 3]``."""
    g = torch.Generator().manual_seed(seed)
    return TensorDict({"noise": _randn(g, dtype, *batch, ACT), "noise_pred": _randn(g, dtype, *batch, ACT)},
                      batch_size=batch)


class _TinyACT(nn.Module):
    """A CVAE-shaped policy: encodes (observation, chunk) into (mu, log_var), decodes a chunk."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Linear(OBS + CHUNK * ACT, 2 * LATENT)
        self.dec = nn.Linear(OBS + LATENT, CHUNK * ACT)

    def forward(self, observation, action_chunk):
        mu, log_var = self.enc(torch.cat([observation, action_chunk.flatten(-2)], -1)).chunk(2, -1)
        z = mu + (0.5 * log_var).exp()  # deterministic "sample": parity needs no draw
        pred = self.dec(torch.cat([observation, z], -1)).unflatten(-1, (CHUNK, ACT))
        return pred, mu, log_var


def act_actor() -> TensorDictModule:
    return TensorDictModule(_TinyACT(), in_keys=["observation", "action_chunk"], out_keys=["action_pred", "mu", "log_var"])


def chunk_data(batch: tuple[int, ...] = BATCH, key=("vla_action", "chunk"), obs_key="observation"):
    def data(seed: int) -> TensorDict:
        g = torch.Generator().manual_seed(seed)
        td = TensorDict({obs_key: torch.randn(*batch, OBS, generator=g)}, batch_size=batch)
        td[key] = torch.randn(*batch, CHUNK, ACT, generator=g)
        return td

    return data


def diffusion_actor() -> nn.Module:
    from torchrl.modules import DiffusionActor

    return DiffusionActor(action_dim=ACT, obs_dim=OBS, num_steps=7)

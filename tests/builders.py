"""Small actor/critic/data builders shared by the tests.

Every builder is deterministic given its seed so that a TorchRL loss and ours can be
built on networks with identical weights and fed identical data.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from tensordict import TensorDict
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch import nn
from torchrl.modules import IndependentNormal, OneHotCategorical, ProbabilisticActor, TanhNormal, ValueOperator

OBS = 5
ACT = 3  # continuous action dims / number of discrete actions
DISTS = ("tanh_normal", "normal", "categorical", "one_hot")


@dataclass
class Nets:
    actor: nn.Module
    critic: nn.Module


def make_nets(
    dist: str, seed: int = 0, value_key: str = "state_value", hidden: int = 8, shared: bool = False
) -> Nets:
    """Actor (ProbabilisticActor) and critic (ValueOperator) for ``dist``, fixed weights.

    ``shared=True`` makes the critic reuse the actor's first layer (a shared trunk).
    """
    g = torch.Generator().manual_seed(seed)

    def linear(i: int, o: int) -> nn.Linear:
        layer = nn.Linear(i, o)
        with torch.no_grad():
            layer.weight.copy_(torch.randn(o, i, generator=g) * 0.5)
            layer.bias.copy_(torch.randn(o, generator=g) * 0.1)
        return layer

    if dist in ("tanh_normal", "normal"):
        body = nn.Sequential(linear(OBS, hidden), nn.Tanh(), linear(hidden, 2 * ACT), NormalParamExtractor())
        module = TensorDictModule(body, in_keys=["observation"], out_keys=["loc", "scale"])
        dist_class = TanhNormal if dist == "tanh_normal" else IndependentNormal
        actor = ProbabilisticActor(
            module, in_keys=["loc", "scale"], distribution_class=dist_class, return_log_prob=True
        )
    elif dist in ("categorical", "one_hot"):
        body = nn.Sequential(linear(OBS, hidden), nn.Tanh(), linear(hidden, ACT))
        module = TensorDictModule(body, in_keys=["observation"], out_keys=["logits"])
        dist_class = torch.distributions.Categorical if dist == "categorical" else OneHotCategorical
        actor = ProbabilisticActor(
            module, in_keys=["logits"], distribution_class=dist_class, return_log_prob=True
        )
    else:  # pragma: no cover
        raise ValueError(dist)
    trunk = body[0] if shared else linear(OBS, hidden)
    critic = ValueOperator(
        nn.Sequential(trunk, nn.Tanh(), linear(hidden, 1)),
        in_keys=["observation"],
        out_keys=[value_key],
    )
    return Nets(actor, critic)


def clone_nets(nets: Nets) -> Nets:
    return Nets(copy.deepcopy(nets.actor), copy.deepcopy(nets.critic))


def make_data(
    dist: str,
    batch: tuple[int, ...],
    seed: int = 0,
    *,
    with_advantage: bool = True,
    with_mask: bool = False,
    keys: dict | None = None,
    nets: Nets | None = None,
) -> TensorDict:
    """A collector-like batch: observations, actions, behaviour log-probs, rewards, flags,
    and (optionally) an advantage / value target. ``keys`` renames entries."""
    keys = {
        "advantage": "advantage",
        "value_target": "value_target",
        "value": "state_value",
        "sample_log_prob": "action_log_prob",
        "reward": "reward",
        "done": "done",
        "terminated": "terminated",
        **(keys or {}),
    }
    g = torch.Generator().manual_seed(seed + 1000)
    shape = torch.Size(batch)
    obs = torch.randn(*shape, OBS, generator=g)
    next_obs = torch.randn(*shape, OBS, generator=g)
    if dist in ("tanh_normal", "normal"):
        action = (torch.rand(*shape, ACT, generator=g) * 1.8 - 0.9)
    elif dist == "categorical":
        action = torch.randint(ACT, shape, generator=g)
    else:
        action = nn.functional.one_hot(torch.randint(ACT, shape, generator=g), ACT).to(torch.long)
    # behaviour log-prob close to the current one so that ratios are O(1) and some get clipped
    if nets is not None:
        with torch.no_grad():
            dist_obj = nets.actor.get_dist(TensorDict({"observation": obs}, shape))
            log_prob = dist_obj.log_prob(action) + 0.3 * torch.randn(shape, generator=g)
    else:
        log_prob = torch.randn(shape, generator=g)
    done = torch.rand(*shape, 1, generator=g) < 0.15
    terminated = done & (torch.rand(*shape, 1, generator=g) < 0.5)
    data = TensorDict(
        {
            "observation": obs,
            "action": action,
            keys["sample_log_prob"]: log_prob,
            keys["value"]: torch.randn(*shape, 1, generator=g),
            "next": {
                "observation": next_obs,
                keys["reward"]: torch.randn(*shape, 1, generator=g),
                keys["done"]: done,
                keys["terminated"]: terminated,
            },
        },
        batch_size=shape,
    )
    if nets is not None:
        # behaviour-policy distribution parameters (read by the KL-penalty loss)
        with torch.no_grad():
            params = nets.actor.get_dist_params(TensorDict({"observation": obs}, shape))
        for name in ("loc", "scale", "logits"):
            if name in params.keys():
                noise = 0.1 * torch.randn(params[name].shape, generator=g)
                data[name] = params[name] * noise.exp() if name == "scale" else params[name] + noise
    if not with_advantage:
        # as left by an earlier value-estimator pass: TorchRL's estimators stack root and
        # "next" inputs and need the value entry on both or neither
        data["next", keys["value"]] = torch.randn(*shape, 1, generator=g)
    if with_advantage:
        data[keys["advantage"]] = torch.randn(*shape, 1, generator=g)
        data[keys["value_target"]] = torch.randn(*shape, 1, generator=g)
    if with_mask:
        mask = torch.rand(*shape, generator=g) < 0.7
        mask.view(-1)[0] = True
        data["collector", "mask"] = mask
    return data


def loss_sum(out: TensorDict) -> torch.Tensor:
    """Sum of every ``loss_*`` entry (all elements when reduction='none')."""
    return sum(v.sum() for k, v in out.items() if k.startswith("loss_"))


def assert_td_close(ours: TensorDict, ref: TensorDict, *, atol: float = 1e-6, rtol: float = 1e-5) -> None:
    assert set(ours.keys(True, True)) == set(ref.keys(True, True)), (
        sorted(ours.keys(True, True)), sorted(ref.keys(True, True)))
    for key in ref.keys(True, True):
        a, b = ours.get(key), ref.get(key)
        assert a.shape == b.shape, (key, a.shape, b.shape)
        torch.testing.assert_close(a, b, atol=atol, rtol=rtol, msg=lambda m, key=key: f"{key}: {m}")


def assert_grads_close(ours: nn.Module, ref: nn.Module, *, atol: float = 1e-6, rtol: float = 1e-5) -> None:
    named_ours = dict(ours.named_parameters())
    named_ref = dict(ref.named_parameters())
    assert named_ours.keys() == named_ref.keys()
    checked = 0
    for name, p_ref in named_ref.items():
        p_ours = named_ours[name]
        if p_ref.grad is None:
            assert p_ours.grad is None or torch.count_nonzero(p_ours.grad) == 0, name
            continue
        assert p_ours.grad is not None, name
        torch.testing.assert_close(p_ours.grad, p_ref.grad, atol=atol, rtol=rtol, msg=lambda m, n=name: f"grad {n}: {m}")
        checked += 1
    assert checked > 0, "no gradient was compared"

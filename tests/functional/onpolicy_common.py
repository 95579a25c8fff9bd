"""Helpers shared by the on-policy functional tests (the registry's ``"on_policy"`` specs):
valid batches and a bad-input check."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torch.distributions import Categorical

from tests.builders import make_data, make_nets
from torchrl_functional.errors import LossInputError


def clipped_ratio_spec():
    """The registry's on-policy loss clipping the importance ratio (its ``clip_epsilon``)."""
    from tests.specs import tagged

    (spec,) = [s for s in tagged("on_policy", "importance_ratio") if any(h.name == "clip_epsilon" for h in s.hypers)]
    return spec


def fd(fn, x, eps=1e-6):
    """Central finite difference of the scalar function ``fn`` at ``x``."""
    return (fn(x + eps) - fn(x - eps)) / (2 * eps)


def logits_batch(B=6, N=4, seed=0, dtype=torch.float32, requires_grad=True):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, N, generator=g, dtype=dtype).requires_grad_(requires_grad)
    action = torch.randint(N, (B,), generator=g)
    with torch.no_grad():
        behaviour = Categorical(logits=logits + 0.3 * torch.randn(B, N, generator=g, dtype=dtype))
    return TensorDict(
        {
            "actor_output": {"logits": logits},
            "old_actor_output": {"logits": behaviour.logits},
            "action": action,
            "action_log_prob": behaviour.log_prob(action),
            "advantage": torch.randn(B, 1, generator=g, dtype=dtype),
            "value_target": torch.randn(B, 1, generator=g, dtype=dtype),
            "state_value": torch.randn(B, 1, generator=g, dtype=dtype).requires_grad_(requires_grad),
        },
        [B],
    )


def trajectory_batch(B=2, T=8, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    done = torch.rand(B, T, 1, generator=g) < 0.2
    return TensorDict(
        {
            "log_prob": torch.randn(B, T, generator=g, dtype=dtype).requires_grad_(),
            "action_log_prob": torch.randn(B, T, generator=g, dtype=dtype),
            "entropy": torch.rand(B, T, generator=g, dtype=dtype),
            "state_value": torch.randn(B, T, 1, generator=g, dtype=dtype).requires_grad_(),
            "next": {
                "state_value": torch.randn(B, T, 1, generator=g, dtype=dtype),
                "reward": torch.randn(B, T, 1, generator=g, dtype=dtype),
                "done": done,
                "terminated": done & (torch.rand(B, T, 1, generator=g) < 0.5),
            },
        },
        [B, T],
    )


def batch(B=6, N=3):
    """A ``[B]`` categorical on-policy batch with every entry any on-policy loss reads."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(B, N, generator=g, requires_grad=True)
    return TensorDict(
        {
            "actor_output": {"logits": logits},
            "old_actor_output": {"logits": logits.detach() + 0.1},
            "action": torch.randint(N, (B,), generator=g),
            "action_log_prob": torch.randn(B, generator=g),
            "advantage": torch.randn(B, 1, generator=g),
            "value_target": torch.randn(B, 1, generator=g),
            "state_value": torch.randn(B, 1, generator=g, requires_grad=True),
            "old_state_value": torch.randn(B, 1, generator=g),
            "next": {
                "reward": torch.randn(B, 1, generator=g),
                "done": torch.zeros(B, 1, dtype=torch.bool),
                "terminated": torch.zeros(B, 1, dtype=torch.bool),
                "state_value": torch.randn(B, 1, generator=g),
            },
        },
        [B],
    )


def check(fn, td, exc, entry, match=None, **kwargs):
    """``fn(td, Categorical, **kwargs)`` raises ``exc`` naming the loss and ``entry`` (and
    ``match``), and leaves ``td`` untouched."""
    name = fn.__name__
    snapshot = td.clone()
    with pytest.raises(exc) as info:
        fn(td, Categorical, **kwargs)
    err = info.value
    assert isinstance(err, LossInputError)
    assert err.loss == name
    assert err.entry == entry, (err.entry, entry)
    text = str(err)
    assert name in text and (entry is None or str(entry if isinstance(entry, str) else entry[-1]) in text)
    if match:
        assert match in text, text
    assert (td == snapshot).all()


def given_batch(seed=0, B=8):
    """A categorical batch of TorchRL networks' outputs, given advantage, old critic values."""
    nets = make_nets("categorical", seed=seed)
    data = make_data("categorical", (B,), seed=seed, nets=nets)
    data["actor_output"] = nets.actor.get_dist_params(data.select("observation")).select("logits")
    data["old_state_value"] = data["state_value"] + 0.3 * torch.randn(B, 1, generator=torch.Generator().manual_seed(1))
    return nets, data

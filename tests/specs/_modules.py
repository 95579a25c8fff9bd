"""Drop-in module cases: TorchRL's class and ours built on networks with identical weights,
and the comparison every :class:`~tests.specs._spec.ModuleCase` goes through."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from typing import Any

import torch
from tensordict import TensorDict
from torchrl.objectives import ValueEstimators

from tests.builders import clone_nets, make_data, make_nets

from ._spec import ModuleCase


def losses_of(out: Any) -> TensorDict:
    """The TensorDict of losses a module returns (the model-based modules return
    ``(losses, data)``, as TorchRL's)."""
    return out[0] if isinstance(out, tuple) else out


def loss_sum(out: Any) -> torch.Tensor:
    """Sum of every ``loss*`` output (all elements when ``reduction="none"``)."""
    return sum(v.sum() for k, v in losses_of(out).items() if isinstance(k, str) and k.startswith("loss"))


def _quiet(fn: Callable[[], Any]) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn()


# ----------------------------------------------------------------------------- on-policy


def make_on_policy_estimator(loss: Any, estimator: Any) -> None:
    if estimator is None:
        return
    hyper = {"gamma": 0.9}
    if estimator in (ValueEstimators.TDLambda, ValueEstimators.GAE):
        hyper["lmbda"] = 0.8
    loss.make_value_estimator(estimator, **hyper)


def on_policy_case(
    case_id: str,
    torchrl_cls: type,
    our_cls: type,
    *,
    dist: str = "categorical",
    kwargs: dict | None = None,
    batch: tuple[int, ...] = (12,),
    advantage: bool = True,
    estimator: Any = None,
    mask: bool = False,
    keys: dict | None = None,
    shared: bool = False,
    no_critic: bool = False,
    functional_call: bool = False,
) -> ModuleCase:
    """An on-policy module case (actor + critic from :func:`tests.builders.make_nets`)."""
    kwargs = kwargs or {}
    keys = keys or {}

    def build():
        nets = make_nets(dist, seed=3, value_key=keys.get("value", "state_value"), shared=shared)
        pair = []
        for cls in (torchrl_cls, our_cls):
            n = clone_nets(nets)
            loss = _quiet(lambda cls=cls, n=n: cls(n.actor, None if no_critic else n.critic, **kwargs))
            if keys:
                loss.set_keys(**keys)
            make_on_policy_estimator(loss, estimator)
            pair.append(loss)
        return tuple(pair)

    def data(seed: int) -> TensorDict:
        nets = make_nets(dist, seed=3, value_key=keys.get("value", "state_value"), shared=shared)
        td = make_data(dist, batch, seed=seed, with_advantage=advantage, with_mask=mask, keys=keys, nets=nets)
        if not advantage and functional_call:
            # the value estimator runs the critic on both states: nothing cached in the data
            del td[keys.get("value", "state_value")], td["next", keys.get("value", "state_value")]
        return td

    def rebatch(new_batch: tuple[int, ...]) -> ModuleCase:
        return on_policy_case(
            case_id, torchrl_cls, our_cls, dist=dist, kwargs=kwargs, batch=new_batch, advantage=advantage,
            estimator=estimator, mask=mask, keys=keys, shared=shared, no_critic=no_critic,
            functional_call=functional_call,
        )

    return ModuleCase(f"{dist}-{case_id}", build, data, functional_call=functional_call, rebatch=rebatch)


# ----------------------------------------------------------------------------- comparison


def run_pair(case: ModuleCase, seed: int = 11):
    """Both modules on the same data under the same RNG seed; returns
    ``(ref, mine, data, d_ref, d_mine, out_ref, out_mine)``."""
    ref, mine = case.build()
    data = case.data(4)
    d_ref, d_mine = data.clone(), data.clone()
    torch.manual_seed(seed)
    out_ref = ref(d_ref)
    torch.manual_seed(seed)
    out_mine = mine(d_mine)
    return ref, mine, data, d_ref, d_mine, out_ref, out_mine


def assert_outputs_close(case: ModuleCase, out_mine: Any, out_ref: Any) -> None:
    assert type(out_mine) is type(out_ref)
    if isinstance(out_ref, tuple):  # (losses, data): every element compared
        assert len(out_mine) == len(out_ref)
        for a, b in zip(out_mine, out_ref):
            assert_outputs_close(case, a, b)
        return
    keys_ref = set(out_ref.keys(True, True))
    assert set(out_mine.keys(True, True)) == keys_ref, (sorted(map(str, out_mine.keys(True, True))), sorted(map(str, keys_ref)))
    assert out_mine.batch_size == out_ref.batch_size
    for key in keys_ref:
        if key in case.skip:
            continue
        a, b = out_mine.get(key), out_ref.get(key)
        if not isinstance(b, torch.Tensor):
            a, b = torch.as_tensor(a), torch.as_tensor(b)
        if key in case.sum_only:
            a, b = a.sum(), b.sum()
        assert a.shape == b.shape, (key, a.shape, b.shape)
        torch.testing.assert_close(a, b, atol=case.atol, rtol=1e-5, msg=lambda m, k=key: f"{k}: {m}")


def assert_grads_close(case: ModuleCase, mine: Any, ref: Any) -> None:
    named_ref = dict(ref.named_parameters())
    named_mine = dict(mine.named_parameters())
    assert named_ref.keys() == named_mine.keys()
    checked = 0
    for name, p in named_ref.items():
        q = named_mine[name]
        if case.skip_grads is not None and case.skip_grads in name:
            continue
        if p.grad is None:
            assert q.grad is None or not q.grad.any(), name
            continue
        assert q.grad is not None, name
        torch.testing.assert_close(q.grad, p.grad, atol=case.atol, rtol=1e-5, msg=lambda m, n=name: f"grad {n}: {m}")
        checked += 1
    assert checked > 0, "no gradient was compared"


def perturbed_parameters(loss: Any, seed: int = 0, scale: float = 0.3) -> dict[str, torch.Tensor]:
    """New values for every parameter of ``loss`` (TorchRL's names), requiring grad."""
    g = torch.Generator().manual_seed(seed)
    return {
        name: (p.detach() + scale * torch.randn(p.shape, generator=g)).requires_grad_(True)
        for name, p in loss.named_parameters()
    }


def loaded_copy(loss: Any, new: dict[str, torch.Tensor]) -> Any:
    """A deep copy of ``loss`` with ``new`` loaded into its parameters (the reference)."""
    loaded = copy.deepcopy(loss)
    with torch.no_grad():
        for name, p in loaded.named_parameters():
            p.copy_(new[name])
    return loaded


# ----------------------------------------------------------------------------- off-policy


def off_policy_case(
    case_id: str,
    torchrl_cls: type,
    our_cls: type,
    nets: Callable[[], tuple],
    *,
    kwargs: dict | None = None,
    discrete: str | None = None,
    batch: tuple[int, ...] = (12,),
    mask: bool = False,
    weights: bool = False,
    keys: dict | None = None,
    estimator: Any = None,
    functional_call: bool = False,
    **compare: Any,
) -> ModuleCase:
    """An off-policy module case: TorchRL's class and ours on the same networks, TorchRL's
    parameters copied into ours, target parameters perturbed identically."""
    from tests.modules import offpolicy_parity_common as P

    def build():
        return P.build(torchrl_cls, our_cls, nets(), kwargs or {}, keys, estimator)

    def data(seed: int) -> TensorDict:
        return P.make_data(batch, discrete=discrete, seed=seed, mask=mask, weights=weights, keys=keys)

    def rebatch(new_batch: tuple[int, ...]) -> ModuleCase:
        return off_policy_case(
            case_id, torchrl_cls, our_cls, nets, kwargs=kwargs, discrete=discrete, batch=new_batch, mask=mask,
            weights=weights, keys=keys, estimator=estimator, functional_call=functional_call, **compare,
        )

    prefix = f"{discrete}-" if discrete else ""
    return ModuleCase(prefix + case_id, build, data, functional_call=functional_call, rebatch=rebatch, **compare)

"""The no-fallback harness of the off-policy drop-in modules: TorchRL's ``forward``, every loss
helper of the replaced classes (``actor_loss``, ``qvalue_v2_loss``, ``_compute_target_v2``, ...),
its value estimators' math and the critic distance of its loss modules patched to raise. The
classes are the registry's off-policy drop-ins (``tests.modules.by_spec``); each family's test
file runs its module's configurations under :func:`forbid_torchrl_math` with :func:`run_ours`."""

from __future__ import annotations

import contextlib
import inspect
import warnings

import torch
from torchrl.objectives.common import LossModule
from torchrl.objectives.value import advantages

from tests.modules import offpolicy_parity_common as common
from tests.modules.by_spec import off_policy_specs

#: TorchRL methods the drop-in classes may use: construction and configuration, no numbers
ALLOWED = {"__init__", "_forward_value_estimator_keys", "_set_in_keys", "make_value_estimator", "_make_vmap",
           "_compute_composite_spec_numel", "state_dict", "load_state_dict",
           # properties: keys and the configured target entropy
           "in_keys", "out_keys", "target_entropy", "target_entropy_buffer", "device"}


class Reached(AssertionError):
    pass


def _raiser(name, prop=False):
    def fail(*args, **kwargs):
        raise Reached(f"reached TorchRL's {name}")
    return property(fail) if prop else fail


def _forbidden():
    """``(owner, attribute name, qualified name)`` of everything a module must not call."""
    out = []
    seen = set()
    for spec in off_policy_specs():
        for klass in spec.torchrl.__mro__:
            if klass is LossModule or not issubclass(klass, LossModule) or klass in seen:
                continue
            seen.add(klass)
            for name, attr in vars(klass).items():
                if name in ALLOWED or not (inspect.isfunction(attr) or isinstance(attr, (staticmethod, property))):
                    continue
                out.append((klass, name, f"{klass.__name__}.{name}"))
    for est in (advantages.TD0Estimator, advantages.TD1Estimator, advantages.TDLambdaEstimator):
        for name in ("value_estimate", "forward"):
            out.append((est, name, f"{est.__name__}.{name}"))
    for module in {inspect.getmodule(spec.torchrl) for spec in off_policy_specs()}:
        if hasattr(module, "distance_loss"):
            out.append((module, "distance_loss", f"{module.__name__}.distance_loss"))
    return out


FORBIDDEN = _forbidden()
FORBIDDEN_NAMES = {q for _, _, q in FORBIDDEN}


@contextlib.contextmanager
def forbid_torchrl_math():
    saved = [(owner, name, owner.__dict__[name]) for owner, name, _ in FORBIDDEN]
    try:
        for owner, name, qualified in FORBIDDEN:
            setattr(owner, name, _raiser(qualified, isinstance(owner.__dict__[name], property)))
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)


def run_ours(our_cls, nets, kwargs, opts, discrete=None):
    """``our_cls(*nets, **kwargs)`` forward and backward on the data of ``opts`` under
    :func:`forbid_torchrl_math`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loss = our_cls(*nets, **kwargs)
    if opts.get("keys"):
        loss.set_keys(**opts["keys"])
    if opts.get("estimator") is not None:
        estimator, extra = opts["estimator"] if isinstance(opts["estimator"], tuple) else (opts["estimator"], {})
        loss.make_value_estimator(estimator, gamma=0.9, **extra)
    data = common.data_for(opts, discrete)
    torch.manual_seed(0)
    with forbid_torchrl_math():
        out = loss(data)
        common.loss_sum(out).backward()
    assert any(p.grad is not None for p in loss.parameters())


def keys_of(opts):
    return opts.get("keys") or {}

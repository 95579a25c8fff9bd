"""The private attributes of torch, tensordict and TorchRL that the package relies on, each
pinned here so that a version change fails loudly in one place instead of silently changing
numbers. Public API is used everywhere else."""

from __future__ import annotations

import inspect
import sys

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictParams
from torch import distributions as D
from torchrl.objectives import LossModule


def test_tensordict_params_keeps_its_tree_in_param_td():
    # modules/_binding.py swaps a loss module's parameters by assigning TensorDictParams._param_td
    params = TensorDictParams(TensorDict({"w": torch.nn.Parameter(torch.ones(2))}, []))
    assert isinstance(params._param_td, TensorDictBase)
    assert params._param_td["w"] is params["w"]
    swapped = params._param_td.copy()
    swapped["w"] = torch.zeros(2)
    params._param_td = swapped
    assert torch.equal(params["w"], torch.zeros(2))


def test_torch_kl_dispatch_and_registry():
    # functional/distributions.py: the analytic-KL lookup (also while torch.compile traces) and
    # the categorical pairs it computes itself
    assert callable(D.kl._dispatch_kl)
    assert isinstance(D.kl._KL_REGISTRY, dict)
    assert (D.Normal, D.Normal) in D.kl._KL_REGISTRY
    assert D.kl._dispatch_kl(D.Categorical, D.Categorical) is D.kl._kl_categorical_categorical
    assert D.kl._dispatch_kl(D.OneHotCategorical, D.OneHotCategorical) is D.kl._kl_onehotcategorical_onehotcategorical
    p = D.OneHotCategorical(logits=torch.zeros(3))
    assert isinstance(p._categorical, D.Categorical)


def test_nn_module_registries():
    # modules/_binding.py re-points parameters and buffers by name
    m = torch.nn.Linear(2, 2)
    m.register_buffer("b", torch.zeros(1))
    assert set(m._parameters) == {"weight", "bias"} and set(m._buffers) == {"b"} and m._modules == {}


def test_torchrl_loss_module_private_hooks():
    # modules/_onpolicy.py, modules/_offpolicy.py: the masks TorchRL's LossModule applies
    assert inspect.isfunction(LossModule._loss_mask_keys)
    # modules/llm/_inputs.py (run_log_probs): the device TorchRL's losses fall back to, for
    # every drop-in of the registry that runs its policy through it
    from tests.specs import SPECS

    runs = [s for s in SPECS if s.module is not None
            and "run_log_probs(" in inspect.getsource(sys.modules[s.module.__module__])]
    assert runs
    for spec in runs:
        assert "_device_fallback" in inspect.getsource(spec.torchrl.__init__), spec.torchrl.__name__

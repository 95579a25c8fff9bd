"""``torch.func.functional_call`` on the on-policy drop-in modules with TorchRL's parameter
names: swapped parameters equal loading them (the value estimator's critic included: no stale
cache), shared trunks, buffers, ``tie_weights``; TorchRL 0.14.1's classes reject
``functional_call`` and, under ``to_module`` swapping, mix the old critic (``V(s)``) with the
new one (``V(s')``) in their internal GAE. (Every registered loss's ``functional_call`` parity
runs in ``tests/registry/test_meta.py``.)"""

from __future__ import annotations

import copy

import pytest
import torch
from tensordict import TensorDict
from torchrl.objectives import ValueEstimators
from torchrl.objectives.value.functional import generalized_advantage_estimate as torchrl_loop_gae

from tests.builders import clone_nets, make_data, make_nets
from tests.modules.by_spec import adapts_in_forward, on_policy_specs, pairs, with_option


def _outputs(out: TensorDict) -> dict[str, torch.Tensor]:
    return {k: v for k, v in out.items()}

# --------------------------------------------------------------------------- functional_call

PAIRS = pairs(on_policy_specs())
MODULES = {name: ours for name, (_, ours) in PAIRS.items()}
#: the classes that hold a hyperparameter as a buffer (``clip_epsilon``)
CLIPPED = [s.module.__name__ for s in with_option(on_policy_specs(), "clip_epsilon")]
#: actor-critic classes (``loss_objective``, ``loss_critic``)
ACTOR_CRITIC = [s.module.__name__ for s in with_option(on_policy_specs(), "critic_coeff")]
#: ... whose forward updates no state (``torch.func.grad`` refuses the KL-penalty's in-place update)
STATELESS = [name for name in ACTOR_CRITIC if not adapts_in_forward(PAIRS[name][0])]


def _module_setup(cls, dist: str, seed: int = 0):
    """A loss module whose value estimator runs the critic (GAE inside ``forward``), a batch
    without advantage or values, and perturbed parameters to swap in."""
    nets = make_nets(dist, seed=seed)
    loss = cls(nets.actor, nets.critic)
    loss.make_value_estimator(ValueEstimators.GAE, gamma=0.9, lmbda=0.8)
    data = make_data(dist, (2, 6), seed=seed, with_advantage=False, nets=nets)
    del data["state_value"], data["next", "state_value"]
    g = torch.Generator().manual_seed(seed + 1)
    new = {
        name: (p.detach() + 0.3 * torch.randn(p.shape, generator=g)).requires_grad_(True)
        for name, p in loss.named_parameters()
    }
    return loss, data, new


def _total(out: TensorDict) -> torch.Tensor:
    return sum(v.sum() for k, v in out.items() if k.startswith("loss_"))


def _loaded(loss, new: dict):
    """A copy of ``loss`` with ``new`` loaded into its parameters (the reference)."""
    loaded = copy.deepcopy(loss)
    with torch.no_grad():
        for name, p in loaded.named_parameters():
            p.copy_(new[name])
    return loaded


@pytest.mark.parametrize("dist", ["categorical", "normal"])
@pytest.mark.parametrize("name", list(MODULES))
def test_functional_call_equals_loading_the_parameters(name: str, dist: str):
    loss, data, new = _module_setup(MODULES[name], dist)
    loaded = _loaded(loss, new)
    original = _outputs(copy.deepcopy(loss)(data.clone()))
    td_before = {k: loss._modules[k]._param_td for k in ("actor_network_params", "critic_network_params")}
    params_before = dict(loss.named_parameters())

    got = torch.func.functional_call(loss, new, (data.clone(),))
    want = loaded(data.clone())
    for key, value in want.items():
        torch.testing.assert_close(got[key], value, rtol=1e-5, atol=1e-6, msg=lambda m, key=key: f"{key}: {m}")
    # the swap really took effect (it used to be silently lost in TensorDictParams)
    assert any(not torch.allclose(got[k], original[k]) for k in original if k.startswith("loss_"))

    _total(got).backward()
    _total(want).backward()
    for pname, p in loaded.named_parameters():
        assert new[pname].grad is not None, pname
        torch.testing.assert_close(new[pname].grad, p.grad, rtol=1e-5, atol=1e-6,
                                   msg=lambda m, pname=pname: f"grad {pname}: {m}")
    # the module is left exactly as it was
    for key, td in td_before.items():
        assert loss._modules[key]._param_td is td
    assert all(p is params_before[n] for n, p in loss.named_parameters())
    assert all(p.grad is None for p in loss.parameters())


@pytest.mark.parametrize("name", ACTOR_CRITIC)
def test_functional_call_with_a_shared_trunk(name: str):
    """Actor and critic share a layer (one tensor under two TorchRL names, tied): swapping it
    through either name swaps it for both networks, as loading it would."""
    nets = make_nets("categorical", seed=4, shared=True)
    loss = MODULES[name](nets.actor, nets.critic)
    loss.make_value_estimator(ValueEstimators.GAE, gamma=0.9, lmbda=0.8)
    data = make_data("categorical", (2, 6), seed=4, with_advantage=False, nets=nets)
    del data["state_value"], data["next", "state_value"]
    g = torch.Generator().manual_seed(0)
    new = {n: p.detach() + 0.3 * torch.randn(p.shape, generator=g) for n, p in loss.named_parameters()}
    assert not any(n.startswith("critic_network_params.module.0.") for n in new)  # deduplicated
    got = torch.func.functional_call(loss, new, (data.clone(),))
    # the reference is built afresh (a deepcopy would untie the shared layer)
    fresh = make_nets("categorical", seed=4, shared=True)
    loaded = MODULES[name](fresh.actor, fresh.critic)
    loaded.make_value_estimator(ValueEstimators.GAE, gamma=0.9, lmbda=0.8)
    with torch.no_grad():
        for n, p in loaded.named_parameters():
            p.copy_(new[n])
    want = loaded(data.clone())
    for key, value in want.items():
        torch.testing.assert_close(got[key], value, msg=lambda m, key=key: f"{key}: {m}")
    assert not torch.allclose(got["loss_critic"], loss(data.clone())["loss_critic"])


@pytest.mark.parametrize("name", STATELESS)
def test_func_grad_through_functional_call_on_module(name: str):
    """``torch.func.grad`` of ``functional_call(loss, params, ...)`` w.r.t. the parameters
    equals the gradient of the module with those parameters loaded."""
    loss, data, new = _module_setup(MODULES[name], "categorical", seed=3)
    detached = {k: v.detach() for k, v in new.items()}
    grads = torch.func.grad(lambda p: _total(torch.func.functional_call(loss, p, (data.clone(),))))(detached)
    loaded = _loaded(loss, new)
    _total(loaded(data.clone())).backward()
    for pname, p in loaded.named_parameters():
        torch.testing.assert_close(grads[pname], p.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", CLIPPED)
def test_functional_call_swaps_buffer_hyperparameters(name: str):
    """Hyperparameters stored as buffers (``clip_epsilon``) swap too, with gradients."""
    loss, data, _ = _module_setup(MODULES[name], "categorical", seed=1)
    loss = loss.double()
    data = data.apply(lambda x: x.double() if x.is_floating_point() else x)

    def objective(eps):
        return torch.func.functional_call(loss, {"clip_epsilon": eps}, (data.clone(),))["loss_objective"]

    eps = torch.tensor(0.15, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(objective(eps), eps)
    h = 1e-6
    fd = (objective(torch.tensor(0.15 + h, dtype=torch.float64))
          - objective(torch.tensor(0.15 - h, dtype=torch.float64))) / (2 * h)
    assert abs(fd) > 1e-3
    torch.testing.assert_close(grad, fd.detach(), rtol=1e-6, atol=1e-9)
    assert loss.clip_epsilon.item() == pytest.approx(0.2)  # restored


def _alias(name: str) -> str:
    params, _, rest = name.partition(".")
    return f"_fc_{params}.{rest.replace('.', '__')}"


@pytest.mark.parametrize("names", ["torchrl", "alias"])
@pytest.mark.parametrize("tie_weights", [True, False])
@pytest.mark.parametrize("name", STATELESS)
def test_functional_call_names_work_with_and_without_tie_weights(name: str, names: str, tie_weights: bool):
    """TorchRL's dotted names (and the dot-free aliases) are honoured whatever ``tie_weights``:
    the result equals loading the parameters, gradients reach the swapped tensors, and the
    module is left as it was."""
    loss, data, new = _module_setup(MODULES[name], "normal", seed=2)
    before = {k: loss._modules[k]._param_td for k in ("actor_network_params", "critic_network_params")}
    renamed = {(_alias(n) if names == "alias" else n): v for n, v in new.items()}
    got = torch.func.functional_call(loss, renamed, (data.clone(),), tie_weights=tie_weights)
    want = _loaded(loss, new)(data.clone())
    torch.testing.assert_close(got["loss_objective"], want["loss_objective"])
    torch.testing.assert_close(got["loss_critic"], want["loss_critic"])
    assert not torch.allclose(got["loss_critic"], loss(data.clone())["loss_critic"])
    _total(got).backward()
    assert all(v.grad is not None for n, v in new.items() if "actor" in n or "critic" in n)
    for key, td in before.items():
        assert loss._modules[key]._param_td is td


# --------------------------------------------------------------------------- TorchRL 0.14.1 pins


@pytest.mark.parametrize("name", list(PAIRS))
def test_torchrl_loss_module_rejects_functional_call(name: str):
    nets = make_nets("categorical")
    loss = PAIRS[name][0](nets.actor, nets.critic)
    data = make_data("categorical", (8,), nets=nets)
    params = dict(loss.named_parameters())
    with pytest.raises(TypeError, match="remove_duplicate"):
        torch.func.functional_call(loss, params, (data,))


def _values(critic, obs: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return critic(TensorDict({"observation": obs}, obs.shape[:-1]))["state_value"]


@pytest.mark.parametrize("impl, swap", [("torchrl", "to_module"), ("ours", "to_module"), ("ours", "functional_call")])
@pytest.mark.parametrize("name", STATELESS)
def test_internal_gae_under_swapped_critic(name: str, impl: str, swap: str):
    """Swap in new critic weights after a first ``forward``. TorchRL's internal GAE then takes
    ``V(s)`` from its cached detached *old* critic and ``V(s')`` from the *new* one (pinned
    here); ours uses the new critic for both. The reference losses are TorchRL's own class
    given the advantage computed by TorchRL's loop GAE from directly evaluated critics."""
    torchrl_cls, our_cls = PAIRS[name]
    cls = torchrl_cls if impl == "torchrl" else our_cls
    nets = make_nets("categorical", seed=5)
    loss = cls(clone_nets(nets).actor, clone_nets(nets).critic)
    loss.make_value_estimator(ValueEstimators.GAE, gamma=0.9, lmbda=0.8)
    data = make_data("categorical", (2, 6), seed=5, with_advantage=False, nets=nets)
    del data["state_value"], data["next", "state_value"]
    loss(data.clone())  # a first call: TorchRL caches the detached critic parameters here

    g = torch.Generator().manual_seed(0)
    new_critic = copy.deepcopy(nets.critic)
    with torch.no_grad():
        for p in new_critic.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=g))
    new_params = TensorDict.from_module(loss).clone()
    new_params["critic_network_params"] = TensorDict.from_module(new_critic).clone()
    if swap == "to_module":
        with new_params.to_module(loss):
            out = loss(data.clone())
    else:
        flat = {k if isinstance(k, str) else ".".join(k): v for k, v in new_params.items(True, True)}
        out = torch.func.functional_call(loss, flat, (data.clone(),))

    obs, next_obs = data["observation"], data["next", "observation"]
    v_old, v_new = _values(nets.critic, obs), _values(new_critic, obs)
    next_v_new = _values(new_critic, next_obs)
    reward, done, term = data["next", "reward"], data["next", "done"], data["next", "terminated"]

    def objective_given(state_value):
        adv, target = torchrl_loop_gae(0.9, 0.8, state_value, next_v_new, reward, done, term)
        ref = torchrl_cls(clone_nets(nets).actor, new_critic)
        given = data.clone()
        given["advantage"], given["value_target"] = adv, target
        return ref(given)["loss_objective"]

    consistent, mixed = objective_given(v_new), objective_given(v_old)
    assert not torch.allclose(consistent, mixed, atol=1e-3)
    if impl == "torchrl":
        torch.testing.assert_close(out["loss_objective"], mixed)  # TorchRL 0.14.1's stale mix
    else:
        torch.testing.assert_close(out["loss_objective"], consistent)


def test_categorical_kl_is_torchs_and_vmaps():
    """The KL of the KL-penalty loss for categorical policies equals torch's (zero-probability
    cases included) and, unlike torch's, batches under ``vmap``."""
    from torch import distributions as D

    from torchrl_functional.functional import kl_divergence

    g = torch.Generator().manual_seed(0)
    p_logits = torch.randn(4, 5, 3, generator=g, dtype=torch.float64)
    q_logits = torch.randn(4, 5, 3, generator=g, dtype=torch.float64)
    p_logits[0, 0, 1] = -float("inf")  # p has a zero: that term is 0
    q_logits[1, 0, 2] = -float("inf")  # q has a zero where p has mass: inf
    for cls in (D.Categorical, D.OneHotCategorical):
        p, q = cls(logits=p_logits), cls(logits=q_logits)
        torch.testing.assert_close(kl_divergence(p, q), D.kl.kl_divergence(p, q))
    finite_q = torch.randn(4, 5, 3, generator=g, dtype=torch.float64)
    batched = torch.vmap(lambda a, b: kl_divergence(D.Categorical(logits=a), D.Categorical(logits=b)))(
        p_logits, finite_q
    )
    torch.testing.assert_close(batched, D.kl.kl_divergence(D.Categorical(logits=p_logits), D.Categorical(logits=finite_q)))
    with pytest.raises(RuntimeError, match="vmap"):
        torch.vmap(lambda a, b: D.kl.kl_divergence(D.Categorical(logits=a), D.Categorical(logits=b)))(p_logits, finite_q)


@pytest.mark.parametrize("name", STATELESS)
def test_functional_call_aliases_live_outside_the_module(name: str):
    """The aliases are not attributes of the loss module (TorchRL walks its ``__dict__``, e.g. in
    ``reset_parameters_recursive``): after a call through them, the module deep-copies and resets."""
    loss, data, new = _module_setup(MODULES[name], "normal", seed=2)
    renamed = {_alias(n): v for n, v in new.items()}
    torch.func.functional_call(loss, renamed, (data.clone(),), tie_weights=False)
    assert not any(k.startswith("_fc_") for k in loss.__dict__)
    copied = copy.deepcopy(loss)
    copied.reset_parameters_recursive()
    got = torch.func.functional_call(copied, renamed, (data.clone(),), tie_weights=False)
    torch.testing.assert_close(got["loss_critic"], _loaded(loss, new)(data.clone())["loss_critic"])

"""torch.func and torch.compile guarantees, checked on every row of ``tests/meta/cases.py``:

- ``torch.func.grad`` w.r.t. a tensor hyperparameter equals central finite differences;
- ``vmap`` over a leading task dimension equals a Python loop over tasks (values and
  per-task hyper-gradients);
- ``torch.compile(fullgraph=True)`` captures the whole loss (no graph break), matches
  eager in values and gradients, and does not recompile when the values change;
- ``functional_call`` on the drop-in module wrappers with swapped parameters equals loading
  those parameters (the value estimator's critic included: no stale cache), while TorchRL
  0.14.1's classes reject ``functional_call`` and, under ``to_module`` swapping, mix the old
  critic (``V(s)``) with the new one (``V(s')``) in their internal GAE.
"""

from __future__ import annotations

import copy
import os

import pytest
import torch
from tensordict import TensorDict
from torchrl.objectives import ClipPPOLoss as TorchRLClipPPOLoss
from torchrl.objectives import ValueEstimators
from torchrl.objectives.value.functional import generalized_advantage_estimate as torchrl_loop_gae

from tests.builders import clone_nets, make_data, make_nets
from tests.meta.cases import CASES, LossCase
from torchrl_functional import modules as ours

CASE_HYPER = [pytest.param(c, h, id=f"{c.id}-{h}") for c in CASES for h in c.hypers]
BY_ID = [pytest.param(c, id=c.id) for c in CASES]
COMPILED = [pytest.param(c, id=c.id) for c in CASES if c.compile]
# the backend the table is compiled with; "inductor" (the default backend) is slower to
# compile and is exercised on one loss below. Set the variable to run every row with it.
BACKEND = os.environ.get("TORCHRL_FUNCTIONAL_COMPILE_BACKEND", "aot_eager")


def _hypers(case: LossCase, dtype=torch.float64, scale: float = 1.0, requires_grad=False) -> dict:
    return {
        k: torch.tensor(v * scale, dtype=dtype, requires_grad=requires_grad)
        for k, v in case.hypers.items()
    }


def _outputs(out: TensorDict) -> dict[str, torch.Tensor]:
    return {k: v for k, v in out.items()}


# --------------------------------------------------------------------------- torch.func.grad


@pytest.mark.parametrize("case, hyper", CASE_HYPER)
def test_func_grad_wrt_hyperparameter_matches_finite_differences(case: LossCase, hyper: str):
    td = case.make_td(0, torch.float64)
    hypers = _hypers(case)

    def objective(x):
        return case.objective(td, **{**hypers, hyper: x})

    grad = torch.func.grad(objective)(hypers[hyper])
    eps = 1e-6
    x = hypers[hyper].item()
    fd = (objective(torch.tensor(x + eps, dtype=torch.float64))
          - objective(torch.tensor(x - eps, dtype=torch.float64))) / (2 * eps)
    assert abs(fd.item()) > 1e-4, "degenerate case: the hyperparameter does not change the loss"
    torch.testing.assert_close(grad, fd, rtol=1e-6, atol=1e-9)
    # per-sample hyperparameter entries ([*B, 1] in the input) give the same total gradient
    if hyper in ("gamma", "lmbda", "entropy_coeff", "critic_coeff", "clip_epsilon", "beta") and td.batch_dims:
        per_step = torch.full((*td.batch_size, 1), x, dtype=torch.float64)

        def objective_entry(h):
            td2 = td.clone(False)
            td2.set(hyper, h)
            return case.objective(td2, **{k: v for k, v in hypers.items() if k != hyper})

        grad_entry = torch.func.grad(objective_entry)(per_step)
        torch.testing.assert_close(grad_entry.sum(), fd, rtol=1e-6, atol=1e-9)


# --------------------------------------------------------------------------- vmap


N_TASKS = 3


@pytest.mark.parametrize("case", BY_ID)
def test_vmap_over_tasks_equals_loop(case: LossCase):
    tasks = [case.make_td(10 + i, torch.float64) for i in range(N_TASKS)]
    stacked = torch.stack(tasks)  # [N_TASKS, *BATCH]
    hypers = {k: torch.tensor([v * (1 - 0.1 * i) for i in range(N_TASKS)], dtype=torch.float64)
              for k, v in case.hypers.items()}

    def run(td, h):
        return _outputs(case.loss(td, **case.kwargs, **h))

    batched = torch.vmap(run)(stacked, hypers)
    for i in range(N_TASKS):
        ref = run(tasks[i], {k: v[i] for k, v in hypers.items()})
        assert set(batched) == set(ref)
        for key, value in ref.items():
            torch.testing.assert_close(batched[key][i], value, rtol=1e-10, atol=1e-12,
                                       msg=lambda m, key=key, i=i: f"task {i}, {key}: {m}")

    # per-task hyper-gradients: vmap(grad) over tasks equals a loop of grads
    def objective(h, td):
        return case.objective(td, **h)

    grads = torch.vmap(torch.func.grad(objective))(hypers, stacked)
    for i in range(N_TASKS):
        ref = torch.func.grad(objective)({k: v[i] for k, v in hypers.items()}, tasks[i])
        for key in hypers:
            torch.testing.assert_close(grads[key][i], ref[key], rtol=1e-10, atol=1e-12)
    assert any(g.abs().sum() > 0 for g in grads.values())


@pytest.mark.parametrize("case", BY_ID)
def test_vmap_with_shared_hyperparameters(case: LossCase):
    """Tasks batched, hyperparameters shared (``in_dims=None``): the gradient w.r.t. the
    shared hyperparameter of the summed objective equals the sum over a loop."""
    tasks = [case.make_td(20 + i, torch.float64) for i in range(N_TASKS)]
    stacked = torch.stack(tasks)
    hypers = _hypers(case)

    def total(h):
        return torch.vmap(lambda td: case.objective(td, **h))(stacked).sum()

    grad = torch.func.grad(total)(hypers)
    loop = torch.func.grad(lambda h: sum(case.objective(td, **h) for td in tasks))(hypers)
    for key in hypers:
        torch.testing.assert_close(grad[key], loop[key], rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- torch.compile


def _compile_and_compare(case: LossCase, backend: str) -> None:
    torch._dynamo.reset()
    # as in a fresh process: TorchRL fills this cache on first use (a fill while tracing
    # would make the second call recompile)
    from torchrl.modules.distributions import utils as torchrl_dist_utils

    torchrl_dist_utils._ANALYTIC_KL_CACHE.clear()

    def run(td, h):
        return _outputs(case.loss(td, **case.kwargs, **h))

    compiled = torch.compile(run, fullgraph=True, backend=backend)  # a graph break raises

    def inputs(seed: int, scale: float):
        td = case.make_td(seed, torch.float32)
        leaves = {}
        for key in case.grad_inputs:
            leaves[key] = td.get(key).clone().requires_grad_(True)
            td.set(key, leaves[key])
        hypers = _hypers(case, torch.float32, scale, requires_grad=True)
        return td, hypers, [*hypers.values(), *leaves.values()]

    def outputs_and_grads(fn, td, hypers, wrt):
        out = fn(td, hypers)
        grads = torch.autograd.grad(case.total(out), wrt, allow_unused=True)
        return out, grads

    first = inputs(0, 1.0)
    second = inputs(1, 0.9)
    got = [outputs_and_grads(compiled, *first)]
    # new data and new hyperparameter values reuse the compiled graph (compiled calls only
    # in between: eager TensorDict code may fill tensordict's memo caches, which dynamo guards)
    with torch.compiler.set_stance("fail_on_recompile"):
        got.append(outputs_and_grads(compiled, *second))
    for (out, grads), args in zip(got, (first, second)):
        want, want_grads = outputs_and_grads(run, *args)
        assert set(out) == set(want)
        for key, value in want.items():
            torch.testing.assert_close(out[key], value, rtol=1e-5, atol=1e-6,
                                       msg=lambda m, key=key: f"{key}: {m}")
        for g, w in zip(grads, want_grads):
            if w is None:
                assert g is None or g.abs().max() == 0
            else:
                torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", COMPILED)
def test_compile_fullgraph_matches_eager(case: LossCase):
    _compile_and_compare(case, BACKEND)


@pytest.mark.slow
def test_compile_fullgraph_inductor_matches_eager():
    case = next(c for c in CASES if c.id == "clip_ppo_loss-gae")
    _compile_and_compare(case, "inductor")


def test_every_loss_in_the_table_is_compiled_once():
    """Each functional loss of the table has exactly one row marked for compilation."""
    losses = {c.loss for c in CASES}
    compiled = [c.loss for c in CASES if c.compile]
    assert sorted(map(id, compiled)) == sorted(map(id, losses))


# --------------------------------------------------------------------------- functional_call

MODULES = {
    "PPOLoss": ours.PPOLoss,
    "ClipPPOLoss": ours.ClipPPOLoss,
    "KLPENPPOLoss": ours.KLPENPPOLoss,
    "A2CLoss": ours.A2CLoss,
    "ReinforceLoss": ours.ReinforceLoss,
}


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


def test_functional_call_with_a_shared_trunk():
    """Actor and critic share a layer (one tensor under two TorchRL names, tied): swapping it
    through either name swaps it for both networks, as loading it would."""
    nets = make_nets("categorical", seed=4, shared=True)
    loss = ours.A2CLoss(nets.actor, nets.critic)
    loss.make_value_estimator(ValueEstimators.GAE, gamma=0.9, lmbda=0.8)
    data = make_data("categorical", (2, 6), seed=4, with_advantage=False, nets=nets)
    del data["state_value"], data["next", "state_value"]
    g = torch.Generator().manual_seed(0)
    new = {n: p.detach() + 0.3 * torch.randn(p.shape, generator=g) for n, p in loss.named_parameters()}
    assert not any(n.startswith("critic_network_params.module.0.") for n in new)  # deduplicated
    got = torch.func.functional_call(loss, new, (data.clone(),))
    # the reference is built afresh (a deepcopy would untie the shared layer)
    fresh = make_nets("categorical", seed=4, shared=True)
    loaded = ours.A2CLoss(fresh.actor, fresh.critic)
    loaded.make_value_estimator(ValueEstimators.GAE, gamma=0.9, lmbda=0.8)
    with torch.no_grad():
        for n, p in loaded.named_parameters():
            p.copy_(new[n])
    want = loaded(data.clone())
    for key, value in want.items():
        torch.testing.assert_close(got[key], value, msg=lambda m, key=key: f"{key}: {m}")
    assert not torch.allclose(got["loss_critic"], loss(data.clone())["loss_critic"])


@pytest.mark.parametrize("name", ["ClipPPOLoss", "A2CLoss"])
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


def test_functional_call_swaps_buffer_hyperparameters():
    """Hyperparameters stored as buffers (``clip_epsilon``) swap too, with gradients."""
    loss, data, _ = _module_setup(ours.ClipPPOLoss, "categorical", seed=1)
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
def test_functional_call_names_work_with_and_without_tie_weights(names: str, tie_weights: bool):
    """TorchRL's dotted names (and the dot-free aliases) are honoured whatever ``tie_weights``:
    the result equals loading the parameters, gradients reach the swapped tensors, and the
    module is left as it was."""
    loss, data, new = _module_setup(ours.ClipPPOLoss, "normal", seed=2)
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


def test_torchrl_loss_module_rejects_functional_call():
    nets = make_nets("categorical")
    loss = TorchRLClipPPOLoss(nets.actor, nets.critic)
    data = make_data("categorical", (8,), nets=nets)
    params = dict(loss.named_parameters())
    with pytest.raises(TypeError, match="remove_duplicate"):
        torch.func.functional_call(loss, params, (data,))


def _values(critic, obs: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return critic(TensorDict({"observation": obs}, obs.shape[:-1]))["state_value"]


@pytest.mark.parametrize("impl, swap", [("torchrl", "to_module"), ("ours", "to_module"), ("ours", "functional_call")])
def test_internal_gae_under_swapped_critic(impl: str, swap: str):
    """Swap in new critic weights after a first ``forward``. TorchRL's internal GAE then takes
    ``V(s)`` from its cached detached *old* critic and ``V(s')`` from the *new* one (pinned
    here); ours uses the new critic for both. The reference losses are TorchRL's own class
    given the advantage computed by TorchRL's loop GAE from directly evaluated critics."""
    cls = TorchRLClipPPOLoss if impl == "torchrl" else ours.ClipPPOLoss
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
        ref = TorchRLClipPPOLoss(clone_nets(nets).actor, new_critic)
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


def test_functional_call_aliases_live_outside_the_module():
    """The aliases are not attributes of the loss module (TorchRL walks its ``__dict__``, e.g. in
    ``reset_parameters_recursive``): after a call through them, the module deep-copies and resets."""
    loss, data, new = _module_setup(ours.ClipPPOLoss, "normal", seed=2)
    renamed = {_alias(n): v for n, v in new.items()}
    torch.func.functional_call(loss, renamed, (data.clone(),), tie_weights=False)
    assert not any(k.startswith("_fc_") for k in loss.__dict__)
    copied = copy.deepcopy(loss)
    copied.reset_parameters_recursive()
    got = torch.func.functional_call(copied, renamed, (data.clone(),), tie_weights=False)
    torch.testing.assert_close(got["loss_critic"], _loaded(loss, new)(data.clone())["loss_critic"])

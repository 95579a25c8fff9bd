"""``torch.func`` and ``torch.compile`` guarantees, checked on every spec of the registry:

- ``torch.func.grad`` w.r.t. each tensor hyperparameter equals central finite differences
  (float64), and a per-sample hyperparameter entry gives the same total gradient;
- ``vmap`` over a leading task dimension equals a Python loop over tasks (values and
  per-task hyper-gradients), with per-task and with shared hyperparameters;
- ``torch.compile(fullgraph=True)`` captures the whole loss (no graph break), matches
  eager in values and gradients, and does not recompile when the values change;
- ``functional_call`` on the drop-in module with swapped parameters (TorchRL's names)
  equals loading those parameters, values and gradients, and leaves the module as it was.
"""

from __future__ import annotations

import copy
import os

import pytest
import torch
from tensordict import TensorDict

from tests.specs import SPECS
from tests.specs._modules import loaded_copy, loss_sum, losses_of, perturbed_parameters

BACKEND = os.environ.get("TORCHRL_FUNCTIONAL_COMPILE_BACKEND", "aot_eager")
N_TASKS = 3


def _layouts_for(spec, hyper):
    return [lay for lay in spec.layouts if hyper.layouts is None or lay.id in hyper.layouts]


GRAD_CASES = [
    pytest.param(s, h, lay, id=f"{s.name}-{lay.id}-{h.name}")
    for s in SPECS for h in s.hypers if h.tensor for lay in _layouts_for(s, h)[:2]
]
VMAP_CASES = [pytest.param(s, lay, id=f"{s.name}-{lay.id}") for s in SPECS for lay in s.layouts if lay.vmap]
COMPILED = [pytest.param(s, next(lay for lay in s.layouts if lay.compile), id=s.name) for s in SPECS]
FUNCTIONAL_CALL = [
    pytest.param(s, c, id=f"{s.name}-{c.id}")
    for s in SPECS if s.module is not None for c in s.module_cases() if c.functional_call
]


def _tensor_hypers(spec, layout, dtype=torch.float64, scale: float = 1.0, requires_grad=False) -> dict:
    return {
        h.name: torch.tensor(h.value * scale, dtype=dtype, requires_grad=requires_grad)
        for h in spec.hypers if h.tensor and (h.layouts is None or layout.id in h.layouts)
    }


def _objective(spec, layout, td, hypers, keys=None):
    torch.manual_seed(0)
    return spec.total(spec.call(td, layout, **hypers), keys)


def _per_sample_shape(td, layout):
    reward = td.get(("next", "reward"), None)
    if reward is not None:
        return reward.shape
    return (*td.batch_size, 1)


# --------------------------------------------------------------------------- torch.func.grad


@pytest.mark.parametrize("spec, hyper, layout", GRAD_CASES)
def test_grad_wrt_hyperparameter_matches_finite_differences(spec, hyper, layout):
    td = layout.make_td(0, torch.float64)
    hypers = _tensor_hypers(spec, layout)
    hypers.setdefault(hyper.name, torch.tensor(hyper.value, dtype=torch.float64))

    def objective(x):
        return _objective(spec, layout, td, {**hypers, hyper.name: x}, hyper.objective)

    grad = torch.func.grad(objective)(hypers[hyper.name])
    eps = 1e-6
    x = hypers[hyper.name].item()
    fd = (objective(torch.tensor(x + eps, dtype=torch.float64))
          - objective(torch.tensor(x - eps, dtype=torch.float64))) / (2 * eps)
    assert abs(fd.item()) > 1e-4, "degenerate case: the hyperparameter does not change the loss"
    torch.testing.assert_close(grad, fd, rtol=1e-6, atol=1e-9)
    if hyper.entry:
        # a per-sample entry of the input ([*B, 1]) gives the same total gradient
        per_sample = torch.full(_per_sample_shape(td, layout), x, dtype=torch.float64)

        def objective_entry(h):
            td2 = td.clone(False)
            td2.set(hyper.name, h)
            return _objective(spec, layout, td2, {k: v for k, v in hypers.items() if k != hyper.name}, hyper.objective)

        grad_entry = torch.func.grad(objective_entry)(per_sample)
        torch.testing.assert_close(grad_entry.sum(), fd, rtol=1e-6, atol=1e-9)


# --------------------------------------------------------------------------- vmap


@pytest.mark.parametrize("spec, layout", VMAP_CASES)
def test_vmap_over_tasks_equals_loop(spec, layout):
    tasks = [layout.make_td(10 + i, torch.float64) for i in range(N_TASKS)]
    stacked = torch.stack(tasks)  # [N_TASKS, *B]
    base = _tensor_hypers(spec, layout)
    hypers = {k: torch.stack([v * (1 - 0.1 * i) for i in range(N_TASKS)]) for k, v in base.items()}

    def run(td, h):
        torch.manual_seed(0)
        return dict(spec.call(td, layout, **h).items())

    batched = torch.vmap(run, randomness="same")(stacked, hypers)
    for i in range(N_TASKS):
        ref = run(tasks[i], {k: v[i] for k, v in hypers.items()})
        assert set(batched) == set(ref)
        for key, value in ref.items():
            torch.testing.assert_close(batched[key][i], value, rtol=1e-10, atol=1e-12,
                                       msg=lambda m, key=key, i=i: f"task {i}, {key}: {m}")
    if not hypers:
        return

    def objective(h, td):
        return spec.total(spec.call(td, layout, **h))

    grads = torch.vmap(torch.func.grad(objective), randomness="same")(hypers, stacked)
    for i in range(N_TASKS):
        ref = torch.func.grad(objective)({k: v[i] for k, v in hypers.items()}, tasks[i])
        for key in hypers:
            torch.testing.assert_close(grads[key][i], ref[key], rtol=1e-10, atol=1e-12)
    assert any(g.abs().sum() > 0 for g in grads.values())

    # hyperparameters shared by the tasks (in_dims=None)
    def total(h):
        return torch.vmap(lambda td: objective(h, td), randomness="same")(stacked).sum()

    shared = torch.func.grad(total)(base)
    loop = torch.func.grad(lambda h: sum(objective(h, td) for td in tasks))(base)
    for key in base:
        torch.testing.assert_close(shared[key], loop[key], rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- torch.compile


def compile_and_compare(spec, layout, backend: str) -> None:
    torch._dynamo.reset()
    # as in a fresh process: TorchRL fills this cache on first use (a fill while tracing
    # would make the second call recompile)
    from torchrl.modules.distributions import utils as torchrl_dist_utils

    torchrl_dist_utils._ANALYTIC_KL_CACHE.clear()

    def run(td, h):
        return dict(spec.call(td, layout, **h).items())

    compiled = torch.compile(run, fullgraph=True, backend=backend)  # a graph break raises

    def inputs(seed: int, scale: float):
        td = layout.make_td(seed, torch.float32)
        leaves = {}
        for key in layout.grad_inputs:
            leaves[key] = td.get(key).clone().requires_grad_(True)
            td.set(key, leaves[key])
        hypers = _tensor_hypers(spec, layout, torch.float32, scale, requires_grad=True)
        return td, hypers, [*hypers.values(), *leaves.values()]

    def outputs_and_grads(fn, td, hypers, wrt):
        torch.manual_seed(0)
        out = fn(td, hypers)
        grads = torch.autograd.grad(spec.total(TensorDict(out, [])), wrt, allow_unused=True)
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
            torch.testing.assert_close(out[key], value, rtol=1e-5, atol=1e-6, msg=lambda m, key=key: f"{key}: {m}")
        for g, w in zip(grads, want_grads):
            if w is None:
                assert g is None or g.abs().max() == 0
            else:
                torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("spec, layout", COMPILED)
def test_compile_fullgraph_matches_eager(spec, layout):
    compile_and_compare(spec, layout, BACKEND)


@pytest.mark.slow
def test_compile_fullgraph_inductor_matches_eager():
    from tests.specs import tagged

    # the clipped PPO objective: the importance-ratio loss with a clip_epsilon
    (spec,) = [s for s in tagged("on_policy", "importance_ratio") if any(h.name == "clip_epsilon" for h in s.hypers)]
    compile_and_compare(spec, next(lay for lay in spec.layouts if lay.compile), "inductor")


# --------------------------------------------------------------------------- functional_call


@pytest.mark.parametrize("spec, case", FUNCTIONAL_CALL)
def test_functional_call_equals_loading_the_parameters(spec, case):
    _, loss = case.build()
    data = case.data(1)
    new = perturbed_parameters(loss)
    loaded = loaded_copy(loss, new)
    before = {n: p.detach().clone() for n, p in loss.named_parameters()}
    params_before = dict(loss.named_parameters())
    torch.manual_seed(0)
    original = losses_of(copy.deepcopy(loss)(data.clone()))  # a copy: forward may update state (KLPEN's beta)

    torch.manual_seed(0)
    got = losses_of(torch.func.functional_call(loss, new, (data.clone(),)))
    torch.manual_seed(0)
    want = losses_of(loaded(data.clone()))
    for key, value in want.items():
        # .get: outputs may be TensorClasses (the LLM losses' outputs), which refuse str indexing
        torch.testing.assert_close(got.get(key), value, rtol=1e-5, atol=1e-6, msg=lambda m, key=key: f"{key}: {m}")
    # the swap really took effect
    assert any(not torch.allclose(got.get(k), original.get(k)) for k in original.keys() if k.startswith("loss"))

    loss_sum(got).backward()
    loss_sum(want).backward()
    for name, p in loaded.named_parameters():
        if p.grad is None:
            assert new[name].grad is None or torch.count_nonzero(new[name].grad) == 0, name
        else:
            torch.testing.assert_close(new[name].grad, p.grad, rtol=1e-5, atol=1e-6,
                                       msg=lambda m, n=name: f"grad {n}: {m}")
    # the module computes with its own parameters again, and holds no gradient
    assert all(p is params_before[n] for n, p in loss.named_parameters())
    assert all(torch.equal(p, before[n]) for n, p in loss.named_parameters())
    assert all(p.grad is None for p in loss.parameters())

"""Meta-learning benchmarks: one MGRL meta-step, and per-task updates over 32 tasks.

1. **MGRL meta-step** (inner A2C update with GAE inside the loss, tensor ``gamma``/``lmbda``,
   differentiable SGD step, outer objective on fresh data, backward to ``gamma``/``lmbda``):

   - ``ours``: ``torch.func.functional_call`` on plain modules + ``a2c_loss``;
   - ``ours, compiled``: the whole meta-step (``grad`` of the outer objective through an inner
     ``grad``) as one ``torch.func`` function under ``torch.compile(fullgraph=True)``;
   - ``hand-written``: the same maths as plain tensor code (the floor any library pays);
   - ``torchrl-workaround``: TorchRL 0.14.1's ``A2CLoss``, fast weights swapped in with
     ``TensorDict.from_module(loss)`` / ``.to_module(loss)``, ``gamma``/``lmbda`` written into
     its GAE as per-step ``[B, T, 1]`` tensors (its vectorized kernel gives a wrong gradient
     for a 0-d ``gamma``; the per-step form is its fastest *correct* option);
   - ``torchrl-loop-gae``: same with ``GAE(vectorized=False)`` and 0-d ``gamma`` (correct, slow).
   - ``torchrl-naive``: 0-d ``gamma`` with the vectorized GAE (fast, **wrong** gradient;
     reported for its error only).

   Each variant's meta-gradient is compared with ours before timing.

2. **32 tasks**: every task's agent (own parameters) takes the gradient of its own A2C loss:
   ``vmap`` over tasks of ``torch.func.grad`` vs a Python loop over tasks (loop with
   ``torch.autograd.grad``, the faster of the two loop forms; ``torch.func.grad`` in a loop is
   also shown), and the ``vmap`` compiled with ``torch.compile(fullgraph=True)``.

Timings: medians over interleaved repeats (variants alternate within each repeat), after
warm-up, in one process, ``torch.set_num_threads`` set explicitly. Run::

    PYTHONPATH=. python benchmarks/bench_meta.py            # --repeats 30 --threads 1
    PYTHONPATH=. python benchmarks/bench_meta.py --smoke --no-compile   # a few repeats, for CI
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn
from torch.distributions import Categorical
from torch.func import functional_call, grad, stack_module_state, vmap
from torchrl.modules import ProbabilisticActor, ValueOperator
from torchrl.objectives import A2CLoss as TorchRLA2CLoss
from torchrl.objectives import ValueEstimators

from benchmarks.common import format_table
from torchrl_functional.functional import a2c_loss, generalized_advantage_estimate

OBS, ACT = 16, 4
GAMMA, LMBDA, INNER_LR = 0.9, 0.95, 0.1
#: (label, hidden width, environments, steps): overhead-bound to compute-bound
MGRL_SIZES = [("tabular", 0, 32, 32), ("small", 32, 8, 16), ("medium", 64, 32, 32), ("large", 256, 64, 64)]
#: (label, hidden width or 0 for a tabular agent, environments, steps) per task
TASK_SIZES = [("tabular (LPG example)", 0, 16, 16), ("MLP 32", 32, 8, 16), ("MLP 64", 64, 16, 32)]


def mlp(out: int, hidden: int) -> nn.Module:
    """Two hidden layers, or a linear (tabular on one-hot states) map for ``hidden=0``."""
    if not hidden:
        return nn.Sequential(nn.Linear(OBS, out, bias=False))
    return nn.Sequential(nn.Linear(OBS, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, out))


def make_batch(seed: int, actor: nn.Module, B: int, T: int) -> TensorDict:
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(B, T, OBS, generator=g)
    next_obs = torch.randn(B, T, OBS, generator=g)
    with torch.no_grad():
        dist = Categorical(logits=actor(obs))
        action = torch.multinomial(dist.probs.reshape(-1, ACT), 1, generator=g).view(B, T)
        log_prob = dist.log_prob(action)
    done = torch.rand(B, T, 1, generator=g) < 0.05
    return TensorDict(
        {
            "observation": obs,
            "action": action,
            "action_log_prob": log_prob,
            "advantage_ref": torch.randn(B, T, 1, generator=g),  # the meta-objective's advantage
            "next": {"observation": next_obs, "reward": torch.randn(B, T, 1, generator=g),
                     "done": done, "terminated": done.clone()},
        },
        batch_size=[B, T],
    )


# --------------------------------------------------------------------------- MGRL: ours


class Ours:
    name = "ours"

    def __init__(self, actor: nn.Module, critic: nn.Module) -> None:
        self.actor, self.critic = actor, critic
        self.params = {**{"actor." + k: v.detach().requires_grad_(True) for k, v in actor.named_parameters()},
                       **{"critic." + k: v.detach().requires_grad_(True) for k, v in critic.named_parameters()}}

    def _split(self, params):
        a = {k[6:]: v for k, v in params.items() if k.startswith("actor.")}
        c = {k[7:]: v for k, v in params.items() if k.startswith("critic.")}
        return a, c

    def inner_loss(self, params, gamma, lmbda, batch: TensorDict):
        """The inner A2C objective of ``params`` on ``batch``, GAE inside with ``gamma``/``lmbda``."""
        pa, pc = self._split(params)
        td = TensorDict(
            {
                "actor_output": {"logits": functional_call(self.actor, pa, (batch["observation"],))},
                "action": batch["action"],
                "state_value": functional_call(self.critic, pc, (batch["observation"],)),
                "next": {
                    "reward": batch["next", "reward"], "done": batch["next", "done"],
                    "terminated": batch["next", "terminated"],
                    "state_value": functional_call(self.critic, pc, (batch["next", "observation"],)),
                },
            },
            batch_size=batch.batch_size,
        )
        out = a2c_loss(td, Categorical, gamma=gamma, lmbda=lmbda, entropy_bonus=False)
        return out["loss_objective"] + out["loss_critic"]

    def meta_grad(self, batch: TensorDict, next_batch: TensorDict, gamma, lmbda):
        inner = self.inner_loss(self.params, gamma, lmbda, batch)
        grads = torch.autograd.grad(inner, list(self.params.values()), create_graph=True)
        fast = {k: p - INNER_LR * g for (k, p), g in zip(self.params.items(), grads)}
        fa, _ = self._split(fast)
        outer_td = TensorDict(
            {"actor_output": {"logits": functional_call(self.actor, fa, (next_batch["observation"],))},
             "action": next_batch["action"], "advantage": next_batch["advantage_ref"]},
            batch_size=next_batch.batch_size,
        )
        outer = a2c_loss(outer_td, Categorical, entropy_bonus=False, critic_coeff=None)["loss_objective"]
        return torch.autograd.grad(outer, [gamma, lmbda])


class OursCompiled(Ours):
    """The whole meta-step as one ``torch.func`` function -- ``grad`` (w.r.t. gamma, lmbda) of
    the outer objective of the fast weights made with an inner ``grad`` -- compiled with
    ``torch.compile(fullgraph=True)``. TorchRL's workaround (``to_module`` swapping, cached
    detached parameters) has no such form."""

    name = "ours, compiled"

    def __init__(self, actor: nn.Module, critic: nn.Module) -> None:
        super().__init__(actor, critic)
        self.flat = {k: v.detach() for k, v in self.params.items()}

        def inner(params, gamma, lmbda, batch):
            return self.inner_loss(params, gamma, lmbda, batch)

        def outer(gamma, lmbda, params, batch, next_batch):
            g = grad(inner)(params, gamma, lmbda, batch)
            fa, _ = self._split({k: p - INNER_LR * g[k] for k, p in params.items()})
            td = TensorDict(
                {"actor_output": {"logits": functional_call(self.actor, fa, (next_batch["observation"],))},
                 "action": next_batch["action"], "advantage": next_batch["advantage_ref"]},
                batch_size=next_batch.batch_size,
            )
            return a2c_loss(td, Categorical, entropy_bonus=False, critic_coeff=None)["loss_objective"]

        self.fn = torch.compile(grad(outer, argnums=(0, 1)), fullgraph=True)

    def meta_grad(self, batch, next_batch, gamma, lmbda):
        return self.fn(gamma.detach(), lmbda.detach(), self.flat, batch, next_batch)


class HandWritten(Ours):
    """The floor: the same maths as plain tensor code (CleanRL style), our GAE kernel."""

    name = "hand-written"

    def meta_grad(self, batch, next_batch, gamma, lmbda):
        pa, pc = self._split(self.params)
        obs = batch["observation"]
        value = functional_call(self.critic, pc, (obs,))
        next_value = functional_call(self.critic, pc, (batch["next", "observation"],))
        adv, target = generalized_advantage_estimate(
            gamma, lmbda, value.detach(), next_value.detach(), batch["next", "reward"],
            batch["next", "done"], batch["next", "terminated"])
        log_prob = functional_call(self.actor, pa, (obs,)).log_softmax(-1).gather(-1, batch["action"].unsqueeze(-1))
        inner = -(log_prob * adv).mean() + nn.functional.smooth_l1_loss(value, target)
        grads = torch.autograd.grad(inner, list(self.params.values()), create_graph=True)
        fast = {k: p - INNER_LR * g for (k, p), g in zip(self.params.items(), grads)}
        fa, _ = self._split(fast)
        logits = functional_call(self.actor, fa, (next_batch["observation"],))
        log_prob = logits.log_softmax(-1).gather(-1, next_batch["action"].unsqueeze(-1))
        outer = -(log_prob * next_batch["advantage_ref"]).mean()
        return torch.autograd.grad(outer, [gamma, lmbda])


# --------------------------------------------------------------------------- MGRL: TorchRL 0.14.1


class TorchRLWorkaround:
    """TorchRL's A2CLoss; fast weights swapped in with ``TensorDict.from_module/to_module``."""

    def __init__(self, actor: nn.Module, critic: nn.Module, mode: str) -> None:
        self.name = {"per_step": "torchrl-workaround", "loop": "torchrl-loop-gae", "naive": "torchrl-naive"}[mode]
        self.mode = mode
        policy = ProbabilisticActor(
            TensorDictModule(copy.deepcopy(actor), in_keys=["observation"], out_keys=["logits"]),
            in_keys=["logits"], distribution_class=Categorical, return_log_prob=True,
        )
        value = ValueOperator(copy.deepcopy(critic), in_keys=["observation"])
        self.loss = TorchRLA2CLoss(policy, value, entropy_bonus=False)
        # the meta-objective needs no critic: a second loss module on the same actor
        self.outer_loss = TorchRLA2CLoss(policy, value, entropy_bonus=False, critic_coeff=None)
        self.outer_params = TensorDict.from_module(self.outer_loss)
        self.loss.make_value_estimator(ValueEstimators.GAE, gamma=GAMMA, lmbda=LMBDA,
                                       vectorized=(mode != "loop"))
        self.params = TensorDict.from_module(self.loss)
        self.keys = [k for k, v in self.params.items(True, True) if isinstance(v, nn.Parameter)]

    def meta_grad(self, batch: TensorDict, next_batch: TensorDict, gamma, lmbda):
        estimator = self.loss.value_estimator
        if self.mode == "per_step":
            shape = (*batch.batch_size, 1)
            estimator.gamma, estimator.lmbda = gamma.expand(shape), lmbda.expand(shape)
        else:
            estimator.gamma, estimator.lmbda = gamma, lmbda
        inner_td = batch.exclude("advantage_ref")
        out = self.loss(inner_td)
        inner = out["loss_objective"] + out["loss_critic"]
        leaves = [self.params.get(k) for k in self.keys]
        grads = torch.autograd.grad(inner, leaves, create_graph=True)
        fast = self.outer_params.clone(False)
        for k, p, g in zip(self.keys, leaves, grads):
            if k[0] == "actor_network_params":
                fast.set(k, p - INNER_LR * g)
        outer_td = next_batch.select("observation", "action").set("advantage", next_batch["advantage_ref"])
        with fast.to_module(self.outer_loss):
            outer = self.outer_loss(outer_td)["loss_objective"]
        # the naive variant's lmbda never reaches the graph (TorchRL takes .item() of it)
        grads = torch.autograd.grad(outer, [gamma, lmbda], allow_unused=True)
        return tuple(torch.zeros_like(x) if g is None else g for g, x in zip(grads, (gamma, lmbda)))


def bench_mgrl(hidden: int, B: int, T: int, repeats: int, warmup: int, compile: bool = True) -> list[tuple]:
    torch.manual_seed(0)
    actor, critic = mlp(ACT, hidden), mlp(1, hidden)
    batch, next_batch = make_batch(1, actor, B, T), make_batch(2, actor, B, T)
    variants = [Ours(actor, critic), HandWritten(actor, critic)] + [
        TorchRLWorkaround(actor, critic, m) for m in ("per_step", "loop", "naive")
    ]
    if compile:
        torch._dynamo.reset()
        variants.insert(1, OursCompiled(actor, critic))

    def hyper():
        return torch.tensor(GAMMA, requires_grad=True), torch.tensor(LMBDA, requires_grad=True)

    ref = variants[0].meta_grad(batch, next_batch, *hyper())
    errors = {}
    for v in variants:
        got = v.meta_grad(batch, next_batch, *hyper())
        errors[v.name] = max(float((a - b).abs() / b.abs()) for a, b in zip(got, ref))
    times = {v.name: [] for v in variants}
    for r in range(warmup + repeats):
        for v in (variants if r % 2 == 0 else variants[::-1]):
            start = time.perf_counter()
            v.meta_grad(batch, next_batch, *hyper())
            if r >= warmup:
                times[v.name].append(time.perf_counter() - start)
    base = statistics.median(times["ours"])
    rows = []
    for v in variants:
        med = statistics.median(times[v.name])
        rows.append((v.name, med * 1e3, med / base, errors[v.name]))
    return rows


# --------------------------------------------------------------------------- 32 tasks


class TaskAgent(nn.Module):
    """A task's own agent: one-hidden-layer actor and critic, or tabular (``hidden=0``)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        if hidden:
            self.actor = nn.Sequential(nn.Linear(OBS, hidden), nn.Tanh(), nn.Linear(hidden, ACT))
            self.critic = nn.Sequential(nn.Linear(OBS, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        else:
            self.actor = nn.Linear(OBS, ACT, bias=False)
            self.critic = nn.Linear(OBS, 1, bias=False)

    def forward(self, obs):
        return self.actor(obs), self.critic(obs)


def task_loss(params, base, obs, action, advantage, value_target):
    logits, value = functional_call(base, params, (obs,))
    td = TensorDict({"actor_output": {"logits": logits}, "action": action, "advantage": advantage,
                     "value_target": value_target, "state_value": value}, batch_size=action.shape)
    out = a2c_loss(td, Categorical, entropy_bonus=False, loss_critic_type="l2")
    return out["loss_objective"] + out["loss_critic"]


def bench_tasks(n_tasks: int, hidden: int, n: int, t: int, repeats: int, warmup: int,
                compile: bool = True) -> list[tuple]:
    torch.manual_seed(0)
    agents = [TaskAgent(hidden) for _ in range(n_tasks)]
    params, _ = stack_module_state(agents)
    params = {k: v.detach() for k, v in params.items()}
    base = copy.deepcopy(agents[0]).to("meta")
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(n_tasks, n, t, OBS, generator=g)
    action = torch.randint(ACT, (n_tasks, n, t), generator=g)
    advantage = torch.randn(n_tasks, n, t, 1, generator=g)
    target = torch.randn(n_tasks, n, t, 1, generator=g)
    per_task = [{k: v[i] for k, v in params.items()} for i in range(n_tasks)]

    def vmapped():
        return vmap(grad(task_loss), in_dims=(0, None, 0, 0, 0, 0))(params, base, obs, action, advantage, target)

    def loop_func_grad():
        return [grad(task_loss)(per_task[i], base, obs[i], action[i], advantage[i], target[i]) for i in range(n_tasks)]

    def loop_autograd():
        out = []
        for i in range(n_tasks):
            p = {k: v.requires_grad_(True) for k, v in per_task[i].items()}
            loss = task_loss(p, base, obs[i], action[i], advantage[i], target[i])
            out.append(dict(zip(p, torch.autograd.grad(loss, list(p.values())))))
        return out

    fns = {"vmap(grad)": vmapped, "loop autograd.grad": loop_autograd, "loop func.grad": loop_func_grad}
    if compile:
        torch._dynamo.reset()
        compiled = torch.compile(
            lambda p, o, a, adv, tgt: vmap(grad(task_loss), in_dims=(0, None, 0, 0, 0, 0))(p, base, o, a, adv, tgt),
            fullgraph=True,
        )
        fns["compiled vmap(grad)"] = lambda: compiled(params, obs, action, advantage, target)
    v, lf, la = vmapped(), loop_func_grad(), loop_autograd()
    err = max(float((v[k][i] - la[i][k]).abs().max()) for i in range(n_tasks) for k in v)
    err = max(err, max(float((v[k][i] - lf[i][k]).abs().max()) for i in range(n_tasks) for k in v))
    if compile:
        c = fns["compiled vmap(grad)"]()
        err = max(err, max(float((v[k] - c[k]).abs().max()) for k in v))
    times = {k: [] for k in fns}
    names = list(fns)
    for r in range(warmup + repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            start = time.perf_counter()
            fns[name]()
            if r >= warmup:
                times[name].append(time.perf_counter() - start)
    base_t = statistics.median(times["vmap(grad)"])
    return [(name, statistics.median(ts) * 1e3, statistics.median(ts) / base_t, err) for name, ts in times.items()]


def side_by_side() -> None:
    """What goes wrong with TorchRL 0.14.1's classes in a meta-gradient loop (no timing)."""
    from torchrl.objectives import ClipPPOLoss as TorchRLClipPPOLoss
    from torchrl.objectives.value.functional import vec_generalized_advantage_estimate

    from torchrl_functional.modules import ClipPPOLoss

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    # (a) functional_call on a loss module
    actor = ProbabilisticActor(TensorDictModule(mlp(ACT, 32), in_keys=["observation"], out_keys=["logits"]),
                               in_keys=["logits"], distribution_class=Categorical, return_log_prob=True)
    critic = ValueOperator(mlp(1, 32), in_keys=["observation"])
    data = make_batch(3, actor[0].module, 4, 8).exclude("advantage_ref")
    for cls in (TorchRLClipPPOLoss, ClipPPOLoss):
        g = torch.Generator().manual_seed(1)  # the same new weights for both
        loss = cls(copy.deepcopy(actor), copy.deepcopy(critic))
        loss.make_value_estimator(ValueEstimators.GAE, gamma=GAMMA, lmbda=LMBDA)
        loss(data.clone())
        new = {k: v.detach() + 0.3 * torch.randn(v.shape, generator=g) for k, v in loss.named_parameters()}
        try:
            out = torch.func.functional_call(loss, new, (data.clone(),))
            loaded = copy.deepcopy(loss)
            with torch.no_grad():
                for k, p in loaded.named_parameters():
                    p.copy_(new[k])
            ref = loaded(data.clone())
            diff = max(float((out[k] - ref[k]).detach().abs().max()) for k in ref.keys())
            print(f"  functional_call({cls.__module__.split('.')[0]}.ClipPPOLoss): max |swapped - loaded| = {diff:.1e}")
        except TypeError as err:
            print(f"  functional_call({cls.__module__.split('.')[0]}.ClipPPOLoss): TypeError: {str(err)[:70]}")
        # (b) internal GAE after swapping in new critic weights with to_module
        new_td = TensorDict.from_module(loss).clone()
        crit = new_td["critic_network_params"]
        crit.apply_(lambda x, g=g: x + 0.3 * torch.randn(x.shape, generator=g))
        loss2 = copy.deepcopy(loss)
        new_td.to_module(loss2)  # the consistent reference: a module that simply holds the new weights
        with new_td.to_module(loss):
            swapped = loss(data.clone())["loss_critic"].item()
        loss2._erase_cache()
        held = loss2(data.clone())["loss_critic"].item()
        print(f"     internal GAE under to_module swap: loss_critic {swapped:.4f} vs {held:.4f} "
              "with the new weights held")
    # (c) gradient of GAE w.r.t. a 0-d gamma
    g = torch.Generator().manual_seed(2)
    value, next_value, reward = (torch.randn(3, 8, 1, generator=g, dtype=torch.float64) for _ in range(3))
    done = torch.zeros(3, 8, 1, dtype=torch.bool)
    w = torch.randn(3, 8, 1, generator=g, dtype=torch.float64)

    def f(kernel, gamma):
        adv, _ = kernel(gamma, torch.tensor(0.95, dtype=torch.float64), value, next_value, reward, done, done)
        return (adv * w).sum()

    x = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    fd = float(f(generalized_advantage_estimate, x.detach() + 1e-6) - f(generalized_advantage_estimate, x.detach() - 1e-6)) / 2e-6
    for name, kernel in (("ours", generalized_advantage_estimate), ("torchrl vec", vec_generalized_advantage_estimate)):
        (grad_x,) = torch.autograd.grad(f(kernel, x), x)
        print(f"  d GAE / d gamma (0-d), {name:<12}: {float(grad_x):+.6f} (finite difference {fd:+.6f})")


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description="meta-learning benchmarks")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tasks", type=int, default=32)
    parser.add_argument("--smoke", action="store_true", help="3 repeats, 1 warm-up, no compile")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variants (~10 s each to compile)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.repeats, args.warmup, args.no_compile = 3, 1, True
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, repeats {args.repeats} "
          f"(interleaved, medians), warm-up {args.warmup}")
    print("\n0. TorchRL 0.14.1 classes in a meta-gradient loop vs ours")
    side_by_side()
    rows: list[dict] = []
    print("\n1. one MGRL meta-step (actor and critic: two hidden layers, or tabular for hidden 0; "
          "batch = envs x steps)\n")
    mgrl = []
    for label, hidden, b, t in MGRL_SIZES:
        for name, ms, ratio, err in bench_mgrl(hidden, b, t, args.repeats, args.warmup, not args.no_compile):
            mgrl.append({"bench": "mgrl meta-step", "size": label, "batch": f"{b}x{t}", "variant": name,
                         "ms": ms, "x ours": ratio, "grad rel. err": err})
    print(format_table(list(mgrl[0]), [list(r.values()) for r in mgrl]))
    print(f"\n2. per-task gradients of {args.tasks} agents, each its own parameters (batch per task = envs x steps)\n")
    tasks = []
    for label, hidden, n, t in TASK_SIZES:
        for name, ms, ratio, err in bench_tasks(args.tasks, hidden, n, t, args.repeats, args.warmup,
                                                not args.no_compile):
            tasks.append({"bench": f"{args.tasks} tasks", "size": label, "batch": f"{n}x{t}", "variant": name,
                          "ms": ms, "x vmap": ratio, "max abs diff": err})
    print(format_table(list(tasks[0]), [list(r.values()) for r in tasks]))
    rows = mgrl + tasks
    return rows


if __name__ == "__main__":
    main()

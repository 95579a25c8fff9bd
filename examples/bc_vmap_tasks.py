"""Behaviour cloning on several tasks at once: one ``vmap`` call instead of a loop of loss modules.

Each task has its own expert (a random linear-tanh controller), its own demonstration dataset and
its own policy network. The policies' parameters are stacked along a leading task dimension; one
training step is ``torch.vmap`` over tasks of ``torch.func.grad`` of ``bc_loss`` applied to
``functional_call(policy, params_k, observations_k)``: every task's loss and gradient in a single
call. TorchRL's ``BCLoss`` holds one network's parameters, so the same update needs a Python loop
over ``K`` loss modules; the script runs that loop on the first step (TorchRL's class, one module
per task) and checks that the vmapped losses and gradients equal it.

Run (a few seconds on one core; writes ``runs/bc_vmap_tasks/losses.csv``)::

    PYTHONPATH=. python examples/bc_vmap_tasks.py
    PYTHONPATH=. python examples/bc_vmap_tasks.py --tasks 16 --steps 500
"""

from __future__ import annotations

import argparse

from _cli import add_output_flag, add_threads_flag, non_negative_int, positive_float, positive_int

LOSS_FUNCTIONS = ("l2", "l1", "smooth_l1")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bc_vmap_tasks.py",
        description="Behaviour cloning vmapped over several task datasets (bc_loss under torch.vmap), "
                    "checked equal to a loop of TorchRL's BCLoss, one module per task.")
    parser.add_argument("--tasks", type=positive_int, default=8, help="number of tasks K (default: %(default)s)")
    parser.add_argument("--samples", type=positive_int, default=256,
                        help="demonstrations per task (default: %(default)s)")
    parser.add_argument("--steps", type=positive_int, default=200, help="gradient steps (default: %(default)s)")
    parser.add_argument("--lr", type=positive_float, default=0.05,
                        help="Adam learning rate, shared by the tasks (default: %(default)s)")
    parser.add_argument("--loss-function", choices=LOSS_FUNCTIONS, default="l2",
                        help="BCLoss's regression loss (default: %(default)s)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default: %(default)s)")
    add_threads_flag(parser)
    add_output_flag(parser, "bc_vmap_tasks", "losses.csv")
    return parser.parse_args(argv)


if __name__ == "__main__":
    parse_args()  # --help and usage errors before the heavy imports below

import copy  # noqa: E402
import warnings  # noqa: E402

import torch  # noqa: E402
from tensordict import TensorDict  # noqa: E402
from tensordict.nn import TensorDictModule  # noqa: E402
from torch import nn  # noqa: E402
from torchrl.objectives import BCLoss  # noqa: E402

from torchrl_functional import bc_loss  # noqa: E402

OBS, ACT, HIDDEN = 6, 2, 32


def make_policy() -> nn.Module:
    return nn.Sequential(nn.Linear(OBS, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, ACT))


def make_datasets(tasks: int, samples: int, generator: torch.Generator) -> TensorDict:
    """``[K, N]`` demonstrations: observations and the actions of each task's expert."""
    experts = torch.randn(tasks, OBS, ACT, generator=generator)
    obs = torch.randn(tasks, samples, OBS, generator=generator)
    action = torch.tanh(obs @ experts)
    return TensorDict({"observation": obs, "action": action}, batch_size=[tasks, samples])


def vmapped_step_fn(policy: nn.Module, loss_function: str):
    """``(params [K, ...], data [K, N]) -> (losses [K], grads [K, ...])`` in one call."""

    def task_loss(params: dict, data: TensorDict) -> torch.Tensor:
        pred = torch.func.functional_call(policy, params, (data["observation"],))
        td = TensorDict({"action": data["action"], "action_pred": pred}, batch_size=data.batch_size)
        return bc_loss(td, loss_function=loss_function)["loss_bc"]

    return torch.vmap(torch.func.grad_and_value(task_loss))


def loop_reference(policies: list[nn.Module], data: TensorDict, loss_function: str):
    """TorchRL's BCLoss, one loss module per task: losses ``[K]`` and gradients per task."""
    losses, grads = [], []
    for k, net in enumerate(policies):
        actor = TensorDictModule(copy.deepcopy(net), in_keys=["observation"], out_keys=["action"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = BCLoss(actor, loss_function=loss_function)
        loss = module(data[k].clone())["loss_bc"]
        grads.append(dict(zip([n for n, _ in actor.module.named_parameters()],
                              torch.autograd.grad(loss, list(actor.module.parameters())))))
        losses.append(loss.detach())
    return torch.stack(losses), {n: torch.stack([g[n] for g in grads]) for n in grads[0]}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    data = make_datasets(args.tasks, args.samples, g)
    policies = [make_policy() for _ in range(args.tasks)]
    base = policies[0]
    params = {n: torch.stack([dict(p.named_parameters())[n].detach() for p in policies]).requires_grad_(True)
              for n, _ in base.named_parameters()}
    step = vmapped_step_fn(base, args.loss_function)

    # the vmapped call equals a loop of TorchRL's BCLoss, one module per task
    grads, losses = step({n: p.detach() for n, p in params.items()}, data)
    ref_losses, ref_grads = loop_reference(policies, data, args.loss_function)
    diff = max([(losses - ref_losses).abs().max().item()]
               + [(grads[n] - ref_grads[n]).abs().max().item() for n in grads])
    print(f"vmapped bc_loss over {args.tasks} tasks vs a loop of torchrl.objectives.BCLoss: "
          f"max |difference| in losses and gradients = {diff:.2e}")

    optim = torch.optim.Adam(params.values(), lr=args.lr)
    history = [losses.detach()]
    for _ in range(args.steps):
        grads, losses = step({n: p.detach() for n, p in params.items()}, data)
        for n, p in params.items():
            p.grad = grads[n]
        optim.step()
        history.append(losses.detach())
    first, last = history[0], step({n: p.detach() for n, p in params.items()}, data)[1]
    print(f"loss_bc per task: start {first.mean().item():.4f} (mean over tasks), "
          f"after {args.steps} steps {last.mean().item():.4f}; worst task {last.max().item():.4f}")

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "losses.csv"
    with open(path, "w") as f:
        f.write("step," + ",".join(f"task_{k}" for k in range(args.tasks)) + "\n")
        for i, row in enumerate(history):
            f.write(f"{i}," + ",".join(f"{v:.6g}" for v in row.tolist()) + "\n")
    print(f"wrote {path}")
    return {"max_difference": diff, "first": first, "last": last, "csv": path}


if __name__ == "__main__":
    main()

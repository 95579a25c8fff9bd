"""Forward+backward time of the drop-in SAC and TD3 modules against TorchRL 0.14.1's.

Networks 17-64-64 (actor, two critics), batch 256 and 4096, CPU. Every row is measured
in one process with the variants interleaved (round-robin, rotating the first variant),
and the median over repeats is reported with the ratio ours / TorchRL.

    python -m benchmarks.bench_offpolicy [--threads 1] [--repeats 15] [--smoke]
"""

from __future__ import annotations

import argparse
import copy
import warnings

import torch
from tensordict import TensorDict
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch import nn
from torchrl.data import Bounded
from torchrl.modules import MLP, ProbabilisticActor, TanhNormal, ValueOperator
from torchrl.objectives import SACLoss as TorchRLSAC
from torchrl.objectives import TD3Loss as TorchRLTD3

from benchmarks.common import format_table, interleaved_medians
from torchrl_functional.modules import SACLoss, TD3Loss

OBS, ACT, CELLS = 17, 6, [64, 64]


class _Q(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = MLP(in_features=OBS + ACT, out_features=1, num_cells=CELLS)

    def forward(self, o, a):
        return self.net(torch.cat([o, a], -1))


def nets(kind):
    spec = Bounded(-torch.ones(ACT), torch.ones(ACT), (ACT,))
    q = ValueOperator(_Q(), in_keys=["observation", "action"])
    if kind == "sac":
        module = TensorDictModule(nn.Sequential(MLP(in_features=OBS, out_features=2 * ACT, num_cells=CELLS),
                                                NormalParamExtractor()), in_keys=["observation"], out_keys=["loc", "scale"])
        actor = ProbabilisticActor(module, in_keys=["loc", "scale"], spec=spec, distribution_class=TanhNormal,
                                   return_log_prob=True)
        return (actor, q), {}
    actor = TensorDictModule(nn.Sequential(MLP(in_features=OBS, out_features=ACT, num_cells=CELLS), nn.Tanh()),
                             in_keys=["observation"], out_keys=["action"])
    return (actor, q), {"action_spec": spec}


def data(batch):
    return TensorDict({
        "observation": torch.randn(batch, OBS),
        "action": torch.rand(batch, ACT) * 2 - 1,
        "next": {"observation": torch.randn(batch, OBS), "reward": torch.randn(batch, 1),
                 "done": torch.zeros(batch, 1, dtype=torch.bool), "terminated": torch.zeros(batch, 1, dtype=torch.bool)},
    }, [batch])


def step(loss, td):
    def run():
        for p in loss.parameters():
            p.grad = None
        out = loss(td)
        sum(v for k, v in out.items() if k.startswith("loss_")).backward()
    return run


def run(batches: list[int], repeats: int, inner: int) -> list[dict]:
    rows = []
    for kind, (ref_cls, our_cls) in {"sac": (TorchRLSAC, SACLoss), "td3": (TorchRLTD3, TD3Loss)}.items():
        for batch in batches:
            torch.manual_seed(0)
            modules, kwargs = nets(kind)
            ref = ref_cls(*copy.deepcopy(modules), **kwargs)
            mine = our_cls(*copy.deepcopy(modules), **kwargs)
            mine.load_state_dict(ref.state_dict())
            td = data(batch)
            t = interleaved_medians({"torchrl": step(ref, td.clone()), "ours": step(mine, td.clone())},
                                    repeats=repeats, inner=inner)
            rows.append({"loss": kind, "batch": batch, "torchrl ms": t["torchrl"] * 1e3,
                         "ours ms": t["ours"] * 1e3, "ours/torchrl": t["ours"] / t["torchrl"]})
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description="SAC/TD3 forward+backward benchmark")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--inner", type=int, default=3)
    parser.add_argument("--batches", type=int, nargs="+", default=[256, 4096])
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    if args.smoke:
        args.batches, args.repeats, args.inner = [8], 2, 1
    rows = run(args.batches, args.repeats, args.inner)
    print(f"SAC / TD3 modules, forward+backward, ms per call (median of {args.repeats} interleaved repeats "
          f"x {args.inner} calls), {args.threads} thread(s)")
    print(format_table(list(rows[0]), [list(r.values()) for r in rows]))
    return rows


if __name__ == "__main__":
    main()

"""A row per loss of the registry: our drop-in module vs TorchRL's class, forward + backward.

Each row runs the first module case of the loss's spec (``tests/specs``) on data of a
realistic batch shape: the spec's ``bench_batch``
(``[16, 64]`` trajectories x time for on-policy losses, ``[256]`` replayed transitions for
off-policy ones). Both modules hold networks with identical weights
and run on the same data; the variants are interleaved and the medians compared
(``ours / TorchRL`` < 1 means ours is faster). A timed sample is the mean of at least 3
calls, and of about 5 ms of calls for the fast losses.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import torch

from benchmarks.common import format_table, interleaved_medians


def _step(loss, data, seed: int = 0):
    def run():
        torch.default_generator.manual_seed(seed)  # CPU only: torch.manual_seed also seeds CUDA lazily (~0.3 ms of stack formatting per call)
        out = loss(data.clone(False))
        out = out[0] if isinstance(out, tuple) else out  # model-based modules return (losses, data)
        total = sum(v.sum() for k, v in out.items() if k.startswith("loss"))
        total.backward()
        for p in loss.parameters():
            p.grad = None

    return run


def _inner(steps: dict, sample_seconds: float = 0.005) -> int:
    """Calls per timed sample: at least 3, and enough for a sample of about ``sample_seconds``
    (a loss of 0.4 ms per call gets 13), so that a fast row's median is not a handful of
    sub-millisecond timings; at most 50."""
    slowest = 0.0
    for step in steps.values():
        step()  # first call: one-time caches, allocations
        start = time.perf_counter()
        step()
        slowest = max(slowest, time.perf_counter() - start)
    return max(3, min(50, math.ceil(sample_seconds / max(slowest, 1e-6))))


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--only", nargs="*", default=None, help="loss names (e.g. sac_loss)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("RL_WARNINGS", "False")
    from tests.specs import SPECS

    rows = []
    for spec in SPECS:
        if spec.module is None or (args.only and spec.name not in args.only):
            continue
        case = spec.module_cases()[0]
        # smoke: the bench layout at small sizes (same rank: some TorchRL classes need a 1-d batch)
        batch = tuple(min(b, 4) for b in spec.bench_batch) if args.smoke else spec.bench_batch
        case = case.rebatch(batch) if case.rebatch is not None else case
        ref, mine = case.build()
        data = case.data(0)
        steps = {"torchrl": _step(ref, data), "ours": _step(mine, data)}
        times = interleaved_medians(
            steps, repeats=3 if args.smoke else args.repeats, inner=1 if args.smoke else _inner(steps),
            warmup=1 if args.smoke else 3,
        )
        rows.append({
            "loss": spec.module.__name__, "case": case.id, "batch": "x".join(map(str, batch)),
            "torchrl_ms": times["torchrl"] * 1e3, "ours_ms": times["ours"] * 1e3,
            "ratio": times["ours"] / times["torchrl"],
        })
    print(format_table(
        ["loss", "case", "batch", "TorchRL (ms)", "ours (ms)", "ours / TorchRL"],
        [[r["loss"], r["case"], r["batch"], r["torchrl_ms"], r["ours_ms"], r["ratio"]] for r in rows],
    ))
    return rows


if __name__ == "__main__":
    main()

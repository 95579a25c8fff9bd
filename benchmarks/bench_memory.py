"""Peak tensor memory of one Clip PPO forward+backward: TorchRL vs ours.

Counts every tensor storage allocated during the step (activations, what autograd
saves, gradients), with :class:`benchmarks.common.PeakTensorMemory`. Deterministic: no
repeats needed.

Usage: ``python -m benchmarks.bench_memory [--batch 4096] [--smoke]``.
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.bench_ppo import DISTS, Setup
from benchmarks.common import PeakTensorMemory, format_table

VARIANTS = ("networks", "handwritten", "torchrl", "module", "functional")


def run(batch: int, dists: tuple[str, ...]) -> list[dict]:
    rows = []
    for dist in dists:
        s = Setup(dist, batch)
        row: dict = {"dist": dist, "batch": batch}
        for name in VARIANTS:
            fn = getattr(s, name)
            fn()  # warm-up: lazily built state (value estimators, caches) is not a step's cost
            s.zero_grad()
            with PeakTensorMemory() as mem:
                fn()
            row[f"{name} MB"] = mem.peak / 2**20
        row["ours/torchrl (module)"] = row["module MB"] / row["torchrl MB"]
        row["ours/torchrl (functional)"] = row["functional MB"] / row["torchrl MB"]
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description="peak memory of one PPO step")
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--dists", nargs="+", default=list(DISTS), choices=DISTS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.smoke:
        args.batch = 16
    rows = run(args.batch, tuple(args.dists))
    headers = list(rows[0])
    print(f"Peak tensor memory of one Clip PPO forward+backward (MiB), batch {args.batch}")
    print(format_table(headers, [[r[h] for h in headers] for r in rows]))
    return rows


if __name__ == "__main__":
    main()

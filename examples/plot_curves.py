"""Overlay the learning curves of several ``ppo_cartpole.py`` runs (their CSV logs) in one PNG.

    python examples/plot_curves.py runs/ppo_cartpole/torchrl_seed0.csv \
        runs/ppo_cartpole/module_seed0.csv runs/ppo_cartpole/functional_seed0.csv -o curves.png

Labels default to the file names; pass ``--labels`` to change them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ppo_cartpole import plot_learning_curves, read_csv


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="plot_curves.py", description=__doc__.splitlines()[0])
    parser.add_argument("csv", nargs="+", type=Path, help="CSV logs written by ppo_cartpole.py")
    parser.add_argument("-o", "--output", type=Path, required=True, help="PNG file to write")
    parser.add_argument("--labels", nargs="+", help="one label per CSV (default: file names)")
    parser.add_argument("--title", default="PPO on CartPole-v1", help="figure title")
    args = parser.parse_args(argv)
    labels = args.labels or [p.stem for p in args.csv]
    if len(labels) != len(args.csv):
        parser.error(f"got {len(labels)} labels for {len(args.csv)} CSV files")
    missing = [str(p) for p in args.csv if not p.is_file()]
    if missing:
        parser.error(f"no such CSV file: {', '.join(missing)}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    plot_learning_curves({label: read_csv(p) for label, p in zip(labels, args.csv)}, args.output, args.title)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

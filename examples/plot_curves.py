"""Overlay the learning curves of several ``ppo_cartpole.py`` runs (their CSV logs) in one PNG.

    python examples/plot_curves.py runs/ppo_cartpole/torchrl_seed0.csv \
        runs/ppo_cartpole/module_seed0.csv runs/ppo_cartpole/functional_seed0.csv

Writes ``runs/ppo_cartpole/curves.png`` unless ``-o`` says otherwise. Labels default to the
file names; pass ``--labels`` to change them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="plot_curves.py", description=__doc__.splitlines()[0])
    parser.add_argument("csv", nargs="+", type=Path, help="CSV logs written by ppo_cartpole.py")
    parser.add_argument("-o", "--output", type=Path, default=Path("runs/ppo_cartpole/curves.png"),
                        help="PNG file to write (default: %(default)s)")
    parser.add_argument("--labels", nargs="+", help="one label per CSV (default: file names)")
    parser.add_argument("--title", default="PPO on CartPole-v1", help="figure title (default: %(default)s)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    labels = args.labels or [p.stem for p in args.csv]
    if len(labels) != len(args.csv):
        parser.error(f"got {len(labels)} labels for {len(args.csv)} CSV files")
    missing = [str(p) for p in args.csv if not p.is_file()]
    if missing:
        parser.error(f"no such CSV file: {', '.join(missing)}")
    from ppo_cartpole import plot_learning_curves, read_csv  # after parsing: --help needs no torch

    args.output.parent.mkdir(parents=True, exist_ok=True)
    plot_learning_curves({label: read_csv(p) for label, p in zip(labels, args.csv)}, args.output, args.title)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

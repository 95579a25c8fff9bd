"""Run the whole benchmark suite: ``python -m benchmarks [--smoke]`` (``make bench``).

Runs every ``benchmarks/bench_*.py`` module that defines ``main(argv) -> list[dict]``, at one
thread and at torch's default thread count, then writes ``benchmarks/results/latest.json``
and ``benchmarks/results/latest.md`` (the tables the README's "Performance" section shows).
``--smoke`` runs tiny sizes with few repeats and only checks that every row is finite (CI).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import math
import pkgutil
import sys
import time
from pathlib import Path

import torch

from benchmarks.common import machine_info, save_json

RESULTS = Path(__file__).resolve().parent / "results"
#: modules whose rows are measured at 1 thread and at the default thread count
THREADED = ("bench_ppo", "bench_value")


def discover() -> list[str]:
    names = [m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name.startswith("bench_")]
    order = ["bench_ppo", "bench_value", "bench_memory", "bench_offpolicy", "bench_meta"]
    return sorted(names, key=lambda n: (order.index(n) if n in order else len(order), n))


def _finite(rows: list[dict]) -> bool:
    return all(math.isfinite(v) for r in rows for v in r.values() if isinstance(v, float))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes; check every row is finite")
    parser.add_argument("--only", nargs="*", default=None, help="run only these bench_* modules")
    parser.add_argument("--out", type=Path, default=None, help="results directory (default benchmarks/results)")
    args = parser.parse_args(argv)
    default_threads = torch.get_num_threads()
    out_dir = args.out or RESULTS
    payload: dict = {"machine": machine_info(default_threads), "smoke": args.smoke, "benchmarks": {}}
    markdown = [
        f"Measured {payload['machine']['date']} on {payload['machine']['machine']} "
        f"({payload['machine']['cpus']} CPUs), torch {payload['machine']['torch']}, "
        f"torchrl {payload['machine']['torchrl']}, tensordict {payload['machine']['tensordict']}.",
        "",
    ]
    failures = []
    for name in discover():
        if args.only and name not in args.only:
            continue
        module = importlib.import_module(f"benchmarks.{name}")
        thread_counts = [1, default_threads] if name in THREADED and default_threads != 1 else [1]
        for threads in thread_counts:
            argv_b = ["--threads", str(threads)] + (["--smoke"] if args.smoke else [])
            start = time.perf_counter()
            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer):
                rows = module.main(argv_b)
            text = buffer.getvalue().strip()
            print(text, flush=True)
            print(f"[{name}, {threads} thread(s): {time.perf_counter() - start:.0f} s]", file=sys.stderr)
            payload["benchmarks"][f"{name}@{threads}"] = {"threads": threads, "rows": rows, "table": text}
            markdown += [f"### {name} ({threads} thread{'s' if threads > 1 else ''})", "", text, ""]
            if not rows or not _finite(rows):
                failures.append(f"{name}@{threads}")
    if not args.smoke:
        save_json(out_dir / "latest.json", payload)
        (out_dir / "latest.md").write_text("\n".join(markdown))
    if failures:
        print(f"non-finite or empty results: {failures}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

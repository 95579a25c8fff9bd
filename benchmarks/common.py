"""Timing helpers shared by the benchmark scripts: interleaved variants, medians, ratios.

Machines running these are shared and noisy, so every row is measured in one process,
the variants are interleaved (round-robin, rotating the starting variant each repeat)
and the median over repeats is reported. Thread count is set explicitly by the caller.
"""

from __future__ import annotations

import gc
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch


def interleaved_medians(
    variants: dict[str, Callable[[], object]],
    *,
    repeats: int = 15,
    inner: int = 5,
    warmup: int = 3,
) -> dict[str, float]:
    """Median seconds per call of each variant.

    Each repeat runs every variant ``inner`` times back to back (order rotated between
    repeats); the per-call time of a repeat is its mean over ``inner`` calls.
    """
    names = list(variants)
    for name in names:
        for _ in range(warmup):
            variants[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(repeats):
            order = names[r % len(names):] + names[: r % len(names)]
            for name in order:
                fn = variants[name]
                start = time.perf_counter()
                for _ in range(inner):
                    fn()
                samples[name].append((time.perf_counter() - start) / inner)
    finally:
        if gc_was_enabled:
            gc.enable()
    return {name: statistics.median(values) for name, values in samples.items()}


def machine_info(threads: int) -> dict:
    import tensordict
    import torchrl

    return {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": __import__("os").cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchrl": torchrl.__version__,
        "tensordict": tensordict.__version__,
        "threads": threads,
        "date": time.strftime("%Y-%m-%d"),
    }


def format_table(headers: list[str], rows: list[list[object]]) -> str:
    """A Markdown table."""
    def cell(x: object) -> str:
        if isinstance(x, float):
            return f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"
        return str(x)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


def save_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    tmp.replace(path)


class PeakTensorMemory:
    """Peak bytes of tensor storage allocated *inside* the context (inputs and parameters
    created before it are not counted), including what autograd saves for backward.

    Implemented with a ``TorchDispatchMode`` that sees every aten op's outputs and tracks
    each new storage until the last tensor referencing it is garbage collected. CPU and
    allocator independent, so the numbers are comparable between implementations.
    """

    def __init__(self) -> None:
        from torch.utils._python_dispatch import TorchDispatchMode

        tracker = self

        class _Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                for t in torch.utils._pytree.tree_leaves(out):
                    if isinstance(t, torch.Tensor):
                        tracker._track(t)
                return out

        self._mode = _Mode()
        self.current = 0
        self.peak = 0
        self._refs: dict[int, list] = {}

    def _track(self, t: torch.Tensor) -> None:
        import weakref

        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        entry = self._refs.get(ptr)
        if entry is None:
            if ptr in self._preexisting:
                return
            entry = self._refs[ptr] = [0, storage.nbytes()]
            self.current += entry[1]
            self.peak = max(self.peak, self.current)
        entry[0] += 1

        def release(ptr=ptr):
            e = self._refs.get(ptr)
            if e is None:
                return
            e[0] -= 1
            if e[0] == 0:
                self.current -= e[1]
                del self._refs[ptr]

        weakref.finalize(t, release)

    def __enter__(self) -> PeakTensorMemory:
        import warnings

        gc.collect()
        self._preexisting: set[int] = set()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for obj in gc.get_objects():
                if isinstance(obj, torch.Tensor):
                    try:
                        self._preexisting.add(obj.untyped_storage().data_ptr())
                    except (RuntimeError, NotImplementedError):
                        pass
        self._mode.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._mode.__exit__(*exc)

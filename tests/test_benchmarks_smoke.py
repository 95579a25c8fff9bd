"""The benchmark suite runs end to end in smoke mode and every row is finite (timings are
never asserted: the machines are shared and noisy)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_benchmark_suite_smoke(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "| dist |" in proc.stdout and "| kernel |" in proc.stdout
    assert not list(tmp_path.iterdir())  # smoke runs never overwrite results


def test_peak_tensor_memory_counts_what_it_should():
    import torch

    sys.path.insert(0, str(ROOT))
    from benchmarks.common import PeakTensorMemory

    x = torch.randn(256, 256)
    with PeakTensorMemory() as mem:
        y = x * 2
        z = y + 1
        del y
        w = z * 3
    assert mem.peak == 2 * 256 * 256 * 4
    del w, z


def test_registry_rows_time_enough_calls_per_sample():
    # a fast loss is timed over about 5 ms of calls per sample, a slow one over 3 calls
    import time

    sys.path.insert(0, str(ROOT))
    from benchmarks.bench_registry import _inner

    calls = []
    assert _inner({"a": lambda: calls.append(1), "b": lambda: None}) == 50  # capped
    assert len(calls) == 2  # a first call (caches), then the timed one
    assert _inner({"a": lambda: time.sleep(0.02), "b": lambda: None}) == 3  # the slowest variant decides
    assert 3 <= _inner({"a": lambda: time.sleep(0.0012)}) <= 5

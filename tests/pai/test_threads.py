"""PAI calls change nothing another thread sees: its working directory, its prints, its
warnings (filters and display), its debugger hooks."""

from __future__ import annotations

import os
import pdb
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest
import torch

from tests.pai.helpers import fixed, mlp, regression_step
from torchrl_functional.pai import NetworkSpec, PAIGroup

REPO = Path(__file__).resolve().parents[2]


def test_pai_calls_leave_other_threads_alone(out_dir, pai_sandbox, capsys):
    group = PAIGroup(
        "threads",
        {"actor": NetworkSpec(mlp([3, 4, 2], 0), lr=1e-2), "critic": NetworkSpec(mlp([3, 4, 1], 1), lr=1e-2)},
        directory=out_dir,
        settings=fixed(2),  # restructures every 2 scores
    )
    inside = threading.Event()
    real = group._tracker.add_validation_score

    def add_validation_score(*args, **kwargs):  # marks the time spent inside PAI
        inside.set()
        try:
            return real(*args, **kwargs)
        finally:
            inside.clear()

    group._tracker.add_validation_score = add_validation_score
    stop = threading.Event()
    seen = {"writes": 0, "overlap": 0, "cwd": set(), "filters_changed": 0}
    filters = list(warnings.filters)
    trace, hook = pdb.set_trace, sys.breakpointhook

    def other_thread():
        i = 0
        while not stop.is_set():
            during = inside.is_set()
            with open(f"other_{i}.txt", "w") as fh:  # a relative path
                fh.write("x")
            print(f"other thread line {i}")
            warnings.warn(f"other thread warning {i}", UserWarning, stacklevel=1)
            seen["cwd"].add(os.getcwd())
            seen["filters_changed"] += warnings.filters != filters
            seen["overlap"] += during and inside.is_set()
            i += 1
            time.sleep(0.001)
        seen["writes"] = i

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    thread = threading.Thread(target=other_thread)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            filters = list(warnings.filters)
            thread.start()
            x = torch.randn(6, 3)
            restructures = 0
            for score in range(8):
                regression_step(group, x)
                restructures += group.add_score(float(score)).restructured
            stop.set()
            thread.join()
    finally:
        stop.set()
        sys.setswitchinterval(old_interval)
    assert restructures == 4 and seen["overlap"] > 0  # the other thread ran during PAI calls
    files = sorted(os.listdir(pai_sandbox))
    for name in files:  # the sandbox must end empty
        os.remove(pai_sandbox / name)
    assert len(files) == seen["writes"]  # every relative write landed in the thread's directory
    assert not [p for p in out_dir.rglob("other_*")]
    assert seen["cwd"] == {str(pai_sandbox)} and seen["filters_changed"] == 0
    printed = capsys.readouterr().out
    assert printed.count("other thread line") == seen["writes"]  # every print reached stdout
    assert sum("other thread warning" in str(w.message) for w in caught) == seen["writes"]
    log = (out_dir / "threads" / "pai_output.log").read_text()
    assert "other thread" not in log
    assert pdb.set_trace is trace and sys.breakpointhook is hook


@pytest.mark.slow
def test_importing_perforatedai_keeps_the_chosen_matplotlib_backend(tmp_path):
    """perforatedai calls ``matplotlib.use("Agg")`` on import; a backend the process chose
    before is put back."""
    code = (
        "import matplotlib\n"
        "matplotlib.use('svg')\n"
        "from torchrl_functional.pai._runtime import import_pai\n"
        "import_pai()\n"
        "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-2000:]

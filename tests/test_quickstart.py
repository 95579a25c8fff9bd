"""The README's quick start runs and its drop-in comparison is exact."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_runs_and_matches_torchrl():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py"), "--steps", "3", "--batch", "64"],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert sum(line.startswith("step ") for line in lines) == 3
    diff = float(lines[-1].rsplit("=", 1)[1])
    assert diff < 1e-6


def test_quickstart_rejects_bad_arguments():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py"), "--steps", "0"],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, cwd=ROOT,
    )
    assert proc.returncode == 2
    assert "quickstart.py: error: argument --steps: must be a positive integer, got 0" in proc.stderr
    assert "Traceback" not in proc.stderr

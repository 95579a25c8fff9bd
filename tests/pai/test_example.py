"""The PPO + PAI example runs end to end in its short mode (fresh process, no stdin)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_ppo_pai_example_short_mode(out_dir, pai_sandbox):
    proc = subprocess.run(
        [sys.executable, str(REPO / "examples" / "ppo_pai.py"), "--short", "--out", str(out_dir)],
        cwd=pai_sandbox, env={**os.environ, "PYTHONPATH": str(REPO)}, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = re.search(r"(\d+) iterations in \d+ s, (\d+) restructure\(s\).*parameters (\d+) -> (\d+)", proc.stdout)
    assert summary, proc.stdout
    iterations, restructures, start, end = map(int, summary.groups())
    assert iterations == 6 and restructures >= 1 and end > start
    assert "PPO+PAI" in proc.stderr  # the tqdm bar
    png = out_dir / "ppo_pai.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size < 200_000
    checkpoint = torch.load(out_dir / "checkpoint.pt", weights_only=True)
    assert checkpoint["group"]["networks"] == ["actor", "critic"]
    assert (out_dir / "ppo_cartpole" / "best_model.pt").is_file()

"""The PAI examples run end to end in their short mode (fresh process, no stdin); their
command lines answer ``--help`` without importing torch and refuse bad values with a
usage error."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def run(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(EXAMPLES)]), "RL_WARNINGS": "False"}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_ppo_pai_example_short_mode(out_dir, pai_sandbox):
    proc = run([str(EXAMPLES / "ppo_pai.py"), "--short", "--out", str(out_dir)], pai_sandbox)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = re.search(r"(\d+) iterations in \d+ s, (\d+) restructure\(s\) \((\d+) adding dendrites\).*"
                        r"parameters (\d+) -> (\d+)", proc.stdout)
    assert summary, proc.stdout
    iterations, restructures, grown, start, end = map(int, summary.groups())
    assert iterations == 6 and restructures >= grown >= 1 and end > start
    assert "PPO+PAI" in proc.stderr  # the tqdm bar
    png = out_dir / "ppo_pai.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size < 200_000
    checkpoint = torch.load(out_dir / "checkpoint.pt", weights_only=True)
    assert checkpoint["group"]["networks"] == ["actor", "critic"]
    assert (out_dir / "ppo_cartpole" / "best_model.pt").is_file()


@pytest.mark.slow
def test_sac_pai_example_short_mode(out_dir, pai_sandbox):
    proc = run([str(EXAMPLES / "sac_pai.py"), "--short", "--out", str(out_dir), "--quiet"], pai_sandbox)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = re.search(r"(\d+) steps in \d+ s, (\d+) restructure\(s\) \((\d+) adding dendrites\), "
                        r"eval return (-?\d+) -> (-?\d+) \(best (-?\d+)\), parameters (\d+) -> (\d+)", proc.stdout)
    assert summary, proc.stdout
    steps, restructures, grown, first, final, best, start, end = map(int, summary.groups())
    assert steps == 600 and restructures >= grown >= 1 and end > start
    assert -2000 < first <= best and -2000 < final <= 0  # Pendulum's returns
    with (out_dir / "sac_pai.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["steps"]) for r in rows] == [200, 400, 600]
    assert sum(int(r["restructured"]) for r in rows) == restructures
    assert (out_dir / "sac_pai.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    checkpoint = torch.load(out_dir / "checkpoint.pt", weights_only=True)
    assert checkpoint["group"]["networks"] == ["actor", "q1", "q2"]
    assert sorted(checkpoint["targets"]) == ["q1", "q2"]
    q1 = {k[len("q1."):] for k in checkpoint["model"] if k.startswith("q1.") and "dendrite_module.layers" in k}
    assert q1 and all(k in checkpoint["targets"]["q1"] for k in q1)  # the targets have the dendrites
    assert (out_dir / "sac_pendulum" / "best_model.pt").is_file()


@pytest.mark.parametrize("script", ["ppo_pai.py", "sac_pai.py"])
def test_help_does_not_import_torch(script, tmp_path):
    code = (
        "import sys, runpy\n"
        f"sys.argv = [{script!r}, '--help']\n"
        "try:\n"
        f"    runpy.run_path({str(EXAMPLES / script)!r}, run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0\n"
        "assert 'torch' not in sys.modules and 'torchrl' not in sys.modules, 'heavy import before parsing'\n"
    )
    proc = run(["-c", code], tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(f"usage: {script}") and "--short" in proc.stdout
    parser = example(script).build_parser()
    unexplained = [a.option_strings for a in parser._actions if not (a.help or "").strip()]
    assert unexplained == []  # every flag explained


def example(script: str):
    sys.path.insert(0, str(EXAMPLES))
    try:
        return __import__(script[:-3])
    finally:
        sys.path.remove(str(EXAMPLES))


@pytest.mark.parametrize(("script", "argv", "message"), [
    ("sac_pai.py", ["--steps", "0"], "argument --steps: must be a positive integer, got 0"),
    ("sac_pai.py", ["--batch-size", "x"], "argument --batch-size: expected a positive integer, got 'x'"),
    ("sac_pai.py", ["--seed", "-1"], "argument --seed: must be a non-negative integer, got -1"),
    ("sac_pai.py", ["--steps", "100", "--epoch", "200"], "--epoch (200) must not exceed --steps (100)"),
    ("ppo_pai.py", ["--iterations", "0"], "argument --iterations: must be a positive integer, got 0"),
    ("ppo_pai.py", ["--threads", "two"], "argument --threads: expected a positive integer, got 'two'"),
])
def test_bad_values_are_usage_errors(script, argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        example(script).parse_args(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: {script}") and f"{script}: error: {message}" in err
    assert "Traceback" not in err

"""Shared helpers for the example tests: the examples folder on ``sys.path`` (the scripts
import each other as siblings, as they do when run), and a subprocess runner."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))


def run_python(args: list[str], timeout: float, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``python <args>`` with this checkout importable, stdin closed, gloo on loopback."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["GLOO_SOCKET_IFNAME"] = "lo"
    env["RL_WARNINGS"] = "False"
    return subprocess.run(
        [sys.executable, *args], cwd=cwd or ROOT, env=env, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_args(script: Path, nproc: int = 2) -> list[str]:
    """``-m torch.distributed.run`` on loopback with a free port (static rendezvous)."""
    return ["-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--nnodes=1",
            "--master_addr=127.0.0.1", f"--master_port={free_port()}", str(script)]


@pytest.fixture
def torch_state():
    """Restore the global RNG and thread count an in-process example run changes."""
    import torch

    threads = torch.get_num_threads()
    with torch.random.fork_rng():
        yield
    torch.set_num_threads(threads)

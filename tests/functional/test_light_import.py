"""``import torchrl_functional.functional`` is light: TorchRL (its environments, data and
collectors) is imported only when a distribution helper first needs it, also when that first
use happens while ``torch.compile`` traces."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_HEAVY = ("torchrl", "torchrl.envs", "torchrl.data", "torchrl.collectors")


def _a_loss_with_a_behaviour_policy() -> str:
    """The name of an on-policy loss reading ``action_log_prob`` (from the registry, which
    imports TorchRL: only in this process, never in the child)."""
    from tests.specs import tagged

    return tagged("on_policy", "importance_ratio")[0].name


def _run(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def test_importing_the_functional_layer_leaves_torchrl_unimported():
    out = _run(f"""
        import sys
        import torchrl_functional.functional
        print([m for m in {_HEAVY!r} if m in sys.modules])
    """)
    assert out == "[]"


def test_first_distribution_helper_call_under_compile_imports_torchrl_lazily():
    name = _a_loss_with_a_behaviour_policy()
    out = _run(f"""
        import sys
        import torch
        from torch import distributions as D
        from tensordict import TensorDict
        from torchrl_functional.functional import {name} as loss
        torch.manual_seed(0)
        B = 6
        td = TensorDict({{
            "actor_output": {{"loc": torch.randn(B, 2), "scale": torch.rand(B, 2) + 0.5}},
            "action": torch.randn(B, 2), "action_log_prob": torch.randn(B),
            "advantage": torch.randn(B, 1), "value_target": torch.randn(B, 1), "state_value": torch.randn(B, 1),
        }}, [B])
        def dist(loc, scale):
            return D.Independent(D.Normal(loc, scale), 1)
        assert "torchrl" not in sys.modules
        compiled = torch.compile(lambda t: loss(t, dist)["loss_entropy"], fullgraph=True, backend="eager")
        got = compiled(td)
        want = loss(td, dist)["loss_entropy"]
        print(bool(torch.allclose(got, want)) and "torchrl" in sys.modules)
    """)
    assert out == "True"

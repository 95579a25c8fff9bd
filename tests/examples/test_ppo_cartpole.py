"""The ``make demo`` example (examples/ppo_cartpole.py) on real CartPole-v1.

- The command line, end to end, for a few thousand frames: the greedy return after
  training beats the untrained policy's, and the CSV log and PNG curve are written.
- The three learners on the same seed: the drop-in module reproduces TorchRL's clipped
  PPO loss module's run exactly (same losses, same returns, iteration after iteration); the
  hand-written functional loop matches it to float tolerance.
"""

from __future__ import annotations

import argparse
import csv
import math

import ppo_cartpole
import pytest
import torch

from tests.examples.conftest import EXAMPLES, run_python


def _read(path):
    return ppo_cartpole.read_csv(path)


@pytest.mark.slow
def test_demo_command_line_improves_return(tmp_path):
    proc = run_python(
        [str(EXAMPLES / "ppo_cartpole.py"), "--frames", "4096", "--seed", "0", "--quiet",
         "--out", str(tmp_path)],
        timeout=240,  # a few thousand frames: under a minute on a quiet machine, minutes on a busy one
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "final evaluation return:" in proc.stdout
    rows = _read(tmp_path / "functional_seed0.csv")
    assert rows[0]["frames"] == 0 and rows[-1]["frames"] == 4096
    untrained, trained = rows[0]["eval_return"], rows[-1]["eval_return"]
    # an untrained greedy CartPole policy balances ~10 steps; 16 PPO iterations reach well past 100
    assert trained >= max(3 * untrained, untrained + 50), (untrained, trained)
    printed = float(proc.stdout.split("final evaluation return:")[1].split()[0])
    assert printed == pytest.approx(trained, abs=0.05)
    png = (tmp_path / "functional_seed0.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000


def _args(tmp_path, loss: str, frames: int = 768) -> argparse.Namespace:
    return ppo_cartpole.parse_args(
        ["--loss", loss, "--frames", str(frames), "--seed", "3", "--quiet", "--no-plot",
         "--eval-episodes", "2", "--out", str(tmp_path / loss)]
    )


@pytest.mark.slow
def test_same_seed_same_curve(tmp_path, torch_state):
    """Three learners, one seed: ours (module) equals TorchRL's bit for bit; the functional loop is close."""
    runs = {}
    for loss in ppo_cartpole.LOSSES:
        result = ppo_cartpole.train(_args(tmp_path, loss))
        runs[loss] = _read(result.csv_path)
    keys = ("train_return", "eval_return", "loss_objective", "loss_critic", "clip_fraction", "kl_approx")
    assert len(runs["module"]) == len(runs["torchrl"]) == 4  # initial evaluation + 3 iterations
    for ours, theirs in zip(runs["module"], runs["torchrl"]):
        for key in keys:
            assert (key in ours) == (key in theirs)
            if key in ours:
                assert ours[key] == theirs[key], (key, ours, theirs)
    # the functional loop estimates GAE with the pure kernel (float re-association, ~1e-6)
    for ours, theirs in zip(runs["functional"], runs["torchrl"]):
        for key in ("loss_objective", "loss_critic"):
            if key in theirs:
                assert ours[key] == pytest.approx(theirs[key], rel=1e-3, abs=1e-5), key
    # and something was learned at all: losses differ between iterations
    assert len({row["loss_objective"] for row in runs["torchrl"][1:]}) == 3


def test_functional_losses_match_torchrl_on_collected_batch(torch_state):
    """``ppo_losses`` (the hand-written style) vs TorchRL's clipped PPO class on one real batch."""
    from torchrl.collectors import Collector
    from torchrl.objectives.value import GAE

    from tests.functional.onpolicy_common import clipped_ratio_spec

    torch.manual_seed(0)
    cfg = ppo_cartpole.PPOConfig()
    env = ppo_cartpole.make_env(2, seed=0)
    policy_net, value_net, actor, critic = ppo_cartpole.make_models(env, hidden=16)
    collector = Collector(env, actor, frames_per_batch=64, total_frames=64, auto_register_policy_transforms=False)
    data = next(iter(collector))
    collector.shutdown()

    ours_td, theirs_td = data.clone(), data.clone()
    ppo_cartpole.functional_advantage(value_net, ours_td, cfg)
    GAE(gamma=cfg.gamma, lmbda=cfg.lmbda, value_network=critic, average_gae=False)(theirs_td)
    torch.testing.assert_close(ours_td["advantage"], theirs_td["advantage"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours_td["value_target"], theirs_td["value_target"], rtol=1e-5, atol=1e-5)

    batch = theirs_td.reshape(-1)
    loss_module = clipped_ratio_spec().torchrl(
        actor, critic, clip_epsilon=cfg.clip_epsilon, entropy_coeff=cfg.entropy_coeff, critic_coeff=cfg.critic_coeff,
        loss_critic_type=cfg.loss_critic_type, normalize_advantage=cfg.normalize_advantage)
    params = [*policy_net.parameters(), *value_net.parameters()]
    results = []
    for compute in (lambda: ppo_cartpole.ppo_losses(policy_net, value_net, batch, cfg), lambda: loss_module(batch)):
        out = compute()
        total = out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]
        results.append((torch.autograd.grad(total, params), out.detach()))
    (g_ours, out_ours), (g_theirs, out_theirs) = results
    for key in ("loss_objective", "loss_critic", "loss_entropy", "clip_fraction", "kl_approx"):
        torch.testing.assert_close(out_ours[key], out_theirs[key], rtol=1e-6, atol=1e-7)
    for a, b in zip(g_ours, g_theirs):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    assert not math.isnan(out_ours["loss_objective"].item())


def test_plot_curves_overlays_csv_logs(tmp_path):
    import plot_curves

    rows = [{"frames": 0, "eval_return": 9.0}, {"frames": 256, "train_return": 20.0},
            {"frames": 512, "train_return": 30.0, "eval_return": 40.0}]
    paths = []
    for name in ("a", "b"):
        path = tmp_path / f"{name}.csv"
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=ppo_cartpole.CSV_FIELDS)
            writer.writeheader()
            writer.writerows(rows)
        paths.append(str(path))
        assert _read(path) == [{k: float(v) for k, v in r.items()} for r in rows]
    out = tmp_path / "img" / "curves.png"
    assert plot_curves.main([*paths, "-o", str(out), "--labels", "A", "B"]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_demo_with_pai_adds_dendrites(tmp_path):
    """``--pai`` grows dendrites on both networks (real PerforatedAI, output under --out)."""
    proc = run_python(
        [str(EXAMPLES / "ppo_cartpole.py"), "--pai", "--frames", "4096", "--eval-every", "2048", "--quiet",
         "--no-plot", "--out", str(tmp_path)],
        timeout=420,  # minutes on a busy machine (PAI restructures, evaluations)
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    restructures = int(proc.stdout.split("PerforatedAI: ")[1].split()[0])
    assert restructures >= 1, proc.stdout
    assert (tmp_path / "pai").is_dir()
    rows = _read(tmp_path / "functional_seed0.csv")
    assert all(math.isfinite(r["eval_return"]) for r in rows if r.get("eval_return") is not None)

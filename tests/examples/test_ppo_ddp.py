"""examples/ppo_ddp.py with two real processes (torch.distributed.run, gloo on loopback).

- One DDP step on two rank-specific batches equals one single-process step on their
  concatenation (gradients and SGD-updated parameters), and both ranks end identical.
- The example itself, for a few iterations: each rank collects its own CartPole data, and
  the ranks end with bit-identical parameters that differ from the initial ones.
"""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from tests.examples import ddp_step_worker as worker
from tests.examples.conftest import EXAMPLES, run_python, torchrun_args


@pytest.mark.slow
def test_ddp_step_equals_single_process_step_on_concatenated_batch(tmp_path):
    proc = run_python([*torchrun_args(worker.__file__), str(tmp_path)], timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert all(r["world_size"] == 2 for r in ranks)

    # ranks agree bit for bit
    for name, value in ranks[0]["state_dict"].items():
        assert torch.equal(value, ranks[1]["state_dict"][name]), name

    # the same step in one process on the concatenated batch
    learner = worker.make_learner()
    initial = {k: v.clone() for k, v in learner.state_dict().items()}
    batch = TensorDict.cat([worker.make_batch(r, learner) for r in range(2)])
    optim = torch.optim.SGD(learner.parameters(), lr=worker.LR)
    from ppo_ddp import ppo_step

    ppo_step(learner, optim, batch, worker.CFG)
    for ddp_grad, p in zip(ranks[0]["grads"], learner.parameters()):
        torch.testing.assert_close(ddp_grad, p.grad, rtol=1e-5, atol=1e-7)
    moved = 0.0
    for name, value in learner.state_dict().items():
        torch.testing.assert_close(ranks[0]["state_dict"][name], value, rtol=1e-5, atol=1e-7)
        moved = max(moved, (value - initial[name]).abs().max().item())
    assert moved > 1e-3  # the step did something

    # and it is not what either rank's batch alone gives
    alone = worker.make_learner()
    ppo_step(alone, torch.optim.SGD(alone.parameters(), lr=worker.LR), worker.make_batch(0, alone), worker.CFG)
    diff = max((a - b).abs().max().item() for a, b in zip(alone.parameters(), learner.parameters()))
    assert diff > 1e-4


@pytest.mark.slow
def test_ddp_example_ranks_collect_own_data_and_stay_identical(tmp_path):
    proc = run_python(
        [*torchrun_args(EXAMPLES / "ppo_ddp.py"), "--frames", "1024", "--num-envs", "2",
         "--eval-episodes", "1", "--quiet", "--save-rank-states", "--out", str(tmp_path)],
        timeout=90,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "parameters identical on all ranks: True" in proc.stdout
    assert "world size 2: 1024 frames" in proc.stdout
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert [r["frames"] for r in ranks] == [512, 512]
    assert ranks[0]["obs_sum"] != ranks[1]["obs_sum"]  # each rank stepped its own environments

    import ppo_cartpole

    torch.manual_seed(0)  # the example's initial parameters (seed 0)
    env = ppo_cartpole.make_env(2, seed=0)
    policy_net, value_net, *_ = ppo_cartpole.make_models(env, ppo_cartpole.PPOConfig().hidden)
    env.close()
    initial = {f"policy_net.{k}": v for k, v in policy_net.state_dict().items()}
    initial.update({f"value_net.{k}": v for k, v in value_net.state_dict().items()})
    assert set(initial) == set(ranks[0]["state_dict"])
    for name, value in ranks[0]["state_dict"].items():
        assert torch.equal(value, ranks[1]["state_dict"][name]), name
        assert not torch.equal(value, initial[name]), name

"""The behaviour-cloning-over-tasks example: the vmapped loss and gradients equal a loop of
TorchRL's behaviour-cloning loss module (one per task), training lowers every task's loss, flags are checked."""

from __future__ import annotations

import bc_vmap_tasks
import pytest
import torch


def test_vmapped_bc_equals_a_loop_of_torchrl_bcloss(tmp_path, torch_state):
    out = bc_vmap_tasks.main(["--tasks", "3", "--samples", "32", "--steps", "30", "--out", str(tmp_path)])
    assert out["max_difference"] < 1e-6
    assert (out["last"] < out["first"]).all()
    rows = out["csv"].read_text().splitlines()
    assert rows[0] == "step,task_0,task_1,task_2" and len(rows) == 32


def test_vmapped_smooth_l1_matches_the_loop_too(torch_state):
    g = torch.Generator().manual_seed(1)
    data = bc_vmap_tasks.make_datasets(2, 16, g)
    policies = [bc_vmap_tasks.make_policy() for _ in range(2)]
    params = {n: torch.stack([dict(p.named_parameters())[n].detach() for p in policies])
              for n, _ in policies[0].named_parameters()}
    grads, losses = bc_vmap_tasks.vmapped_step_fn(policies[0], "smooth_l1")(params, data)
    ref_losses, ref_grads = bc_vmap_tasks.loop_reference(policies, data, "smooth_l1")
    torch.testing.assert_close(losses, ref_losses, rtol=1e-6, atol=1e-7)
    for n in grads:
        torch.testing.assert_close(grads[n], ref_grads[n], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("argv,message", [
    (["--tasks", "0"], "argument --tasks: must be a positive integer, got 0"),
    (["--lr", "-1"], "argument --lr: must be a positive finite number, got -1"),
    (["--loss-function", "huber"], "argument --loss-function: invalid choice: 'huber'"),
])
def test_bad_flags_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        bc_vmap_tasks.parse_args(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"bc_vmap_tasks.py: error: {message}" in err and "Traceback" not in err

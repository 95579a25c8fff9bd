"""Checkpoints: resume in a fresh process exactly where the saving process would have gone,
plain-data files (weights_only), atomic writes, clear errors for bad files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.pai.helpers import fixed, mlp, regression_step, resume_continue, resume_group, resume_prefix
from torchrl_functional.pai import NetworkSpec, PAICheckpointError, PAIGroup, PAIStateError
from torchrl_functional.pai import checkpoint as ckpt_module
from torchrl_functional.pai._optimizers import named_params

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_resume_in_a_fresh_process_matches_continuing(out_dir, tmp_path):
    group, loss = resume_group(out_dir / "first", seed=0)
    resume_prefix(group, loss)
    assert group.num_dendrites == 1  # saved after a restructure, with a plateau-reduced lr
    assert group.lrs()["actor"] == pytest.approx(0.5e-2)
    path = group.save_checkpoint(out_dir / "ckpt" / "group.pt")
    expected = resume_continue(group, loss)  # what the first process does next
    assert expected["num_dendrites"] == 2  # ... including a restructure after the save point

    worker_cwd = tmp_path / "worker_cwd"
    worker_cwd.mkdir()
    result = out_dir / "resumed.pt"
    env = {**os.environ, "PYTHONPATH": str(REPO), "TORCHRL_FUNCTIONAL_TEST_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.pai.resume_worker", str(path), str(result), str(out_dir / "second")],
        cwd=worker_cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == ""  # silent
    assert os.listdir(worker_cwd) == []  # nothing written outside the chosen directory
    assert (out_dir / "second" / "resume" / "best_model.pt").is_file()

    got = torch.load(result, weights_only=True)
    assert got["num_dendrites"] == expected["num_dendrites"]
    torch.testing.assert_close(got["results"], expected["results"], rtol=0, atol=0)
    assert got["model"].keys() == expected["model"].keys()
    for key, value in expected["model"].items():
        assert torch.equal(got["model"][key], value), key
    assert got["target"].keys() == expected["target"].keys()  # the target network, dendrites included
    assert any("dendrite_module.layers" in key for key in expected["target"])
    for key, value in expected["target"].items():
        assert torch.equal(got["target"][key], value), key


def small_group(out_dir, name="small", lr=1e-2) -> PAIGroup:
    return PAIGroup(
        name,
        {"actor": NetworkSpec(mlp([3, 4, 2], 0), lr=lr), "critic": NetworkSpec(mlp([3, 4, 1], 1), lr=1e-2)},
        directory=out_dir,
        settings=fixed(2),
    )


def test_checkpoint_is_plain_data_and_written_atomically(out_dir, monkeypatch):
    group = small_group(out_dir)
    x = torch.randn(8, 3)
    for score in (0.0, 1.0):
        regression_step(group, x)
        group.add_score(score)
    target = out_dir / "ck" / "group.pt"
    group.save_checkpoint(target)
    payload = torch.load(target, weights_only=True)  # no code unpickled
    assert payload["format"] == "torchrl_functional.pai.checkpoint" and payload["version"] == 2
    assert payload["group"]["networks"] == ["actor", "critic"]
    assert set(payload["pai_files"]) == {"best_model.pt", "switch_2.pt"}  # one switch: n -> p -> n
    assert "tracker_string" in payload["model"]
    assert list(payload["optimizer_params"]["shared"]) == ["actor", "critic"]
    assert payload["optimizer_params"]["shared"]["actor"][0] == "actor.0.main_module.weight"
    assert os.listdir(target.parent) == ["group.pt"]  # no temporary file left

    # a failing write leaves the previous file untouched and no temporary file behind
    before = target.read_bytes()

    def broken_save(obj, fh, *args, **kwargs):
        fh.write(b"partial")
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(torch, "save", broken_save)
        with pytest.raises(OSError, match="disk full"):
            group.save_checkpoint(target)
    assert target.read_bytes() == before
    assert os.listdir(target.parent) == ["group.pt"]


def test_load_in_the_same_process_restores_weights_and_optimizer(out_dir):
    group = small_group(out_dir)
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    for score in (0.0, 1.0, 2.0):
        regression_step(group, x)
        group.add_score(score)
    path = group.save_checkpoint(out_dir / "g.pt")
    regression_step(group, x)
    after_one = {k: v.clone() for k, v in group.model.state_dict().items() if k != "tracker_string"}

    other = small_group(out_dir / "other")
    other.load_checkpoint(path)
    assert other.num_dendrites == group.num_dendrites == 1
    assert other.param_counts() == group.param_counts()
    regression_step(other, x)
    state = {k: v for k, v in other.model.state_dict().items() if k != "tracker_string"}
    assert state.keys() == after_one.keys()
    assert all(torch.equal(state[k], after_one[k]) for k in state)
    assert other._tracker.member_vars["accuracies"] == group._tracker.member_vars["accuracies"]


def test_optimizer_state_is_matched_to_parameters_by_name(out_dir):
    group = small_group(out_dir)
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(1))
    for score in (0.0, 1.0):
        regression_step(group, x)
        group.add_score(score)
    regression_step(group, x)  # Adam state for the new dendrite parameters too
    payload = torch.load(group.save_checkpoint(out_dir / "g.pt"), weights_only=True)
    # the same checkpoint with the actor's parameters listed in reverse order
    names = payload["optimizer_params"]["shared"]["actor"]
    k = len(names)
    payload["optimizer_params"]["shared"]["actor"] = names[::-1]
    state = payload["optimizers"]["shared"]["state"]
    payload["optimizers"]["shared"]["state"] = {
        (k - 1 - i if i < k else i): v for i, v in state.items()
    }
    for key in ("format", "version"):
        payload.pop(key)
    ckpt_module.write_checkpoint(out_dir / "reversed.pt", payload)

    other = small_group(out_dir / "other")
    other.load_checkpoint(out_dir / "reversed.pt")
    by_name = {n: p for plist in named_params(group).values() for n, p in plist}
    other_by_name = {n: p for plist in named_params(other).values() for n, p in plist}
    compared = 0
    for name, p in by_name.items():
        if p in group.optimizer.state:
            mine, theirs = other.optimizer.state[other_by_name[name]], group.optimizer.state[p]
            assert torch.equal(mine["exp_avg"], theirs["exp_avg"]), name
            compared += 1
    assert compared == len(by_name) - sum(not p.requires_grad for p in by_name.values())


def test_bad_checkpoint_files_give_clear_errors(out_dir):
    group = small_group(out_dir)
    regression_step(group, torch.randn(4, 3))
    path = group.save_checkpoint(out_dir / "good.pt")
    data = path.read_bytes()
    truncated = out_dir / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    garbage = out_dir / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    foreign = out_dir / "foreign.pt"
    torch.save({"weights": torch.ones(2)}, foreign)
    future = out_dir / "future.pt"
    ckpt_module.write_checkpoint(future, {"version": 99})
    cases = {
        out_dir / "missing.pt": "no such file",
        truncated: "cannot be read",
        garbage: "cannot be read",
        foreign: "not a torchrl_functional.pai checkpoint",
        future: "format version 99",
    }
    for bad, message in cases.items():
        with pytest.raises(PAICheckpointError, match=message):
            group.load_checkpoint(bad)
    # the group is still usable after refused files
    regression_step(group, torch.randn(4, 3))
    group.add_score(1.0)


def test_checkpoint_of_a_different_group_is_refused(out_dir):
    first = small_group(out_dir / "a")
    regression_step(first, torch.randn(4, 3))
    path = first.save_checkpoint(out_dir / "a.pt")
    with pytest.raises(PAICheckpointError, match="configured differently"):
        small_group(out_dir / "b", lr=5e-3).load_checkpoint(path)
    other = PAIGroup("c", {"policy": NetworkSpec(mlp([3, 2], 0), lr=1e-2)}, directory=out_dir / "c")
    with pytest.raises(PAICheckpointError, match="holds networks"):
        other.load_checkpoint(path)


def test_each_own_optimizer_gets_its_own_state_back(out_dir):
    """Case 2 and Case 3 optimizers anywhere in the spec order get back their own state and
    learning rate (a Case 3 lr changed by the user's scheduler included)."""
    def build(directory):
        return PAIGroup(
            "own",
            {
                "aux": NetworkSpec(mlp([3, 3], 2), lr=5e-3, optimizer=torch.optim.RMSprop, follow_pai_lr=False),
                "actor": NetworkSpec(mlp([3, 4, 2], 0), lr=1e-2),
                "meta": NetworkSpec(mlp([3, 4, 1], 1), lr=2e-2, optimizer=torch.optim.SGD,
                                    optimizer_kwargs={"momentum": 0.9}),
                "aux2": NetworkSpec(mlp([3, 2], 3), lr=7e-3, optimizer=torch.optim.Adam, follow_pai_lr=False),
            },
            directory=directory, settings=fixed(2), scheduler_kwargs={"patience": 0, "factor": 0.5},
        )

    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(5))
    group = build(out_dir / "a")
    sched = torch.optim.lr_scheduler.StepLR(group.optimizers["aux"], step_size=1, gamma=0.5)
    for score in (0.0, 1.0, 2.0, 0.5):  # two restructures
        regression_step(group, x)
        group.add_score(score)
        sched.step()
    regression_step(group, x)
    path = group.save_checkpoint(out_dir / "own.pt")
    lrs = group.lrs()
    assert len(set(lrs.values())) == 4  # every network at its own rate

    other = build(out_dir / "b")
    other_sched = torch.optim.lr_scheduler.StepLR(other.optimizers["aux"], step_size=1, gamma=0.5)
    other.load_checkpoint(path)
    other_sched.load_state_dict(sched.state_dict())  # the user's scheduler is the user's to save
    assert other.lrs() == lrs
    for name in ("aux", "meta", "aux2"):
        mine, theirs = other.optimizers[name], group.optimizers[name]
        assert type(mine) is type(theirs)
        assert sum(bool(theirs.state[q]) for q in theirs.param_groups[0]["params"]) >= 2, name
        for p, q in zip(mine.param_groups[0]["params"], theirs.param_groups[0]["params"]):
            assert mine.state[p].keys() == theirs.state[q].keys(), name
            for key, value in theirs.state[q].items():
                assert torch.equal(mine.state[p][key], value), (name, key)
    for g, s in ((group, sched), (other, other_sched)):
        regression_step(g, x)
        s.step()
    assert other.lrs() == group.lrs()
    for (name, p), (_, q) in zip(other.model.named_parameters(), group.model.named_parameters()):
        assert torch.equal(p, q), name


def test_a_checkpoint_before_the_first_backward_is_refused(out_dir):
    """PAI sets a layer's state up at its first backward pass and cannot load a layer
    without it: such a save is refused, and a load is checked before the group changes."""
    group = small_group(out_dir)
    with pytest.raises(PAIStateError, match=r"have not had a backward pass yet: \['.actor.0'"):
        group.save_checkpoint(out_dir / "early.pt")
    assert not (out_dir / "early.pt").exists()
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(6))
    regression_step(group, x)
    good = group.save_checkpoint(out_dir / "good.pt")

    payload = torch.load(good, weights_only=True)  # as an early save would have been
    payload["model"] = {k: v for k, v in payload["model"].items() if "dendrite_storage_shape" not in k}
    for key in ("format", "version"):
        payload.pop(key)
    bad = ckpt_module.write_checkpoint(out_dir / "bad.pt", payload)
    other = small_group(out_dir / "other")
    regression_step(other, x)
    with pytest.raises(PAICheckpointError, match="lacks PAI's state of the layers"):
        other.load_checkpoint(bad)
    for score in (0.0, 1.0):  # still usable, restructure included
        regression_step(other, x)
        assert other.add_score(score).restructured == (score == 1.0)
    third = small_group(out_dir / "third")
    third.load_checkpoint(good)
    regression_step(third, x)
    regression_step(group, x)
    for (name, p), (_, q) in zip(third.model.named_parameters(), group.model.named_parameters()):
        assert torch.equal(p, q), name


@pytest.mark.slow
def test_a_save_killed_midway_leaves_no_temporary_file_behind(out_dir):
    target = out_dir / "ck" / "g.pt"
    code = (
        "import os, signal, sys, torch\n"
        "from torchrl_functional.pai import checkpoint\n"
        "def dying(obj, fh, *args, **kwargs):\n"
        "    fh.write(b'partial'); fh.flush(); os.kill(os.getpid(), signal.SIGKILL)\n"
        "torch.save = dying\n"
        "checkpoint.write_checkpoint(sys.argv[1], {'step': 1})\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(target)], env={**os.environ, "PYTHONPATH": str(REPO)},
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    leftovers = os.listdir(target.parent)
    assert len(leftovers) == 1 and leftovers[0].endswith(".tmp")  # what the kill left
    ckpt_module.write_checkpoint(target, {"step": 2})
    assert os.listdir(target.parent) == ["g.pt"]
    assert torch.load(target, weights_only=True)["step"] == 2

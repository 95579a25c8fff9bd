"""Safe defaults: mistakes PAI answers with pdb / sys.exit raise first, output stays in the
chosen directory, nothing is printed, groups do not leak configuration into each other."""

from __future__ import annotations

import copy
import os
import pdb
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn

from tests.pai.conftest import GPA
from tests.pai.helpers import fixed, mlp, regression_step
from torchrl_functional.pai import (
    NetworkSpec,
    PAIConfigError,
    PAIGroup,
    PAIInterruptError,
    PAISettings,
    PAIShapeError,
    PAIStateError,
)
from torchrl_functional.pai._runtime import import_pai, pai_call

REPO = Path(__file__).resolve().parents[2]


def two_nets(out_dir, name="safe", **kwargs) -> PAIGroup:
    return PAIGroup(
        name,
        {"actor": NetworkSpec(mlp([3, 4, 2], 0), lr=1e-2), "critic": NetworkSpec(mlp([3, 4, 1], 1), lr=1e-2)},
        directory=out_dir,
        **kwargs,
    )


@pytest.mark.parametrize(
    ("name", "message"),
    [("runs/ppo", "path separator"), ("my run", "may only contain"), ("", "non-empty"), ("..", "may only contain")],
)
def test_bad_group_names_are_refused(out_dir, name, message):
    with pytest.raises(PAIConfigError, match=message):
        two_nets(out_dir, name=name)
    assert list(out_dir.iterdir()) == []


def test_network_called_module_is_refused(out_dir):
    with pytest.raises(PAIConfigError, match="pdb"):
        PAIGroup("g", {"module": NetworkSpec(mlp([3, 2], 0), lr=1e-3)}, directory=out_dir)
    for bad in ("training", "forward", "2nets", "a.b"):
        with pytest.raises(PAIConfigError):
            PAIGroup("g", {bad: NetworkSpec(mlp([3, 2], 0), lr=1e-3)}, directory=out_dir)


def test_tensordict_module_networks_work_where_raw_pai_stops(out_dir, monkeypatch, pai_sandbox):
    """A TensorDictModule has a ``.module`` attribute: as PAI's top-level model it makes
    ``add_validation_score`` stop in pdb. The group is always the top level."""
    def td_net(seed):
        return TensorDictModule(mlp([3, 4, 2], seed), in_keys=["observation"], out_keys=["out"])

    raw = td_net(0)
    monkeypatch.chdir(out_dir)  # raw PAI writes to ./raw/
    with pytest.raises(PAIInterruptError, match=r"(?s)debugger.*Need to call \.module"):
        with pai_call("raw PAI"):
            GPA.pc.set_configuration_confirmed(True)
            GPA.pc.set_testing_dendrite_capacity(False)
            upa = import_pai().upa
            raw = upa.perforate_model(raw, save_name="raw")
            GPA.pai_tracker.set_optimizer(torch.optim.Adam)
            GPA.pai_tracker.setup_optimizer(raw, {"params": list(raw.parameters()), "lr": 1e-3}, {})
            GPA.pai_tracker.add_validation_score(1.0, raw)
    monkeypatch.chdir(pai_sandbox)

    group = PAIGroup("tdm", {"policy": NetworkSpec(td_net(1), lr=1e-3)}, directory=out_dir / "group", settings=fixed(2))
    td = TensorDict({"observation": torch.randn(6, 3)}, [6])
    for score in (0.0, 1.0):
        group.zero_grad()
        group["policy"](td.clone())["out"].pow(2).mean().backward()
        group.step()
        result = group.add_score(score)
    assert result.restructured and group.num_dendrites == 1


def test_time_batched_input_raises_before_pai_exits(out_dir):
    group = two_nets(out_dir, settings=fixed(2))
    x = torch.randn(5, 7, 3)  # [B, T, F]: PAI's Linear layers expect [B, F] by default
    with pytest.raises(PAIShapeError, match=r"network 'actor', layer '.actor.0': input of shape \(5, 7, 3\)"):
        group["actor"](x)
    # declared [B, T, F] layout: trains and restructures; the other rank is then refused
    timed = PAIGroup(
        "timed",
        {
            "actor": NetworkSpec(mlp([3, 4, 2], 0), lr=1e-2, output_dimensions=[-1, -1, 0]),
            "critic": NetworkSpec(mlp([3, 4, 1], 1), lr=1e-2, output_dimensions=[-1, -1, 0]),
        },
        directory=out_dir,
        settings=fixed(2),
    )
    for score in (0.0, 1.0):
        regression_step(timed, x)
        result = timed.add_score(score)
    assert result.restructured
    regression_step(timed, x)
    with pytest.raises(PAIShapeError, match=r"\[-1, -1, 0\]"):
        timed["critic"](torch.randn(5, 3))
    # a size PAI was told to expect (here a batch of 6) is checked on the output
    sized = PAIGroup(
        "sized", {"a": NetworkSpec(mlp([3, 4], 0), lr=1e-2, output_dimensions=[6, 0])}, directory=out_dir
    )
    sized["a"](torch.randn(6, 3))
    with pytest.raises(PAIShapeError, match=r"output of shape \(5, 4\)"):
        sized["a"](torch.randn(5, 3))


def test_networks_stay_copyable_and_picklable(out_dir):
    group = two_nets(out_dir, settings=fixed(2))
    x = torch.randn(6, 3)
    for score in (0.0, 1.0):
        regression_step(group, x)
        group.add_score(score)
    actor = group["actor"]
    for clone in (copy.deepcopy(actor), pickle.loads(pickle.dumps(actor))):
        torch.testing.assert_close(clone(x), actor(x))
        with pytest.raises(PAIShapeError):
            clone(torch.randn(2, 6, 3))
    assert copy.deepcopy(actor)[0]._forward_pre_hooks  # the copy keeps the checks


def test_verbose_echoes_pai_output(out_dir, capsys):
    two_nets(out_dir, verbose=True)
    assert "Saved" in capsys.readouterr().out


def test_invalid_output_dimensions_are_refused(out_dir):
    for dims, message in [([-1, 0, 0], "exactly one 0"), ([-1, -1], "exactly one 0"), ([-2, 0], "entries"), ("ab", "ints")]:
        with pytest.raises(PAIConfigError, match=message):
            PAIGroup("g", {"a": NetworkSpec(mlp([3, 2], 0), lr=1e-3, output_dimensions=dims)}, directory=out_dir)


def test_pai_settings_are_checked(out_dir):
    with pytest.raises(PAIConfigError, match="unknown PAI setting 'improvment_threshold'"):
        two_nets(out_dir, settings=PAISettings(extra={"improvment_threshold": [0.1]}))
    for key in ("save_name", "switch_mode", "fixed_switch_num", "n_epochs_to_switch", "max_dendrites",
                "find_best_lr", "test_saves", "testing_dendrite_capacity", "unwrapped_modules_confirmed",
                "maximizing_score", "use_cuda"):
        with pytest.raises(PAIConfigError, match=f"extra\\['{key}'\\] is set by the adapter"):
            PAISettings(switch_mode="fixed", extra={key: 0})
    with pytest.raises(PAIConfigError, match="switch_mode"):
        PAISettings(switch_mode="sometimes")
    group = two_nets(out_dir, settings=PAISettings(extra={"improvement_threshold_raw": 0.5, "history_lookback": 3}))
    assert group._pc.get_improvement_threshold_raw() == 0.5 and group._pc.get_history_lookback() == 3


def test_safe_defaults(out_dir, capsys):
    group = two_nets(out_dir, settings=fixed(2))
    pc = group._pc
    assert pc.get_configuration_confirmed() and pc.get_unwrapped_modules_confirmed()
    assert not pc.get_testing_dendrite_capacity()
    assert pc.get_device() == torch.device("cpu") and pc.get_silent()
    assert pc.get_switch_mode() == pc.DOING_FIXED_SWITCH and pc.get_fixed_switch_num() == 2
    x = torch.randn(6, 3)
    for score in (0.0, 1.0):
        regression_step(group, x)
        result = group.add_score(score)
    assert result.restructured
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""  # PAI's prints went to the log
    log = (out_dir / "safe" / "pai_output.log").read_text()
    assert "PAIGroup('safe').perforate" in log and "Saved" in log
    assert sorted(p.name for p in (out_dir / "safe").iterdir()) == [
        ".torchrl_functional_pai", "best_model.pt", "pai_output.log", "safe_config.json", "switch_2.pt",
    ]


def test_an_existing_run_folder_is_not_reused_silently(out_dir):
    with two_nets(out_dir):
        pass
    with pytest.raises(PAIConfigError, match="already exists"):
        two_nets(out_dir)
    (out_dir / "safe" / "switch_9.pt").write_bytes(b"old")  # a stale PAI snapshot
    group = two_nets(out_dir, overwrite=True)
    assert not (out_dir / "safe" / "switch_9.pt").exists()
    assert group.run_directory == out_dir / "safe"


def test_overwrite_deletes_only_what_pai_wrote(out_dir):
    # a folder of the user's that happens to have the group's name: never touched
    notes = out_dir / "safe"
    notes.mkdir()
    (notes / "model.pt").write_bytes(b"my weights")
    (notes / "notes.txt").write_text("keep me")
    with pytest.raises(PAIConfigError, match="not a run folder of this adapter"):
        two_nets(out_dir, overwrite=True)
    assert (notes / "model.pt").read_bytes() == b"my weights" and (notes / "notes.txt").read_text() == "keep me"
    # a run folder of the adapter: PAI's files go, what the user put there stays
    with two_nets(out_dir / "runs", settings=fixed(2)) as group:
        x = torch.randn(6, 3)
        for score in (0.0, 1.0):
            regression_step(group, x)
            group.add_score(score)
    run = out_dir / "runs" / "safe"
    (run / "model.pt").write_bytes(b"my weights")
    (run / "sub").mkdir()
    (run / "sub" / "best_model.pt").write_bytes(b"mine too")
    old = (run / "switch_2.pt").stat().st_mtime_ns
    two_nets(out_dir / "runs", overwrite=True)
    assert (run / "model.pt").read_bytes() == b"my weights"
    assert (run / "sub" / "best_model.pt").read_bytes() == b"mine too"
    assert not (run / "switch_2.pt").exists() and not (run / "best_model.pt").exists()  # PAI's, deleted
    assert old and sorted(p.name for p in run.iterdir()) == [
        ".torchrl_functional_pai", "model.pt", "pai_output.log", "safe_config.json", "sub",
    ]


def test_two_live_groups_cannot_share_a_run_folder(out_dir):
    first = two_nets(out_dir)
    with pytest.raises(PAIConfigError, match="run folder of a live group"):
        two_nets(out_dir, overwrite=True)
    assert GPA.pc is first._pc  # the refused group left PAI's globals alone
    first.close()
    second = two_nets(out_dir, overwrite=True)  # released by close()
    second.close()
    del second
    import gc

    gc.collect()
    two_nets(out_dir, overwrite=True)  # a closed and collected group holds nothing


def test_a_bare_layer_network_is_refused_with_dendrites(out_dir):
    """PAI replaces a network that is itself a Linear by a new object: code holding the
    original would bypass the dendrites. Refused; networks are modified in place."""
    layer = nn.Linear(3, 2)
    with pytest.raises(PAIConfigError, match=r"network 'head' is a single Linear.*nn.Sequential\(layer\)"):
        PAIGroup("bare", {"head": NetworkSpec(layer, lr=1e-3)}, directory=out_dir)
    assert list(out_dir.iterdir()) == []  # refused before anything was left behind
    seq = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    group = PAIGroup(
        "bare2",
        {"head": NetworkSpec(seq, lr=1e-3), "probe": NetworkSpec(layer, lr=1e-3, dendrites=False)},
        directory=out_dir,
        settings=fixed(2),
    )
    assert group["head"] is seq and group["probe"] is layer  # the objects given, changed in place
    x = torch.randn(5, 3)
    for score in (0.0, 1.0):
        group.zero_grad()
        (seq(x).pow(2).mean() + layer(x).pow(2).mean()).backward()  # the original objects
        group.step()
        result = group.add_score(score)
    assert result.restructured and any("dendrite" in n for n, _ in seq.named_parameters())


def test_close_restores_pai_globals(out_dir):
    before = GPA.pc, GPA.pai_tracker
    x = torch.randn(6, 3)
    with two_nets(out_dir, settings=fixed(2)) as group:
        assert GPA.pc is group._pc
        other = two_nets(out_dir, name="other")
        assert GPA.pc is other._pc
        for score in (0.0, 1.0):
            regression_step(group, x)
            group.add_score(score)
        assert GPA.pc is group._pc
    assert GPA.pc is before[0] and GPA.pai_tracker is before[1]  # not the live other group's
    out = group["actor"](x)  # the networks keep working, and leave PAI's globals alone
    assert out.shape == (6, 2) and GPA.pc is before[0]
    with pytest.raises(PAIStateError, match="closed"):
        group.add_score(2.0)
    with pytest.raises(PAIStateError, match="closed"):
        group.save_checkpoint(out_dir / "c.pt")
    regression_step(other, x)
    other.add_score(0.0)
    assert GPA.pc is other._pc
    other.close()
    assert GPA.pc is before[0] and GPA.pai_tracker is before[1]


def test_two_groups_do_not_leak_configuration(out_dir):
    a = PAIGroup(
        "a",
        {"actor": NetworkSpec(mlp([3, 4, 2], 0), lr=1e-2), "critic": NetworkSpec(mlp([3, 4, 1], 1), lr=1e-2, dendrites=False)},
        directory=out_dir,
        settings=fixed(2, extra={"improvement_threshold_raw": 0.25}),
    )
    b = two_nets(out_dir, name="b")
    fresh = GPA.PAIConfig()
    assert GPA.pc is b._pc and GPA.pai_tracker is b._tracker
    assert b._pc.get_switch_mode() == fresh.get_switch_mode() == fresh.DOING_HISTORY
    assert b._pc.get_fixed_switch_num() == fresh.get_fixed_switch_num() == 250
    assert b._pc.get_improvement_threshold_raw() == fresh.get_improvement_threshold_raw()
    assert b._pc.get_module_ids_to_track() == [] and a._pc.get_module_ids_to_track() == [".critic"]
    assert a._pc.get_improvement_threshold_raw() == 0.25
    assert any("dendrite_module" in n for n, _ in b["critic"].named_parameters())
    assert not any("dendrite_module" in n for n, _ in a["critic"].named_parameters())
    # used in turn, each follows its own configuration and tracker
    x = torch.randn(6, 3)
    for score in (0.0, 1.0, 2.0):
        regression_step(a, x)
        ra = a.add_score(score)
        assert GPA.pc is a._pc
        regression_step(b, x)
        rb = b.add_score(score)
        assert GPA.pc is b._pc
    assert a.num_dendrites == 1 and b.num_dendrites == 0  # fixed switch for a, history for b
    assert not rb.restructured and ra.num_scores == rb.num_scores == 3
    assert len(a._tracker.member_vars["accuracies"]) == len(b._tracker.member_vars["accuracies"]) == 3
    assert {p.name for p in out_dir.iterdir()} == {"a", "b"}


def test_pai_debugger_and_exit_become_exceptions(out_dir):
    """Real PAI error paths: a load into a model without PAI layers stops in pdb, a save
    name with '/' calls sys.exit. Neither may wait on stdin or end the process."""
    upa = import_pai().upa
    original = pdb.set_trace
    with pytest.raises(PAIInterruptError, match="tried to open the debugger") as info:
        with pai_call("probe"):
            upa.load_net_from_dict(nn.Linear(2, 2), {})
    assert "perforate_model" in str(info.value)  # PAI's own explanation is kept
    assert pdb.set_trace is original and sys.breakpointhook is sys.__breakpointhook__
    with pytest.raises(PAIInterruptError, match=r"sys.exit\(1\)"):
        with pai_call("probe"):
            upa.perforate_model(nn.Linear(2, 2), save_name="a/b")


def test_import_without_perforatedai(tmp_path):
    code = (
        "import sys; sys.modules['perforatedai'] = None\n"
        "import torchrl_functional, torchrl_functional.pai as pai\n"
        "from torch import nn\n"
        "try:\n"
        "    pai.PAIGroup('g', {'a': pai.NetworkSpec(nn.Linear(2, 2), lr=1e-3)}, directory=sys.argv[1])\n"
        "except pai.PAINotInstalledError as err:\n"
        "    assert isinstance(err, ImportError) and 'torchrl-functional[pai]' in str(err)\n"
        "    print('refused')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "out")],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "refused"


@pytest.mark.slow
def test_graphs_go_to_the_run_folder(out_dir):
    """PAI builds its graph paths from the working directory; the group gives it the run
    folder instead. ``overwrite=True`` removes them with PAI's other files."""
    with two_nets(out_dir, settings=fixed(2, graphs=True)) as group:
        x = torch.randn(6, 3)
        for score in (0.0, 1.0):
            regression_step(group, x)
            group.add_score(score)
    written = sorted(p.name for p in (out_dir / "safe").iterdir())
    assert "safe.png" in written and "safeScores.csv" in written, written
    assert [p.name for p in out_dir.iterdir()] == ["safe"]
    two_nets(out_dir, overwrite=True)
    assert not [p for p in (out_dir / "safe").iterdir() if p.suffix in (".png", ".csv")]

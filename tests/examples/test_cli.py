"""Bad command-line input to the examples ends with a one-line usage error (exit code 2),
never a traceback."""

from __future__ import annotations

import sys

import plot_curves
import ppo_cartpole
import ppo_ddp
import pytest

from tests.examples.conftest import EXAMPLES, run_python

BAD = [
    (["--loss", "sac"], "argument --loss: invalid choice: 'sac'"),
    (["--frames", "-100"], "argument --frames: must be a positive integer, got -100"),
    (["--frames", "0"], "argument --frames: must be a positive integer, got 0"),
    (["--frames", "1e5"], "argument --frames: expected a positive integer, got '1e5'"),
    (["--seed", "-1"], "argument --seed: must be a non-negative integer, got -1"),
    (["--num-envs", "0"], "argument --num-envs: must be a positive integer, got 0"),
    (["--eval-episodes", "x"], "argument --eval-episodes: expected a positive integer, got 'x'"),
]


def _usage_error(parse, argv, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        parse(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("argv,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_ppo_cartpole_rejects_bad_flags(argv, message, capsys):
    err = _usage_error(ppo_cartpole.parse_args, argv, capsys)
    assert err.startswith("usage: ppo_cartpole.py")
    assert f"ppo_cartpole.py: error: {message}" in err


@pytest.mark.parametrize("argv,message", [b for b in BAD if b[0][0] != "--loss"])
def test_ppo_ddp_rejects_bad_flags(argv, message, capsys):
    err = _usage_error(ppo_ddp.build_parser().parse_args, argv, capsys)
    assert f"ppo_ddp.py: error: {message}" in err


def test_ppo_ddp_has_no_loss_choice(capsys):
    err = _usage_error(ppo_ddp.build_parser().parse_args, ["--loss", "torchrl"], capsys)
    assert "unrecognized arguments: --loss torchrl" in err


def test_pai_flag_without_adapter_explains_what_is_missing(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torchrl_functional.pai", None)  # import raises ImportError
    err = _usage_error(ppo_cartpole.parse_args, ["--pai"], capsys)
    assert "--pai requires the PerforatedAI adapter" in err
    assert "pip install 'torchrl-functional[pai]'" in err


def test_plot_curves_rejects_missing_csv(tmp_path, capsys):
    err = _usage_error(plot_curves.main, [str(tmp_path / "nope.csv"), "-o", str(tmp_path / "x.png")], capsys)
    assert "no such CSV file" in err
    err = _usage_error(plot_curves.main, [str(tmp_path / "a.csv"), "-o", "x.png", "--labels", "A", "B"], capsys)
    assert "got 2 labels for 1 CSV files" in err


def test_command_line_error_is_a_message_not_a_traceback():
    """The real process: exit code 2, the reason on stderr, nothing trained."""
    proc = run_python([str(EXAMPLES / "ppo_cartpole.py"), "--loss", "nonsense", "--frames", "-5"], timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "error: argument --loss: invalid choice: 'nonsense'" in proc.stderr
    assert proc.stdout == ""


def test_pai_flag_needs_the_functional_loss(capsys):
    err = _usage_error(ppo_cartpole.parse_args, ["--pai", "--loss", "module"], capsys)
    assert "--pai runs the functional loss" in err

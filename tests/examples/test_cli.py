"""Bad command-line input to the examples ends with a one-line usage error (exit code 2),
never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import plot_curves
import ppo_cartpole
import ppo_ddp
import pytest

from tests.examples.conftest import EXAMPLES, ROOT, run_python

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


# --------------------------------------------------------------------------- every example's command line

SCRIPTS = ("mgrl", "lpg", "ppo_cartpole", "ppo_ddp", "quickstart", "plot_curves")
HEAVY = ("torch", "tensordict", "torchrl", "torchrl_functional")


def _parser(name: str):
    module = __import__(name)
    if hasattr(module, "build_parser"):
        return module.build_parser()
    # quickstart and plot_curves build their parser inside parse_args/main: capture it
    import argparse
    from unittest import mock

    seen = []
    real = argparse.ArgumentParser.parse_args

    def capture(self, *args, **kwargs):
        seen.append(self)
        return real(self, *args, **kwargs)

    with mock.patch.object(argparse.ArgumentParser, "parse_args", capture):
        try:
            (module.parse_args if hasattr(module, "parse_args") else module.main)(["--help"])
        except SystemExit:
            pass
    return seen[0]


@pytest.fixture(scope="module")
def no_heavy_imports(tmp_path_factory):
    """A folder of stand-ins for torch, tensordict, torchrl and torchrl_functional that raise on
    import: put first on ``PYTHONPATH``, it proves a command needs none of them."""
    root = tmp_path_factory.mktemp("no_heavy_imports")
    for name in HEAVY:
        (root / name).mkdir()
        (root / name / "__init__.py").write_text(
            f"raise ImportError('{name} was imported before the command line was parsed')\n")
    return root


def _run_light(script: str, argv: list[str], blocker) -> tuple[subprocess.CompletedProcess, float]:
    import os
    import time

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join((str(blocker), str(ROOT)))
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(EXAMPLES / f"{script}.py"), *argv], env=env, cwd=ROOT,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    return proc, time.perf_counter() - start


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_is_fast_and_needs_no_torch(script, no_heavy_imports):
    proc, seconds = _run_light(script, ["--help"], no_heavy_imports)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(f"usage: {script}.py")
    assert seconds < 3.0, f"--help took {seconds:.1f} s"


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_flag_is_explained(script):
    parser = _parser(script)
    for action in parser._actions:
        assert action.help and action.help.strip(), f"{script}.py {action.option_strings} has no help text"
        if action.default not in (None, False, "==SUPPRESS==") and action.option_strings != ["-h", "--help"]:
            assert "%(default)s" in action.help, f"{script}.py {action.option_strings} does not show its default"


@pytest.mark.parametrize("script", [s for s in SCRIPTS if s != "quickstart"])
def test_outputs_go_under_runs_example(script):
    """One output root: ``runs/<example>/`` relative to the current directory (quickstart writes
    nothing; plot_curves overlays ppo_cartpole's logs, next to them)."""
    flag = "--output" if script == "plot_curves" else "--out"
    out = next(a for a in _parser(script)._actions if flag in a.option_strings)
    folder = "ppo_cartpole" if script == "plot_curves" else script
    assert Path(out.default).parts[:2] == ("runs", folder)


BAD_VALUES = [
    ("mgrl", ["--inner-optimizer", "rmsprop"], "argument --inner-optimizer: invalid choice: 'rmsprop'"),
    ("mgrl", ["--inner-loss", "dqn"], "argument --inner-loss: invalid choice: 'dqn'"),
    ("mgrl", ["--gamma", "1.5"], "argument --gamma: must be strictly between 0 and 1, got 1.5"),
    ("mgrl", ["--iterations", "0"], "argument --iterations: must be a positive integer, got 0"),
    ("mgrl", ["--inner-lr", "fast"], "argument --inner-lr: expected a positive number, got 'fast'"),
    ("mgrl", ["--learn-gamma", "maybe"], "argument --learn-gamma: expected true or false, got 'maybe'"),
    ("mgrl", ["--r-later", "0.05"], "--r-later (0.05) must be larger than --r-now (0.1)"),
    ("mgrl", ["--delay", "40"], "--delay (40) must be shorter than --horizon (32)"),
    ("mgrl", ["--threads", "0"], "argument --threads: must be a positive integer, got 0"),
    ("lpg", ["--n-tasks", "0"], "argument --n-tasks: must be a positive integer, got 0"),
    ("lpg", ["--inner-lr", "-1"], "argument --inner-lr: must be a positive finite number, got -1"),
    ("lpg", ["--reference-gamma", "1"], "argument --reference-gamma: must be strictly between 0 and 1, got 1"),
    ("lpg", ["--iterations", "ten"], "argument --iterations: expected a positive integer, got 'ten'"),
    ("ppo_cartpole", ["--loss", "sac"], "argument --loss: invalid choice: 'sac'"),
    ("ppo_cartpole", ["--threads", "-2"], "argument --threads: must be a positive integer, got -2"),
    ("ppo_ddp", ["--num-envs", "0"], "argument --num-envs: must be a positive integer, got 0"),
    ("quickstart", ["--steps", "0"], "argument --steps: must be a positive integer, got 0"),
    ("quickstart", ["--batch", "1"], "argument --batch: must be at least 2, got 1"),
]


@pytest.mark.parametrize("script,argv,message", BAD_VALUES, ids=[f"{s} {' '.join(a)}" for s, a, _ in BAD_VALUES])
def test_bad_value_is_a_one_line_usage_error(script, argv, message, no_heavy_imports):
    proc, _ = _run_light(script, argv, no_heavy_imports)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"usage: {script}.py")
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith(f"{script}.py: error: {message}"), errors


def test_torchrl_logs_are_plain_lines_at_warning_and_above():
    """TorchRL's INFO lines (raw colour codes, stdout) would interleave with the progress bar."""
    import logging

    from _cli import route_torchrl_logs

    logger = logging.getLogger("torchrl")
    handlers, level = list(logger.handlers), logger.level
    lines: list[str] = []
    try:
        route_torchrl_logs(write=lines.append)
        logger.info("closing SerialEnv")
        logger.warning("something to know")
    finally:
        for h in list(logger.handlers):
            logger.removeHandler(h)
        for h in handlers:
            logger.addHandler(h)
        logger.setLevel(level)
    assert lines == ["torchrl WARNING: something to know"]


def test_small_batch_takes_the_whole_batch_as_minibatch_and_says_so():
    cfg = ppo_cartpole.PPOConfig()
    notes: list[str] = []
    assert ppo_cartpole.minibatch_size_for(8 * cfg.steps_per_env, cfg, 8, log=notes.append) == cfg.minibatch_size
    assert notes == []
    assert ppo_cartpole.minibatch_size_for(4 * cfg.steps_per_env, cfg, 4, log=notes.append) == 4 * cfg.steps_per_env
    assert notes and "128 frames (4 envs x 32 steps)" in notes[0] and "minibatch size 256" in notes[0]


def test_mgrl_inner_lr_follows_the_inner_optimizer(capsys):
    """SGD's default step (1.0) makes Adam collapse; Adam gets its own default, an explicit value wins,
    and a value in the range measured to collapse is warned about."""
    import mgrl

    assert mgrl.MGRLConfig().inner_learning_rate == 1.0
    cfg, _ = mgrl.parse_args(["--inner-optimizer", "adam"])
    assert cfg.inner_learning_rate == mgrl.DEFAULT_INNER_LR["adam"] < mgrl.ADAM_INNER_LR_TOO_LARGE
    assert "warning" not in capsys.readouterr().err
    cfg, _ = mgrl.parse_args(["--inner-optimizer", "adam", "--inner-lr", "1.0"])
    assert cfg.inner_learning_rate == 1.0
    assert "warning: --inner-lr 1 with Adam" in capsys.readouterr().err
    assert mgrl.InnerOptimizer(cfg.inner_optimizer, cfg.inner_learning_rate).lr == 1.0


@pytest.mark.slow
def test_mgrl_with_adam_at_its_default_lr_learns_to_wait():
    """The default Adam step raises gamma past gamma* (at SGD's 1.0 it stays near 0.55)."""
    import mgrl

    cfg, _ = mgrl.parse_args(["--inner-optimizer", "adam", "--n-envs", "16", "--iterations", "80"])
    history = mgrl.train(cfg, log=None)
    assert history["gamma"][-1] > cfg.gamma_star > cfg.gamma, history["gamma"][-1]

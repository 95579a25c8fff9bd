"""Every code block of the README runs in this test, so that a snippet cannot rot.

A block runs as follows, chosen by an HTML comment (invisible on GitHub and on a package
index) on the line just before its opening fence:

- ``python``, no comment: a complete program, run as it is.
- ``<!-- readme-test: setup NAME -->``: an excerpt; ``SETUPS[NAME]`` below defines the names
  it uses (networks, data), then the block runs.
- ``<!-- readme-test: dry-run: REASON -->`` (``bash``): each command is checked, not run: a
  ``make`` target exists, an example's flags are accepted by its own parser, a script exists
  and its parser accepts the flags, an extra exists. REASON says why it is not run (minutes of
  training, several processes).
- ``<!-- readme-test: skip: REASON -->``: deliberately not runnable (placeholders for another
  machine, a fragment of a call); REASON is required.
- ``text`` blocks are program output, not code.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MARKER = re.compile(r"<!--\s*readme-test:\s*(setup|dry-run|skip)\b\s*:?\s*(.*?)\s*-->")


@dataclass
class Block:
    index: int
    line: int
    lang: str
    code: str
    section: str
    mode: str  # "run", "setup", "dry-run", "skip", "output"
    arg: str


def parse_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    lines = text.splitlines()
    section, i = "", 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            section = line[3:].strip()
        fence = re.match(r"^```(\w*)\s*$", line)
        if not fence:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        lang, code = fence.group(1), "\n".join(lines[i + 1:end]) + "\n"
        marker = MARKER.search(lines[i - 1]) if i > 0 else None
        if marker:
            mode, arg = marker.group(1), marker.group(2)
        else:
            mode, arg = ("output", "") if lang in ("text", "") else ("run", "")
        blocks.append(Block(len(blocks), i + 1, lang, code, section, mode, arg))
        i = end + 1
    return blocks


BLOCKS = parse_blocks(README.read_text())

_PAI_RESET = """
import contextlib, io
with contextlib.redirect_stdout(io.StringIO()):  # perforatedai prints on import
    from perforatedai import globals_perforatedai as _GPA
_GPA.pc, _GPA.pai_tracker = _GPA.PAIConfig(), []
"""

# Names the excerpts use, defined the way the surrounding README text describes them.
SETUPS = {
    # the drop-in swap: a TorchRL actor and critic, and TorchRL's estimator enum
    "ppo_networks": """
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torchrl.modules import ProbabilisticActor, ValueOperator
from torchrl.objectives import ValueEstimators

torch.manual_seed(0)
actor = ProbabilisticActor(TensorDictModule(torch.nn.Linear(4, 2), in_keys=["observation"], out_keys=["logits"]),
                           in_keys=["logits"], distribution_class=torch.distributions.Categorical,
                           return_log_prob=True)
critic = ValueOperator(torch.nn.Linear(4, 1), in_keys=["observation"])
""",
    # the functional_call meta-gradient excerpt: the networks above and two collected batches
    "ppo_batches": """
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torchrl.modules import ProbabilisticActor, ValueOperator

torch.manual_seed(0)
actor = ProbabilisticActor(TensorDictModule(torch.nn.Linear(4, 2), in_keys=["observation"], out_keys=["logits"]),
                           in_keys=["logits"], distribution_class=torch.distributions.Categorical,
                           return_log_prob=True)
critic = ValueOperator(torch.nn.Linear(4, 1), in_keys=["observation"])

def batch(n=32):
    with torch.no_grad():
        td = actor(TensorDict(observation=torch.randn(n, 4), batch_size=[n]))
    td["advantage"] = torch.randn(n, 1)
    td["value_target"] = torch.randn(n, 1)
    return td

data, next_data = batch(), batch()
""",
    # inside train() of examples/ppo_ddp.py, for one rank
    "ppo_ddp_rank": """
import sys
sys.path.insert(0, str(ROOT / "examples"))
import argparse
from ppo_cartpole import make_env
args = argparse.Namespace(seed=0)
rank, frames_per_batch, iterations = 0, 64, 1
env = make_env(1, 0)
from ppo_cartpole import make_models
_, _, actor, _ = make_models(env, 8)
env.close()
""",
    # the PerforatedAI section: plain networks for a group (PAI's global state is reset first)
    "pai_networks": _PAI_RESET + """
import torch
from torch import nn

torch.manual_seed(0)
actor = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
critic = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
class _CriticLoss:  # built at backward time: the group adds PAI's wrappers to the critic first
    def backward(self, inputs):
        critic(torch.randn(16, 4)).pow(2).mean().backward(inputs=inputs)

critic_loss = _CriticLoss()
mean_return = 1.0
""",
    # a group over a TorchRL actor and critic, after one training step
    "pai_group": _PAI_RESET + """
import torch
from tests.builders import make_nets
from torchrl_functional.pai import NetworkSpec, PAIGroup

nets = make_nets("categorical", seed=0)
group = PAIGroup("ppo", {"actor": NetworkSpec(nets.actor, lr=3e-4), "critic": NetworkSpec(nets.critic, lr=1e-3)},
                 directory="runs/ppo_pai")
from tensordict import TensorDict
td = TensorDict(observation=torch.randn(8, 5), batch_size=[8])
group.zero_grad()
loss = group["critic"](td)["state_value"].pow(2).mean() + group["actor"](td)["logits"].pow(2).mean()
loss.backward()
group.step()
""",
}
TEARDOWNS = {"ppo_ddp_rank": "collector.shutdown()\n", "pai_group": "group.close()\n"}
SLOW_SETUPS = {"ppo_ddp_rank"}  # starts worker processes


def _params():
    params = []
    for block in BLOCKS:
        marks = []
        if block.mode == "setup" and block.arg in SLOW_SETUPS:
            marks.append(pytest.mark.slow)
        params.append(pytest.param(block, id=f"line{block.line}-{block.lang or 'plain'}-{block.mode}", marks=marks))
    return params


def _example_parser(script: str):
    sys.path.insert(0, str(ROOT / "examples"))
    module = __import__(script)
    if hasattr(module, "build_parser"):
        return module.build_parser().parse_args
    return module.parse_args


def _commands(code: str) -> list[list[str]]:
    joined = re.sub(r"\\\n\s*", " ", code)
    commands = []
    for line in joined.splitlines():
        line = line.split(" #")[0].strip()
        if line and not line.startswith("#"):
            commands.append(shlex.split(line))
    return commands


def _expand_braces(word: str) -> list[str]:
    match = re.search(r"\{([^{}]*,[^{}]*)\}", word)
    if not match:
        return [word]
    return [w for part in match.group(1).split(",")
            for w in _expand_braces(word[:match.start()] + part + word[match.end():])]


def check_command(argv: list[str]) -> None:
    """Dry run of one shell command: everything it names exists and accepts what it is given."""
    while argv and re.match(r"^\w+=", argv[0]):  # VAR=value prefixes
        argv = argv[1:]
    tool, rest = argv[0], argv[1:]
    if tool == "make":
        targets = re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), flags=re.M)
        for target in rest:
            assert target in targets, f"make {target}: no such target"
        return
    if tool == "pip":
        extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
        for word in rest:
            match = re.match(r"torchrl-functional\[(.*)\]", word)
            if match:
                assert set(match.group(1).split(",")) <= set(extras), word
        return
    if tool in ("python", "torchrun"):
        script_at = next(i for i, word in enumerate(rest) if word.endswith(".py"))
        script, args = ROOT / rest[script_at], [w for word in rest[script_at + 1:] for w in _expand_braces(word)]
        assert script.is_file(), f"{script} does not exist"
        if script.parent.name == "examples":
            try:
                _example_parser(script.stem)(args)
            except SystemExit as exit_:
                raise AssertionError(f"{' '.join(argv)}: the example rejects these flags ({exit_.code})") from None
            return
        proc = subprocess.run([sys.executable, str(script), *args, "--help"], cwd=ROOT, capture_output=True,
                              text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return
    raise AssertionError(f"no dry run for {tool!r}: mark the block 'skip' with a reason, or teach check_command")


@pytest.mark.parametrize("block", _params())
def test_readme_block(block: Block, monkeypatch, tmp_path):
    if block.mode == "output":
        return
    if block.mode == "skip":
        assert block.arg, f"README line {block.line}: a skipped block must say why"
        pytest.skip(f"README line {block.line}: {block.arg}")
    if block.mode == "dry-run":
        assert block.arg, f"README line {block.line}: a dry-run block must say why it is not run"
        for argv in _commands(block.code):
            check_command(argv)
        return
    assert block.lang == "python", f"README line {block.line}: a {block.lang} block needs a marker"
    monkeypatch.chdir(tmp_path)  # whatever a snippet writes (runs/...) lands here
    namespace: dict = {"__name__": "__readme__", "ROOT": ROOT}
    if block.mode == "setup":
        assert block.arg in SETUPS, f"README line {block.line}: unknown setup {block.arg!r}"
        exec(compile(SETUPS[block.arg], f"setup {block.arg}", "exec"), namespace)
    exec(compile(block.code, f"README.md line {block.line}", "exec"), namespace)
    if block.arg in TEARDOWNS:
        exec(TEARDOWNS[block.arg], namespace)


def test_every_block_is_accounted_for():
    """A block is run, set up and run, dry-run, skipped with a reason, or program output."""
    assert len(BLOCKS) >= 10
    assert {b.mode for b in BLOCKS} <= {"run", "setup", "dry-run", "skip", "output"}
    for block in BLOCKS:
        if block.mode in ("skip", "dry-run"):
            assert block.arg, f"README line {block.line}: {block.mode} without a reason"
        if block.mode == "output":
            assert block.lang in ("text", ""), f"README line {block.line}: unmarked {block.lang} block"
    assert sum(b.mode == "run" for b in BLOCKS) >= 2  # the ten-line example and the meta-gradient snippet


def test_dry_run_catches_a_bad_flag_and_a_missing_target():
    with pytest.raises(AssertionError, match="rejects these flags"):
        check_command(["python", "examples/ppo_cartpole.py", "--loss", "nonsense"])
    with pytest.raises(AssertionError, match="no such target"):
        check_command(["make", "deploy"])
    check_command(["python", "examples/ppo_cartpole.py", "--loss", "module", "--seed", "0"])

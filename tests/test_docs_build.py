"""The API reference (docs/mkdocs.yml, mkdocstrings) builds in strict mode, and strict mode
does fail on a broken docstring (so this test guards every public docstring)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "docs" / "mkdocs.yml"


def _mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
    )


@pytest.mark.slow
def test_api_reference_builds_strict(tmp_path):
    proc = _mkdocs_build(CONFIG, tmp_path / "site")
    assert proc.returncode == 0, proc.stderr[-4000:]
    functional = (tmp_path / "site" / "functional.html").read_text()
    modules = (tmp_path / "site" / "modules.html").read_text()
    errors = (tmp_path / "site" / "errors.html").read_text()
    pai = (tmp_path / "site" / "pai.html").read_text()
    import torchrl_functional.errors
    import torchrl_functional.functional
    import torchrl_functional.modules
    import torchrl_functional.pai

    # every public name has its entry, with its docstring's first line
    for module, page in ((torchrl_functional.functional, functional), (torchrl_functional.modules, modules),
                         (torchrl_functional.errors, errors), (torchrl_functional.pai, pai)):
        for name in module.__all__:
            assert f'id="{module.__name__}.{name}"' in page, name
    # the arguments appended to the PPO docstrings at import time are rendered
    assert "samples_mc_entropy" in functional.split('id="torchrl_functional.functional.clip_ppo_loss"')[1]


@pytest.mark.parametrize("entry,warning", [
    ("y: misspelt parameter.", "Parameter 'y' does not appear in the function signature"),
    ("x, z: a combined entry with a misspelt name.", "Parameter 'z' does not appear in the function signature"),
])
def test_strict_build_fails_on_a_broken_docstring(tmp_path, entry, warning):
    pkg = tmp_path / "src"
    pkg.mkdir()
    (pkg / "brokendoc.py").write_text(
        f'def f(x: int) -> int:\n    """Add one.\n\n    Args:\n        {entry}\n    """\n'
        "    return x + 1\n"
    )
    (tmp_path / "pages").mkdir()
    (tmp_path / "pages" / "index.md").write_text("# broken\n\n::: brokendoc\n")
    cfg = yaml.safe_load(CONFIG.read_text())
    cfg["docs_dir"] = str(tmp_path / "pages")
    cfg["nav"] = [{"Home": "index.md"}]
    handler = cfg["plugins"][1]["mkdocstrings"]["handlers"]["python"]
    handler["paths"] = [str(pkg)]
    handler["options"]["extensions"] = [str(ROOT / "docs" / "griffe_project_style.py") + ":ProjectDocstrings"]
    config = tmp_path / "mkdocs.yml"
    config.write_text(yaml.safe_dump(cfg))
    proc = _mkdocs_build(config, tmp_path / "site")
    assert proc.returncode != 0
    assert warning in proc.stderr


def _style():
    import importlib.util

    spec = importlib.util.spec_from_file_location("griffe_project_style", ROOT / "docs" / "griffe_project_style.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_combined_entries_are_split_one_name_each():
    doc = (
        "Sum, with commas: kept.\n\n"
        "Args:\n"
        "    x: first.\n"
        "    gamma, lmbda (float): discount and trace decay,\n"
        "        numbers or tensors.\n"
        "\n"
        "    loss_function, value_estimator,\n"
        "    keys: as :func:`~pkg.mod.dqn_loss`.\n"
        "\n"
        "Returns:\n"
        "    a, b: not a parameter list.\n"
    )
    expected = (
        "Sum, with commas: kept.\n\n"
        "Args:\n"
        "    x: first.\n"
        "    gamma (float): discount and trace decay,\n"
        "        numbers or tensors.\n"
        "    lmbda (float): discount and trace decay,\n"
        "        numbers or tensors.\n"
        "\n"
        "    loss_function: as :func:`~pkg.mod.dqn_loss`.\n"
        "    value_estimator: as :func:`~pkg.mod.dqn_loss`.\n"
        "    keys: as :func:`~pkg.mod.dqn_loss`.\n"
        "\n"
        "Returns:\n"
        "    a, b: not a parameter list.\n"
    )
    assert _style().split_combined_entries(doc) == expected.rstrip("\n")


def test_sphinx_roles_become_inline_code():
    style = _style()
    assert style.roles_to_code("see :func:`~a.b.clip_ppo_loss` and :class:`PPOKeys`") == (
        "see `clip_ppo_loss` and `PPOKeys`"
    )
    assert style.roles_to_code(":py:mod:`torchrl_functional.functional`") == "`torchrl_functional.functional`"

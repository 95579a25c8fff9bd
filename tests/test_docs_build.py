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
    import torchrl_functional.errors
    import torchrl_functional.functional
    import torchrl_functional.modules

    # every public name has its entry, with its docstring's first line
    for module, page in ((torchrl_functional.functional, functional), (torchrl_functional.modules, modules),
                         (torchrl_functional.errors, errors)):
        for name in module.__all__:
            assert f'id="{module.__name__}.{name}"' in page, name
    # the arguments appended to the PPO docstrings at import time are rendered
    assert "samples_mc_entropy" in functional.split('id="torchrl_functional.functional.clip_ppo_loss"')[1]


def test_strict_build_fails_on_a_broken_docstring(tmp_path):
    pkg = tmp_path / "src"
    pkg.mkdir()
    (pkg / "brokendoc.py").write_text(
        'def f(x: int) -> int:\n    """Add one.\n\n    Args:\n        y: misspelt parameter.\n    """\n'
        "    return x + 1\n"
    )
    (tmp_path / "pages").mkdir()
    (tmp_path / "pages" / "index.md").write_text("# broken\n\n::: brokendoc\n")
    cfg = yaml.safe_load(CONFIG.read_text())
    cfg["docs_dir"] = str(tmp_path / "pages")
    cfg["nav"] = [{"Home": "index.md"}]
    cfg["plugins"][1]["mkdocstrings"]["handlers"]["python"]["paths"] = [str(pkg)]
    config = tmp_path / "mkdocs.yml"
    config.write_text(yaml.safe_dump(cfg))
    proc = _mkdocs_build(config, tmp_path / "site")
    assert proc.returncode != 0
    assert "Parameter 'y' does not appear in the function signature" in proc.stderr

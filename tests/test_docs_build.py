"""The API reference (docs/mkdocs.yml, mkdocstrings) builds in strict mode, and strict mode
does fail on a broken docstring (so this test guards every public docstring)."""

from __future__ import annotations

import inspect
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


PAGES = ("index", "onpolicy", "offpolicy", "llm", "imitation", "dreamer_v3", "value", "kernels", "modules", "comparison",
         "errors", "pai", "model_based", "exploration")


@pytest.mark.slow
def test_api_reference_builds_strict(tmp_path):
    proc = _mkdocs_build(CONFIG, tmp_path / "site")
    assert proc.returncode == 0, proc.stderr[-4000:]
    pages = {name: (tmp_path / "site" / f"{name}.html").read_text() for name in PAGES}
    site = "".join(pages.values())
    import torchrl_functional.errors
    import torchrl_functional.functional
    import torchrl_functional.modules
    import torchrl_functional.pai

    # every public name has its entry somewhere, exactly once
    for module in (torchrl_functional.functional, torchrl_functional.modules, torchrl_functional.errors,
                   torchrl_functional.pai):
        for name in module.__all__:
            assert site.count(f'id="{module.__name__}.{name}"') == 1, name
    # a page per family: each loss of the registry renders on a loss page beside its keys class
    # (the on-policy and replay losses on theirs), its drop-in class on the modules page
    from tests.specs import SPECS, tagged

    reference = {"index", "value", "kernels", "modules", "comparison", "errors", "pai"}
    for spec in SPECS:
        (page,) = [p for p in PAGES if f'id="torchrl_functional.functional.{spec.name}"' in pages[p]]
        assert page not in reference, (spec.name, page)
        assert f'id="torchrl_functional.functional.{spec.keys.__name__}"' in pages[page], spec.name
        if spec.module is not None:
            assert f'id="torchrl_functional.modules.{spec.module.__name__}"' in pages["modules"], spec.name
    for tag, page in (("on_policy", "onpolicy"), ("replay", "offpolicy")):
        for spec in tagged(tag):
            assert f'id="torchrl_functional.functional.{spec.name}"' in pages[page], spec.name
    for name in ("td3_target_action", "SACKeys"):
        assert f'id="torchrl_functional.functional.{name}"' in pages["offpolicy"], name
    for name in ("group_relative_advantage", "GRPOKeys"):
        assert f'id="torchrl_functional.functional.{name}"' in pages["llm"], name
    for name in ("generalized_advantage_estimate", "td_lambda_advantage_estimate", "vtrace_advantage_estimate"):
        assert f'id="torchrl_functional.functional.{name}"' in pages["value"], name
    for name in ("clipped_surrogate_loss", "distance_loss", "entropy", "kl_divergence", "check_finite"):
        assert f'id="torchrl_functional.functional.{name}"' in pages["kernels"], name
    # every argument of the on-policy losses is documented in their source and rendered (in the
    # parameter list after the signature)
    for spec in tagged("on_policy"):
        section = pages["onpolicy"].split(f'id="torchrl_functional.functional.{spec.name}"')[1]
        described = section.split('<div class="doc doc-object')[0].split("</code></pre></div>", 1)[1]
        for arg in inspect.signature(spec.function).parameters.values():
            name = f"**{arg.name}" if arg.kind is arg.VAR_KEYWORD else arg.name
            assert f"<code>{name}</code>" in described, (spec.name, name)
    # the options declared once for a family (``**options: Unpack[...]``): every field is
    # described in the Attributes of the class declaring it
    F = torchrl_functional.functional
    for page, family in (("onpolicy", (F.OnPolicyOptions, F.A2COptions, F.PPOOptions, F.MultiAgentPPOOptions)),
                         ("offpolicy", (F.ReplayOptions, F.OffPolicyOptions, F.PrioritizedReplayOptions,
                                        F.PrioritizedOffPolicyOptions)),
                         ("llm", (F.GRPOOptions,)), ("dreamer_v3", (F.DreamerV3ValueOptions,))):
        for field in family[-1].__annotations__:
            assert any(f'title="torchrl_functional.functional.{c.__name__}.{field}"' in pages[page]
                       for c in family), (page, field)
    import torchrl_functional.functional.ppo as ppo_module
    assert "__doc__" not in inspect.getsource(ppo_module)  # no docstring glued on at import
    # drop-in classes render with TorchRL's constructor signature, not (*args, **kwargs)
    for name in torchrl_functional.modules.__all__:
        entry = pages["modules"].split(f'id="torchrl_functional.modules.{name}"')[1][:20_000]
        signature = entry.split("Bases:")[0]
        replaced = next(c for c in getattr(torchrl_functional.modules, name).__mro__[1:]
                        if c.__module__.startswith("torchrl.") and c.__name__ == name)
        first = list(inspect.signature(replaced.__init__).parameters)[1]  # TorchRL's first argument
        assert first in signature, (name, first)
        assert ">args</span>" not in signature, name  # (*args, **kwargs) would render as "args"
        assert f"<code>{name}</code>" in pages["comparison"], name
    # our own arguments join TorchRL's signature, inherited ones too; TorchRL's are all there
    for spec in SPECS:
        if spec.module is None:
            continue
        name = spec.module.__name__
        signature = pages["modules"].split(f'id="torchrl_functional.modules.{name}"')[1].split("Bases:")[0]
        theirs = [a for a in inspect.signature(spec.torchrl).parameters if a not in ("args", "kwargs")]
        ours = [a for a in inspect.signature(spec.module).parameters if a not in ("args", "kwargs")]
        for arg in dict.fromkeys(theirs + ours):
            assert arg in signature, (name, arg)
    # reStructuredText literal blocks become code blocks, not "rest::" followed by loose text
    assert "keep the rest::" not in pages["modules"]
    # the modules page opens with the import of a drop-in class
    classes = [s.module.__name__ for s in SPECS if s.module is not None]
    assert any(f"from torchrl_functional.modules import {c}" in pages["modules"].split("<code")[1] for c in classes) \
        or any("torchrl_functional.modules" in block and any(c in block for c in classes)
               for block in pages["modules"].split("<pre")[1:4])


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
        "    keys: as :func:`~pkg.mod.other_loss`.\n"
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
        "    loss_function: as :func:`~pkg.mod.other_loss`.\n"
        "    value_estimator: as :func:`~pkg.mod.other_loss`.\n"
        "    keys: as :func:`~pkg.mod.other_loss`.\n"
        "\n"
        "Returns:\n"
        "    a, b: not a parameter list.\n"
    )
    assert _style().split_combined_entries(doc) == expected.rstrip("\n")


def test_literal_blocks_become_fenced_code():
    style = _style()
    doc = "Rename entries::\n\n    keys = PPOKeys()\n    loss(td, keys=keys)\n\nAfter the block."
    assert style.literal_blocks_to_fences(doc) == (
        "Rename entries:\n\n```python\nkeys = PPOKeys()\nloss(td, keys=keys)\n```\n\nAfter the block."
    )
    assert style.literal_blocks_to_fences("Ends with ::\n\n    x = 1") == "Ends with\n\n```python\nx = 1\n```"
    untouched = "Args:\n    x: a number.\n"
    assert style.literal_blocks_to_fences(untouched) == untouched.rstrip("\n")


def test_sphinx_roles_become_inline_code():
    style = _style()
    assert style.roles_to_code("see :func:`~a.b.some_loss` and :class:`PPOKeys`") == (
        "see `some_loss` and `PPOKeys`"
    )
    assert style.roles_to_code(":py:mod:`torchrl_functional.functional`") == "`torchrl_functional.functional`"

"""Every public function documents every parameter in an ``Args:`` section, with shapes where it
takes tensors; every drop-in class names the function that computes it, renders with its TorchRL
constructor signature and has an entry on the comparison page. One test, every offender listed.

Public: the names in ``torchrl_functional.__all__``, ``torchrl_functional.functional.__all__`` and
``torchrl_functional.modules.__all__``.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
from pathlib import Path

import torchrl_functional
import torchrl_functional.functional
import torchrl_functional.modules

ROOT = Path(__file__).resolve().parents[1]
SECTION = re.compile(r"^(Args|Arguments|Parameters|Keyword Args):\s*$")
ENTRY = re.compile(r"^(\s+)\**([A-Za-z_]\w*)(\s*\([^)]*\))?:")
SHAPE = re.compile(r"``\[[^`]*\]``")  # e.g. ``[*B, 1]``, ``[E, *B, N]``, ``[]``


def _style():
    spec = importlib.util.spec_from_file_location("griffe_project_style", ROOT / "docs" / "griffe_project_style.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


STYLE = _style()


def documented_parameters(doc: str) -> set[str]:
    """Names with an entry in the docstring's Args sections (``a, b: ...`` counts for both)."""
    names: set[str] = set()
    inside, indent = False, None
    for line in STYLE.split_combined_entries(doc).splitlines():
        if SECTION.match(line):
            inside, indent = True, None
            continue
        if not inside:
            continue
        if line.strip() and not line.startswith(" "):
            inside = False
            continue
        match = ENTRY.match(line)
        if match and (indent is None or len(match.group(1)) == indent):
            indent = len(match.group(1))
            names.add(match.group(2))
    return names


def _takes_tensors(sig: inspect.Signature) -> bool:
    return any("Tensor" in str(p.annotation) for p in sig.parameters.values())


def function_problems(path: str, fn) -> list[str]:
    doc = inspect.getdoc(fn) or ""
    if not doc.strip():
        return [f"{path}: no docstring"]
    problems = []
    sig = inspect.signature(fn)
    params = [p.name for p in sig.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    missing = [name for name in params if name not in documented_parameters(doc)]
    if missing:
        problems.append(f"{path}: Args lack {', '.join(missing)}")
    if _takes_tensors(sig) and not SHAPE.search(doc):
        problems.append(f"{path}: takes tensors but gives no shape (e.g. ``[*B, 1]``)")
    return problems


def _comparison_sections() -> dict[str, str]:
    text = (ROOT / "docs" / "reference" / "comparison.md").read_text()
    parts = re.split(r"^## ", text, flags=re.M)[1:]
    return {part.splitlines()[0]: part for part in parts}


def module_problems(name: str, cls, sections: dict[str, str]) -> list[str]:
    path = f"torchrl_functional.modules.{name}"
    doc = inspect.getdoc(cls) or ""
    problems = []
    functional = re.search(r"torchrl_functional\.functional\.(\w+)`", doc)
    torchrl_names = (f"torchrl.objectives.{name}", f"torchrl.objectives.llm.{name}")
    if not any(n in doc for n in torchrl_names) or functional is None:
        problems.append(f"{path}: the docstring must name torchrl.objectives.{name} and the function computing it")
    elif functional.group(1) not in torchrl_functional.functional.__all__:
        problems.append(f"{path}: names {functional.group(1)}, not a public function")
    owner = STYLE.torchrl_signature_owner(cls)
    # the TorchRL class replaced, or the TorchRL base whose constructor it inherits (a variant's is its base's)
    replaced = next((c for c in cls.__mro__[1:] if c.__module__.startswith("torchrl.") and c.__name__ == name), None)
    if owner is None or f"{owner.__module__}.{owner.__name__}".split(".")[:2] != ["torchrl", "objectives"] \
            or replaced is None or not issubclass(replaced, owner):
        problems.append(f"{path}: no TorchRL constructor signature to render (found {owner})")
    section = next((text for title, text in sections.items() if re.search(rf"`{name}`", title)), None)
    if section is None:
        problems.append(f"{path}: no section on docs/reference/comparison.md")
    elif not SHAPE.search(section) and not re.search(r"`\[[^`]*\]`", section):
        problems.append(f"{path}: its comparison section gives no input shapes")
    return problems


def test_every_public_name_documents_its_arguments_and_shapes():
    problems: list[str] = []
    seen = set()
    for module in (torchrl_functional, torchrl_functional.functional):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj) and obj not in seen:
                seen.add(obj)
                problems += function_problems(f"{module.__name__}.{name}", obj)
    sections = _comparison_sections()
    for name in torchrl_functional.modules.__all__:
        problems += module_problems(name, getattr(torchrl_functional.modules, name), sections)
    assert not problems, "\n" + "\n".join(problems)


def test_the_check_finds_what_is_missing():
    def no_args(x):
        """Does something."""

    def no_shape(td, gamma: float):
        """Does something.

        Args:
            td: the input.
            gamma: a discount.
        """

    no_shape.__annotations__["td"] = "TensorDictBase"

    def combined(gamma, lmbda):
        """Does something.

        Args:
            gamma, lmbda: discount and trace decay.
        """

    assert function_problems("f", no_args) == ["f: Args lack x"]
    assert function_problems("g", no_shape) == ["g: takes tensors but gives no shape (e.g. ``[*B, 1]``)"]
    assert function_problems("h", combined) == []
    assert function_problems("k", lambda: None) == ["k: no docstring"]

"""Griffe extension for two habits of the project's docstrings, applied before Griffe parses them.

1. One entry may document several names, ``gamma, lmbda: ...``. The project writes ``Args:``/``Attributes:`` entries that share a description as one entry
(``done, terminated: bool, same shape``; a long list of names may wrap onto the next line). Google style has one name per entry, so before
Griffe parses a docstring this splits each such entry into one entry per name with the
same description. Every name is then checked against the signature as usual: a misspelt
name still fails the strict build.

2. Sphinx roles (``:func:`~torchrl_functional.functional.clip_ppo_loss```, ``:class:`PPOKeys```)
   become inline code (``clip_ppo_loss``, ``PPOKeys``): a ``~`` keeps the last component only.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

SECTION = re.compile(r"^(\s*)(Args|Arguments|Parameters|Attributes|Other Parameters|Keyword Args):\s*$")
NAMES_GO_ON = re.compile(r"^\s*[A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*\s*,\s*$")  # "a, b," then "c: ..."
COMBINED = re.compile(r"^(\s*)([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)+)(\s*\([^)]*\))?:(.*)$")


ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|obj|data|exc|const):`(~?)([^`]+)`")


def _role_to_code(match: re.Match) -> str:
    tilde, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"


def roles_to_code(text: str) -> str:
    """``:func:`~a.b.c``` -> ```c```, ``:class:`x``` -> ```x```."""
    return ROLE.sub(_role_to_code, text)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def split_combined_entries(text: str) -> str:
    """``a, b: text`` entries of parameter/attribute sections become ``a: text`` and ``b: text``."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        header = SECTION.match(lines[i])
        out.append(lines[i])
        i += 1
        if not header:
            continue
        section_indent = len(header.group(1))
        item_indent = None
        while i < len(lines):
            line = lines[i]
            if line.strip() and _indent(line) <= section_indent:
                break  # end of section
            if not line.strip() or (item_indent is not None and _indent(line) > item_indent):
                out.append(line)
                i += 1
                continue
            item_indent = _indent(line) if item_indent is None else item_indent
            i += 1
            while NAMES_GO_ON.match(line) and i < len(lines) and lines[i].strip():
                line = f"{line.rstrip()} {lines[i].strip()}"  # a list of names wrapped over lines
                i += 1
            block = [line]  # an entry and its continuation lines
            while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > item_indent):
                if not lines[i].strip() and (i + 1 >= len(lines) or _indent(lines[i + 1]) <= item_indent):
                    break
                block.append(lines[i])
                i += 1
            match = COMBINED.match(block[0])
            if not match:
                out.extend(block)
                continue
            indent, names, annotation, rest = match.groups()
            for name in (n.strip() for n in names.split(",")):
                out.append(f"{indent}{name}{annotation or ''}:{rest}")
                out.extend(block[1:])
    return "\n".join(out)


class ProjectDocstrings(griffe.Extension):
    """Applies :func:`split_combined_entries` and :func:`roles_to_code` to every docstring."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = roles_to_code(split_combined_entries(obj.docstring.value))

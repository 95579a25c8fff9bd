"""Griffe extension for two habits of the project's docstrings, applied before Griffe parses them.

1. One entry may document several names, ``gamma, lmbda: ...``. The project writes ``Args:``/``Attributes:`` entries that share a description as one entry
(``done, terminated: bool, same shape``; a long list of names may wrap onto the next line). Google style has one name per entry, so before
Griffe parses a docstring this splits each such entry into one entry per name with the
same description. Every name is then checked against the signature as usual: a misspelt
name still fails the strict build.

2. Sphinx roles (``:func:`~torchrl_functional.functional.clip_ppo_loss```, ``:class:`PPOKeys```)
   become inline code (``clip_ppo_loss``, ``PPOKeys``): a ``~`` keeps the last component only.

3. reStructuredText literal blocks (a paragraph ending in ``::`` followed by an indented block)
   become fenced Python code blocks; Markdown would show the ``::`` and run the code into the text.

4. The drop-in classes of ``torchrl_functional.modules`` define ``__init__(self, *args, **kwargs)``
   and pass everything to the TorchRL class they subclass; their rendered signature is that
   TorchRL class's (``ClipPPOLoss(actor_network=None, critic_network=None, *, clip_epsilon=0.2, ...)``),
   not ``ClipPPOLoss(*args, **kwargs)``.
"""

from __future__ import annotations

import importlib
import inspect
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


LITERAL_INTRO = re.compile(r"^(\s*)(.*?)(\s?)::\s*$")


def literal_blocks_to_fences(text: str) -> str:
    """``Example::`` + blank line + indented block -> ``Example:`` + a fenced Python block."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = LITERAL_INTRO.match(lines[i])
        nxt = i + 1
        while nxt < len(lines) and not lines[nxt].strip():
            nxt += 1
        if not match or nxt >= len(lines) or _indent(lines[nxt]) <= _indent(lines[i]) or nxt == i + 1:
            out.append(lines[i])
            i += 1
            continue
        indent, body, space = match.groups()
        if body:
            out.append(f"{indent}{body}{'' if space else ':'}")
            out.append("")
        block_indent = _indent(lines[nxt])
        block: list[str] = []
        for line in lines[nxt:]:
            if line.strip() and _indent(line) < block_indent:
                break
            block.append(line[block_indent:] if line.strip() else "")
        while block and not block[-1]:
            block.pop()
        out.append(f"{indent}```python")
        out.extend(f"{indent}{line}" if line else "" for line in block)
        out.append(f"{indent}```")
        i = nxt + len(block)
    return "\n".join(out)


def torchrl_signature_owner(cls: type) -> type | None:
    """The first class in ``cls``'s MRO outside this package whose ``__init__`` has a real signature."""
    for base in cls.__mro__[1:]:
        if base.__module__.startswith("torchrl_functional") or "__init__" not in vars(base):
            continue
        params = list(inspect.signature(base.__init__).parameters.values())[1:]
        if [p.kind for p in params] != [inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD]:
            return base
    return None


_KINDS = {
    inspect.Parameter.POSITIONAL_ONLY: griffe.ParameterKind.positional_only,
    inspect.Parameter.POSITIONAL_OR_KEYWORD: griffe.ParameterKind.positional_or_keyword,
    inspect.Parameter.VAR_POSITIONAL: griffe.ParameterKind.var_positional,
    inspect.Parameter.KEYWORD_ONLY: griffe.ParameterKind.keyword_only,
    inspect.Parameter.VAR_KEYWORD: griffe.ParameterKind.var_keyword,
}


def _griffe_parameter(p: inspect.Parameter) -> griffe.Parameter:
    annotation = None
    if p.annotation is not inspect.Parameter.empty:
        annotation = p.annotation if isinstance(p.annotation, str) else inspect.formatannotation(p.annotation)
    default = None
    if p.default is not inspect.Parameter.empty:
        default = getattr(p.default, "__name__", None) or repr(p.default)
    return griffe.Parameter(p.name, annotation=annotation, kind=_KINDS[p.kind], default=default)


class ProjectDocstrings(griffe.Extension):
    """Applies :func:`split_combined_entries`, :func:`roles_to_code` and
    :func:`literal_blocks_to_fences` to every docstring, and gives the drop-in classes their
    TorchRL signature."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = literal_blocks_to_fences(
                roles_to_code(split_combined_entries(obj.docstring.value)))

    def on_class(self, *, cls: griffe.Class, **kwargs: Any) -> None:
        if not cls.path.startswith("torchrl_functional.modules."):
            return
        init = cls.members.get("__init__")
        if isinstance(init, griffe.Function) and [p.kind for p in init.parameters][1:] != [
                griffe.ParameterKind.var_positional, griffe.ParameterKind.var_keyword]:
            return  # a signature of its own
        module_name, _, name = cls.path.rpartition(".")
        owner = torchrl_signature_owner(getattr(importlib.import_module(module_name), name))
        if owner is None:
            return
        parameters = griffe.Parameters(*(_griffe_parameter(p) for p in inspect.signature(owner.__init__).parameters.values()))
        if isinstance(init, griffe.Function):
            init.parameters = parameters
        else:  # inherited as is: show TorchRL's signature on the class
            cls.set_member("__init__", griffe.Function("__init__", parameters=parameters, parent=cls))

"""Everything that imports or calls ``perforatedai`` goes through here.

- :func:`import_pai` imports the package on first use (so that ``import torchrl_functional``
  works without it) and silences its import-time prints.
- :func:`pai_call` is the context every PAI call runs in: the working directory is the
  group's output directory (PAI writes ``./<save_name>/...`` relative to it), PAI's prints
  go to a log file instead of the terminal, and ``pdb.set_trace`` / ``breakpoint`` /
  ``sys.exit`` raise :class:`~torchrl_functional.pai.errors.PAIInterruptError` instead of
  waiting on stdin or ending the process.

The working-directory switch is process-wide: do not call a group from several threads.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

from .errors import PAIInterruptError, PAINotInstalledError

__all__ = ["import_pai", "pai_call", "PAIModules", "SUPPORTED_VERSIONS"]

#: Versions of perforatedai this adapter was written and tested against.
SUPPORTED_VERSIONS = ">=3.2.9,<3.3"



class PAIModules(NamedTuple):
    """The parts of perforatedai the adapter uses."""

    gpa: ModuleType  # globals_perforatedai: GPA.pc (config) and GPA.pai_tracker
    upa: ModuleType  # utils_perforatedai: perforate_model, load_net_from_dict, ...
    neuron_module: type  # PAINeuronModule: a layer with dendrites
    tracked_module: type  # TrackedNeuronModule: a module PAI tracks without dendrites


_MODULES: PAIModules | None = None


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def import_pai() -> PAIModules:
    """perforatedai's modules, imported once with their import-time prints silenced.

    Raises:
        PAINotInstalledError: ``perforatedai`` is missing or older than 3.2.9.
    """
    global _MODULES
    if _MODULES is not None:
        return _MODULES
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gpa = importlib.import_module("perforatedai.globals_perforatedai")
            upa = importlib.import_module("perforatedai.utils_perforatedai")
            pam = importlib.import_module("perforatedai.modules_perforatedai")
    except ImportError as err:
        raise PAINotInstalledError(
            "torchrl_functional.pai needs the perforatedai package "
            f"(perforatedai{SUPPORTED_VERSIONS}); install the extra: "
            "pip install 'torchrl-functional[pai]'"
        ) from err
    try:
        from importlib.metadata import version

        found = version("perforatedai")
    except Exception:  # pragma: no cover - metadata missing in odd installs
        found = None
    if found is not None:
        v = _version_tuple(found)
        if v < (3, 2, 9):
            raise PAINotInstalledError(
                f"torchrl_functional.pai needs perforatedai{SUPPORTED_VERSIONS}, found {found} "
                "(perforate_model appeared in 3.2.9)"
            )
        if v >= (3, 3):
            warnings.warn(
                f"torchrl_functional.pai was tested with perforatedai{SUPPORTED_VERSIONS}, found {found}",
                stacklevel=2,
            )
    _MODULES = PAIModules(gpa, upa, pam.PAINeuronModule, pam.TrackedNeuronModule)
    return _MODULES


def _tail(buffer: io.StringIO, lines: int = 15) -> str:
    text = buffer.getvalue().strip().splitlines()
    if not text:
        return "(perforatedai printed nothing)"
    return "\n".join("    " + line for line in text[-lines:])


class _Tee(io.TextIOBase):
    def __init__(self, *streams):
        self._streams = streams

    def write(self, text: str) -> int:
        for stream in self._streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self._streams:
            stream.flush()


@contextlib.contextmanager
def pai_call(
    what: str, directory: Path, log_file: Path | None = None, verbose: bool = False
) -> Iterator[io.StringIO]:
    """Run PAI code inside ``directory`` with its output captured and its exits trapped.

    Args:
        what: names the call in error messages (e.g. ``"PAIGroup('ppo').add_score"``).
        directory: working directory for the duration of the call (must exist).
        log_file: PAI's printed output is appended there (created on first use).
        verbose: also echo PAI's output to the terminal.

    Raises:
        PAIInterruptError: PAI called ``pdb.set_trace()``, ``breakpoint()`` or ``sys.exit()``.
    """
    import pdb

    buffer = io.StringIO()

    def _no_debugger(*args, **kwargs):
        raise PAIInterruptError(
            f"{what}: perforatedai tried to open the debugger (pdb.set_trace) after an "
            f"internal check failed; its last output:\n{_tail(buffer)}"
        )

    saved = (pdb.set_trace, sys.breakpointhook)
    old_cwd = os.getcwd()
    stream = _Tee(sys.stdout, buffer) if verbose else buffer
    pdb.set_trace = _no_debugger
    sys.breakpointhook = _no_debugger
    try:
        os.chdir(directory)
        with contextlib.redirect_stdout(stream), warnings.catch_warnings():
            # numpy 2 complains about torch tensors PAI turns into arrays
            warnings.filterwarnings("ignore", message=r"__array__ implementation", category=DeprecationWarning)
            yield buffer
    except SystemExit as exc:
        raise PAIInterruptError(
            f"{what}: perforatedai called sys.exit({exc.code!r}) after an internal check "
            f"failed; its last output:\n{_tail(buffer)}"
        ) from None
    finally:
        os.chdir(old_cwd)
        pdb.set_trace, sys.breakpointhook = saved
        if log_file is not None and buffer.tell():
            try:
                log_file.parent.mkdir(parents=True, exist_ok=True)
                with open(log_file, "a", encoding="utf-8") as fh:
                    fh.write(f"--- {what}\n{buffer.getvalue()}")
            except OSError:  # the log is a convenience; never mask the real outcome
                pass

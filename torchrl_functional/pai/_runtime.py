"""Everything that imports or calls ``perforatedai`` goes through here.

- :func:`import_pai` imports the package on first use (so that ``import torchrl_functional``
  works without it), silences its import-time prints and puts back the matplotlib backend
  it switches to ``Agg`` when the caller had chosen one.
- :func:`pai_call` is the context every PAI call runs in. It changes nothing that other
  threads see: PAI is given absolute paths (no ``chdir``), its prints and the warnings
  shown during the call are captured for the calling thread only (other threads print
  and warn as before; the warning filters are never changed), ``pdb.set_trace`` /
  ``breakpoint`` raise :class:`~torchrl_functional.pai.errors.PAIInterruptError` in the
  calling thread only (elsewhere they behave as usual), ``sys.exit`` inside PAI becomes
  that exception. PAI keeps its state in module
  globals (``GPA.pc``, ``GPA.pai_tracker``), so calls are serialised by one process-wide
  re-entrant lock.

What remains process-wide: while a call runs, ``sys.stdout``, ``warnings.showwarning``,
``pdb.set_trace`` and ``sys.breakpointhook`` are thread-aware forwarders (restored
afterwards, unless someone else replaced them meanwhile); PAI's globals
point at the calling group's state; PAI's optional graphs use pyplot's global state.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

from .errors import PAIInterruptError, PAINotInstalledError

__all__ = ["import_pai", "pai_call", "PAIModules", "SUPPORTED_VERSIONS", "LOCK"]

#: Versions of perforatedai this adapter was written and tested against.
SUPPORTED_VERSIONS = ">=3.2.9,<3.3"

#: Serialises every PAI call of the process (PAI's state is global).
LOCK = threading.RLock()


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


def _chosen_backend() -> str | None:
    """The matplotlib backend the process chose, or ``None`` (not imported / not chosen)."""
    mpl = sys.modules.get("matplotlib")
    if mpl is None:
        return None
    get = getattr(mpl.rcParams, "_get_backend_or_none", None)
    return get() if callable(get) else None


def import_pai() -> PAIModules:
    """perforatedai's modules, imported once (its import-time prints silenced).

    Returns:
        The modules and classes the adapter uses.

    Raises:
        PAINotInstalledError: ``perforatedai`` is missing or older than 3.2.9.
    """
    global _MODULES
    with LOCK:
        if _MODULES is not None:
            return _MODULES
        backend = _chosen_backend()
        try:
            with _capture("import perforatedai", io.StringIO()):
                gpa = importlib.import_module("perforatedai.globals_perforatedai")
                upa = importlib.import_module("perforatedai.utils_perforatedai")
                pam = importlib.import_module("perforatedai.modules_perforatedai")
        except ImportError as err:
            raise PAINotInstalledError(
                "torchrl_functional.pai needs the perforatedai package "
                f"(perforatedai{SUPPORTED_VERSIONS}); install the extra: "
                "pip install 'torchrl-functional[pai]'"
            ) from err
        if backend is not None and _chosen_backend() != backend:  # PAI calls matplotlib.use("Agg")
            sys.modules["matplotlib"].use(backend)
        _check_version()
        _MODULES = PAIModules(gpa, upa, pam.PAINeuronModule, pam.TrackedNeuronModule)
        return _MODULES


def _check_version() -> None:
    try:
        from importlib.metadata import version

        found = version("perforatedai")
    except Exception:  # pragma: no cover - metadata missing in odd installs
        return
    v = _version_tuple(found)
    if v < (3, 2, 9):
        raise PAINotInstalledError(
            f"torchrl_functional.pai needs perforatedai{SUPPORTED_VERSIONS}, found {found} "
            "(perforate_model appeared in 3.2.9)"
        )
    if v >= (3, 3):
        warnings.warn(
            f"torchrl_functional.pai was tested with perforatedai{SUPPORTED_VERSIONS}, found {found}",
            stacklevel=3,
        )


# ---------------------------------------------------------------------- per-thread capture
class _Call(NamedTuple):
    what: str
    buffer: io.StringIO
    echo: Any  # a stream to copy the output to, or None


_local = threading.local()  # .calls: stack of _Call of the PAI calls running in this thread


def _current() -> _Call | None:
    calls = getattr(_local, "calls", None)
    return calls[-1] if calls else None


class _StdoutRouter:
    """``sys.stdout`` during PAI calls: the calling thread's text goes to its buffer,
    every other thread's to the stream that was ``sys.stdout`` before."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def write(self, text: str) -> int:
        call = _current()
        if call is None:
            return self._target.write(text)
        call.buffer.write(text)
        if call.echo is not None:
            call.echo.write(text)
        return len(text)

    def flush(self) -> None:
        if _current() is None:
            self._target.flush()

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, isatty ...
        return getattr(self._target, name)


def _tail(buffer: io.StringIO, lines: int = 15) -> str:
    text = buffer.getvalue().strip().splitlines()
    if not text:
        return "(perforatedai printed nothing)"
    return "\n".join("    " + line for line in text[-lines:])


class _Installed:
    """The forwarders installed while at least one PAI call runs (guarded by ``LOCK``)."""

    depth = 0
    router: _StdoutRouter | None = None
    saved: tuple[Any, Any, Any] | None = None


def _install() -> None:
    import pdb

    if _Installed.depth == 0:
        original_trace, original_hook, original_show = pdb.set_trace, sys.breakpointhook, warnings.showwarning

        def _trap(original):
            def trapped(*args, **kwargs):
                call = _current()
                if call is None:
                    return original(*args, **kwargs)
                raise PAIInterruptError(
                    f"{call.what}: perforatedai tried to open the debugger (pdb.set_trace) after an "
                    f"internal check failed; its last output:\n{_tail(call.buffer)}"
                )

            return trapped

        def show(message, category, filename, lineno, file=None, line=None):
            call = _current()
            if call is None or file is not None:
                return original_show(message, category, filename, lineno, file, line)
            call.buffer.write(warnings.formatwarning(message, category, filename, lineno, line))

        _Installed.saved = (original_trace, original_hook, original_show)
        pdb.set_trace = _trap(original_trace)
        sys.breakpointhook = _trap(original_hook)
        warnings.showwarning = show
        _Installed.router = _StdoutRouter(sys.stdout)
        sys.stdout = _Installed.router
    _Installed.depth += 1


def _uninstall() -> None:
    import pdb

    _Installed.depth -= 1
    if _Installed.depth:
        return
    router, (trace, hook, show) = _Installed.router, _Installed.saved
    if sys.stdout is router:  # someone else replaced it meanwhile: leave theirs in place
        sys.stdout = router._target
    pdb.set_trace, sys.breakpointhook, warnings.showwarning = trace, hook, show
    _Installed.router = _Installed.saved = None


@contextlib.contextmanager
def _capture(what: str, buffer: io.StringIO, echo: Any = None) -> Iterator[None]:
    with LOCK:
        calls = getattr(_local, "calls", None)
        if calls is None:
            calls = _local.calls = []
        _install()
        calls.append(_Call(what, buffer, echo))
        try:
            yield
        finally:
            calls.pop()
            _uninstall()


@contextlib.contextmanager
def pai_call(what: str, log_file: Path | None = None, verbose: bool = False) -> Iterator[io.StringIO]:
    """Run PAI code with its output captured for this thread and its exits trapped.

    Args:
        what: names the call in error messages (e.g. ``"PAIGroup('ppo').add_score"``).
        log_file: PAI's printed output is appended there (created on first use).
        verbose: also echo PAI's output to the terminal (the ``sys.stdout`` of before).

    Yields:
        The buffer holding what PAI printed during the call.

    Raises:
        PAIInterruptError: PAI called ``pdb.set_trace()``, ``breakpoint()`` or ``sys.exit()``.
    """
    buffer = io.StringIO()
    with LOCK:
        echo = (_Installed.router._target if _Installed.router is not None else sys.stdout) if verbose else None
        try:
            with _capture(what, buffer, echo):
                yield buffer
        except SystemExit as exc:
            raise PAIInterruptError(
                f"{what}: perforatedai called sys.exit({exc.code!r}) after an internal check "
                f"failed; its last output:\n{_tail(buffer)}"
            ) from None
        finally:
            if log_file is not None and buffer.tell():
                try:
                    log_file.parent.mkdir(parents=True, exist_ok=True)
                    with open(log_file, "a", encoding="utf-8") as fh:
                        fh.write(f"--- {what}\n{buffer.getvalue()}")
                except OSError:  # the log is a convenience; never mask the real outcome
                    pass

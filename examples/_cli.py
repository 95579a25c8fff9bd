"""Command-line pieces shared by the examples. Standard library only: every example parses its
command line with these *before* importing torch, so ``--help`` and usage errors come back in a
fraction of a second.

- Argument types that turn a bad value into a one-line usage error (``argparse`` prints
  ``usage: ...`` and ``<prog>: error: argument --x: ...`` and exits with code 2).
- :func:`add_output_flag`: every example writes under ``runs/<example>/`` unless ``--out`` says otherwise.
- :func:`route_torchrl_logs`: TorchRL's logger prints INFO lines with raw terminal colour codes
  to stdout, in the middle of a progress bar; the examples keep its warnings and errors only,
  as plain lines written above the bar.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

RUNS = Path("runs")


def _number(kind: type, text: str, what: str):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def positive_int(text: str) -> int:
    value = _number(int, text, "a positive integer")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = _number(int, text, "a non-negative integer")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {value}")
    return value


def positive_float(text: str) -> float:
    value = _number(float, text, "a positive number")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = _number(float, text, "a non-negative number")
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a non-negative finite number, got {text}")
    return value


def open_unit_float(text: str) -> float:
    """A number strictly between 0 and 1 (a discount, a trace decay)."""
    value = _number(float, text, "a number between 0 and 1")
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be strictly between 0 and 1, got {text}")
    return value


def boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_threads_flag(parser: argparse.ArgumentParser, default: int = 1) -> None:
    parser.add_argument(
        "--threads", type=positive_int, default=default,
        help="torch intra-op threads (default: %(default)s: these networks are tiny, and a second "
             "thread mostly waits for the first, many times slower on a busy machine)")


def add_output_flag(parser: argparse.ArgumentParser, example: str, what: str) -> None:
    """``--out``, default ``runs/<example>`` (relative to the current directory)."""
    parser.add_argument("--out", type=Path, default=RUNS / example,
                        help=f"folder for {what} (default: %(default)s)")


def route_torchrl_logs(write: Callable[[str], None] | None = None, level: int = logging.WARNING) -> None:
    """TorchRL's ``"torchrl"`` logger: keep records of ``level`` and above, as plain
    ``torchrl WARNING: ...`` lines passed to ``write`` (default: ``tqdm.write`` to stderr, which
    prints above a progress bar instead of through it). Call after importing torchrl."""
    if write is None:
        def write(line: str) -> None:
            from tqdm import tqdm

            tqdm.write(line, file=sys.stderr)

    class _Write(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            try:
                write(self.format(record))
            except Exception:  # pragma: no cover - logging must never raise
                self.handleError(record)

    handler = _Write(level)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s: %(message)s"))
    logger = logging.getLogger("torchrl")
    for old in list(logger.handlers):
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(level)

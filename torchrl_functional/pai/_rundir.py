"""The run folder of a group (``directory/name/``): who owns it, what may be deleted, and
the absolute paths PAI is given so that it never depends on the working directory.

- One live group per folder in a process (:func:`claim` / :func:`release`): two groups
  sharing PAI's snapshot files would reload each other's weights at restructures.
- The adapter marks the folders it creates (:data:`MARKER`); ``overwrite=True`` deletes
  only the files PAI and the adapter write there (:func:`own_files`), in marked folders.
- :func:`point_pai_at` makes PAI build every path from the absolute folder: its run
  configuration file, its snapshots (``GPA.pc`` save name) and its graphs.
"""

from __future__ import annotations

import os
import re
import weakref
from pathlib import Path
from typing import Any

from ._runtime import LOCK
from .errors import PAIConfigError

__all__ = ["MARKER", "LOG", "claim", "release", "own_files", "point_pai_at", "absolute_save_name"]

#: File the adapter writes in every run folder it creates.
MARKER = ".torchrl_functional_pai"
#: PAI's printed output, appended by the adapter.
LOG = "pai_output.log"

_LIVE: dict[str, weakref.ref] = {}

_SNAPSHOT = re.compile(
    r"^(best_model|latest|final_clean|switch_\d+|beforeSwitch_\d+|best_model_beforeSwitch_\d+"
    r"|PBCount_\d+_startSteps_-?\d+)(_pai)?\.pt$"
)
_GRAPH_SUFFIXES = (".png", ".csv")


def own_files(run_dir: Path, name: str) -> list[Path]:
    """Files in ``run_dir`` written by PAI or the adapter for the group ``name``.

    PAI's snapshots (``best_model.pt``, ``switch_<n>.pt`` ...), its run configuration
    ``<name>_config.json``, its graphs and CSV files (``<name>*.png``/``.csv``), the
    adapter's log and marker. Anything else (subfolders included) is not listed.

    Args:
        run_dir: the run folder (must exist).
        name: the group's name (PAI's save name).
    """
    out = []
    for path in sorted(run_dir.iterdir()):
        if not path.is_file() or path.is_symlink():
            continue
        n = path.name
        if (
            n in (MARKER, LOG, f"{name}_config.json", "array_dims.csv")
            or _SNAPSHOT.match(n)
            or (n.startswith(name) and n.endswith(_GRAPH_SUFFIXES))
        ):
            out.append(path)
    return out


def claim(group: Any, where: str, run_dir: Path, name: str, overwrite: bool) -> None:
    """Reserve ``run_dir`` for ``group``: refuse a folder a live group uses, an existing
    folder without ``overwrite``, and an unmarked one with it; then create and mark it.

    Args:
        group: the group being built.
        where: names it in error messages.
        run_dir: ``directory/name``.
        name: the group's name.
        overwrite: delete PAI's files in an existing run folder of this adapter.
    """
    key = str(run_dir)
    with LOCK:
        holder = _LIVE.get(key)
        if holder is not None and holder() is not None:
            raise PAIConfigError(
                f"{where}: {key!r} is the run folder of a live group ({holder()!r}); two groups "
                "with one folder would reload each other's PAI snapshots. Call close() on the "
                "other group (or use it as a context manager), or pick another name or directory"
            )
        if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
            if not overwrite:
                raise PAIConfigError(
                    f"{where}: {key!r} already exists (PAI would reuse the configuration and "
                    "snapshots of an earlier run); pass overwrite=True, another name or another directory"
                )
            if not run_dir.is_dir() or not (run_dir / MARKER).is_file():
                raise PAIConfigError(
                    f"{where}: {key!r} is not a run folder of this adapter (no {MARKER} file); "
                    "overwrite=True only deletes PAI's files in such folders: delete it yourself "
                    "or pick another name"
                )
            for path in own_files(run_dir, name):
                path.unlink()
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / MARKER).write_text(f"PerforatedAI run folder of the group {name!r}\n", encoding="utf-8")
        _LIVE[key] = weakref.ref(group)


def release(run_dir: Path, group: Any, name: str | None = None) -> None:
    """Give up ``run_dir`` (no-op if another group holds it).

    Args:
        run_dir: the run folder.
        group: the group giving it up.
        name: also delete the files PAI and the adapter wrote (a group that failed to
            start), and the folder if nothing else is left in it.
    """
    with LOCK:
        holder = _LIVE.get(str(run_dir))
        if holder is None or holder() not in (None, group):
            return
        del _LIVE[str(run_dir)]
        if name is not None and run_dir.is_dir():
            for path in own_files(run_dir, name):
                path.unlink()
            if not any(run_dir.iterdir()):
                run_dir.rmdir()


def point_pai_at(pc: Any, run_dir: Path, name: str) -> None:
    """Before ``perforate_model``: PAI's run configuration file goes to ``run_dir``.

    PAI derives it from the working directory (``os.getcwd()/<save name>/``); the group's
    configuration answers with the absolute path instead (``None`` until PAI sets its
    save name, as PAI does).

    Args:
        pc: the group's fresh ``GPA.PAIConfig``.
        run_dir: the run folder.
        name: the group's name.
    """
    path = str(run_dir / f"{name}_config.json")
    pc.__dict__["get_run_config_path"] = lambda: path if pc.__dict__.get("_save_name") else None


def absolute_save_name(pc: Any, tracker: Any, run_dir: Path, name: str) -> None:
    """After ``perforate_model``: snapshots and graphs go to ``run_dir`` by absolute paths.

    PAI joins its save name with file names (``<save name>/best_model.pt``); an absolute
    save name makes those paths absolute. PAI's graph writer prefixes ``./`` instead: the
    tracker gets the same writer fed with the absolute folder.

    Args:
        pc: the group's ``GPA.pc``.
        tracker: the group's ``GPA.pai_tracker``.
        run_dir: the run folder.
        name: the group's name.
    """
    pc.__dict__["_save_name"] = str(run_dir)
    tracker.__dict__["save_graphs"] = _graph_writer(tracker, pc, str(run_dir), name)


def _graph_writer(tracker: Any, pc: Any, folder: str, name: str):
    """PAI's ``save_graphs`` with ``folder`` as the output folder (same plots and CSVs);
    closes only its own figure."""

    def save_graphs(extra_string: str = "") -> None:
        if "RANK" in os.environ and int(os.environ["RANK"]) != 0:
            return
        if not tracker.making_graphs:
            return
        import matplotlib.pyplot as plt

        plt.ioff()
        fig = plt.figure(figsize=(28, 14))
        try:
            tracker.generate_accuracy_plots(plt.subplot(221), folder, extra_string)
            tracker.generate_dendrite_learning_plots(plt.subplot(222), folder, extra_string)
            if pc.get_drawing_extra_graphs():
                tracker.generate_learning_rate_plots(plt.subplot(223), folder, extra_string)
                tracker.generate_time_plots(plt.subplot(224), folder, extra_string)
            tracker.generate_extra_csv_files(folder, extra_string)
            fig.tight_layout()
            fig.savefig(f"{folder}/{name}{extra_string}.png")
        finally:
            plt.close(fig)

    return save_graphs

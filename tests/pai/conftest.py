"""Every PAI test runs with the real ``perforatedai`` package in its own temporary working
directory, with PAI's global state reset before and after, and checks afterwards that
nothing was written to that working directory (all PAI output must go to ``out_dir``)."""

from __future__ import annotations

import contextlib
import io
import os

import pytest

with contextlib.redirect_stdout(io.StringIO()):  # perforatedai prints on import
    GPA = pytest.importorskip("perforatedai.globals_perforatedai")


def _reset_pai_globals() -> None:
    GPA.pc = GPA.PAIConfig()
    GPA.pai_tracker = []


@pytest.fixture(autouse=True)
def pai_sandbox(tmp_path, monkeypatch):
    """Fresh PAI globals and an empty working directory that must stay empty."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    _reset_pai_globals()
    yield cwd
    _reset_pai_globals()
    assert os.getcwd() == str(cwd), "a PAI call did not restore the working directory"
    leftovers = sorted(os.listdir(cwd))
    assert leftovers == [], f"files written to the working directory: {leftovers}"


@pytest.fixture
def out_dir(tmp_path):
    """The directory given to the groups: everything PAI writes must land here."""
    path = tmp_path / "out"
    path.mkdir()
    return path

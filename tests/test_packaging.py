"""What ``pip install`` gives a user: the sdist builds, the wheel builds from it, ``twine check`` passes on
both, their metadata is complete (license file, classifiers, URLs, ``Requires-Python``, one
version), ``py.typed`` ships, the sdist holds no partial test suite, and ``pip install .`` into a
fresh virtual environment gives an importable, typed package of that version.

Everything runs in a scratch virtual environment under a temporary folder, with ``build``,
``twine`` and ``setuptools`` installed there from the package index; the test environment is only
read (its torch, torchrl and tensordict are made visible to the scratch environment, so the check
does not download torch). Without the package index the test skips and says why.
"""

from __future__ import annotations

import email
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
BUILD_TOOLS = ["build>=1.2", "twine>=6.1", "setuptools>=77", "trove-classifiers"]
# one worker builds once for the whole module (make test runs xdist with --dist loadgroup)
pytestmark = pytest.mark.xdist_group("packaging")


def _version() -> str:
    text = (ROOT / "torchrl_functional" / "__init__.py").read_text()
    return re.search(r'^__version__ = "([^"]+)"$', text, flags=re.M).group(1)


def _run(args: list[str], cwd: Path, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(args, cwd=cwd, env={**base, **(env or {})}, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def _venv(path: Path) -> Path:
    """A fresh virtual environment at ``path``; returns its python."""
    proc = _run([sys.executable, "-m", "venv", str(path)], cwd=path.parent)
    if proc.returncode:
        pytest.skip(f"cannot create a virtual environment: {proc.stderr[-500:]}")
    return path / "bin" / "python"


def _copy_checkout(dest: Path) -> Path:
    """The checkout without its virtual environment, caches and outputs (building writes
    ``*.egg-info`` and ``build/`` next to the sources: keep them out of the checkout)."""
    ignore = shutil.ignore_patterns(".git", ".venv", "*.egg-info", "build", "dist", "site", "runs", "pai_runs",
                                    "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis", "PAI*")
    shutil.copytree(ROOT, dest, ignore=ignore)
    return dest


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> dict[str, Path]:
    """The sdist built from a copy of this checkout, and the wheel built from that sdist
    (``python -m build``, in a scratch venv)."""
    tmp = tmp_path_factory.mktemp("packaging")
    src = _copy_checkout(tmp / "src")
    python = _venv(tmp / "tools")
    proc = _run([str(python), "-m", "pip", "install", "-q", *BUILD_TOOLS], cwd=tmp, timeout=600)
    if proc.returncode:
        last = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        pytest.skip(f"cannot install build, twine and setuptools from the package index (offline?): {last[0]}")
    out = tmp / "dist"
    # --no-isolation: the build backend is the setuptools just installed (no second download)
    proc = _run([str(python), "-m", "build", "--no-isolation", "--outdir", str(out), str(src)], cwd=tmp)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    wheel, = out.glob("*.whl")
    sdist, = out.glob("*.tar.gz")
    return {"python": python, "wheel": wheel, "sdist": sdist, "tmp": tmp, "src": src}


@pytest.mark.slow
def test_twine_check_passes_on_wheel_and_sdist(dist):
    proc = _run([str(dist["python"]), "-m", "twine", "check", "--strict", str(dist["wheel"]), str(dist["sdist"])],
                cwd=dist["tmp"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("PASSED") == 2, proc.stdout


@pytest.mark.slow
def test_wheel_metadata_is_complete(dist):
    version = _version()
    assert dist["wheel"].name == f"torchrl_functional-{version}-py3-none-any.whl"
    with zipfile.ZipFile(dist["wheel"]) as whl:
        names = whl.namelist()
        info = f"torchrl_functional-{version}.dist-info"
        meta = email.message_from_bytes(whl.read(f"{info}/METADATA"))
        license_text = whl.read(f"{info}/licenses/LICENSE").decode()
    assert "torchrl_functional/py.typed" in names
    assert not [n for n in names if n.startswith(("tests/", "examples/", "benchmarks/", "conformance/"))]
    assert meta["Name"] == "torchrl-functional" and meta["Version"] == version
    assert meta["License-Expression"] == "MIT" and meta.get_all("License-File") == ["LICENSE"]
    assert license_text.startswith("MIT License") and "Copyright (c)" in license_text
    assert SpecifierSet(meta["Requires-Python"]) == SpecifierSet(PYPROJECT["project"]["requires-python"])
    assert meta["Description-Content-Type"] == "text/markdown"
    assert meta.get_all("Classifier") == PYPROJECT["project"]["classifiers"]
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert urls == PYPROJECT["project"]["urls"]
    assert meta["Keywords"]
    # a README read on a package index: images and links must not be relative paths
    readme = meta.get_payload()
    for target in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme):
        assert target.startswith(urls["Source"].replace("github.com", "raw.githubusercontent.com")), target
    for target in re.findall(r"(?<!!)\[[^\]]*\]\(([^)#][^)]*)\)", readme):
        assert target.startswith("https://"), f"relative link {target!r} breaks on a package index"


@pytest.mark.slow
def test_classifiers_are_known_and_python_versions_agree(dist):
    """Every classifier is a real trove classifier, and the versions they name are the ones
    ``Requires-Python`` admits."""
    proc = _run([str(dist["python"]), "-c", "import trove_classifiers as t; print('\\n'.join(sorted(t.classifiers)))"],
                cwd=dist["tmp"])
    known = set(proc.stdout.splitlines())
    classifiers = PYPROJECT["project"]["classifiers"]
    assert not [c for c in classifiers if c not in known]
    named = {c.rsplit(":: ", 1)[1] for c in classifiers if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)}
    spec = SpecifierSet(PYPROJECT["project"]["requires-python"])
    admitted = {f"3.{minor}" for minor in range(8, 20) if f"3.{minor}.0" in spec}
    assert named == admitted


@pytest.mark.slow
def test_sdist_has_license_and_no_partial_test_suite(dist):
    version = _version()
    with tarfile.open(dist["sdist"]) as tar:
        names = [n.split("/", 1)[1] for n in tar.getnames() if "/" in n]
    for required in ("LICENSE", "README.md", "pyproject.toml", "torchrl_functional/py.typed",
                     "torchrl_functional/__init__.py"):
        assert required in names, required
    assert dist["sdist"].name == f"torchrl_functional-{version}.tar.gz"
    # the test suite needs the repository (examples, benchmarks, conformance, docs): none of it ships
    assert not [n for n in names if n.startswith(("tests/", "examples/", "benchmarks/", "conformance/", "docs/"))]


@pytest.mark.slow
def test_pip_install_into_a_fresh_venv(dist):
    """``pip install .`` (dependencies taken from the test environment, already installed there)
    gives an importable package of the declared version, with ``py.typed``, outside the checkout."""
    env_dir = dist["tmp"] / "user"
    python = _venv(env_dir)
    purelib = Path(sysconfig.get_paths()["purelib"])  # this test environment's torch, torchrl, tensordict
    user_site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          cwd=env_dir).stdout.strip())
    (user_site / "_test_environment.pth").write_text(f"{purelib}\n")
    # --no-deps: torch & co. are visible already; the build backend comes from the package index
    proc = _run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(dist["src"])], cwd=env_dir, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    code = (
        "import importlib.metadata as md, pathlib, torchrl_functional as t, torchrl_functional.modules;"
        "print(t.__version__); print(md.version('torchrl-functional'));"
        "print(pathlib.Path(t.__file__).parent);"
        "print((pathlib.Path(t.__file__).parent / 'py.typed').is_file());"
        "from packaging.requirements import Requirement;"
        "print(all(Requirement(r).specifier.contains(md.version(Requirement(r).name), prereleases=True)"
        " for r in md.requires('torchrl-functional') if 'extra ==' not in r))"
    )
    proc = _run([str(python), "-c", code], cwd=env_dir, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    version, dist_version, location, typed, deps_met = proc.stdout.strip().splitlines()[-5:]
    assert version == dist_version == _version()
    assert Path(location).resolve().is_relative_to(user_site.resolve()), location  # not the checkout
    assert typed == "True"
    assert deps_met == "True"  # the declared ranges admit the versions the test suite runs with

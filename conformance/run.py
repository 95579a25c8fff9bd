"""Run TorchRL's own loss tests with torchrl-functional's classes swapped in.

Usage: ``python -m conformance.run [--update-readme] [FILE ...] [-- PYTEST_ARGS]`` from the
repository root (``make conformance``). The suite is read from ``$TORCHRL_TESTS`` (default
``../shared/torchrl_tests``), never copied. Prints one line per file,
``passed/baseline`` (baseline: the same file with TorchRL's own classes), writes
``conformance/results.json`` and exits non-zero if a file passes fewer tests than the
floor recorded in ``conformance/expected.json`` (a regression guard). ``--update-readme``
rewrites the README's conformance table (between its ``conformance:start``/``end`` markers)
from the results of a full run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
DEFAULT_SUITE = ROOT.parent / "shared" / "torchrl_tests"
FILES = ("test_ppo.py", "test_sac.py", "test_ddpg.py", "test_dqn.py", "test_iql.py", "test_cql.py",
         "test_mappo.py", "test_dreamer_v3.py", "test_tqc.py", "test_dreamer.py", "test_rnd.py",
         "test_bc.py", "test_dt.py", "test_act.py", "test_diffusion_bc.py")


def baseline(suite: Path) -> dict[str, dict[str, int]]:
    """Per file ``{"passed": n, "skipped": m}`` with TorchRL's classes, from the suite's README."""
    out: dict[str, dict[str, int]] = {}
    readme = suite / "README.md"
    if readme.exists():
        for line in readme.read_text().splitlines():
            m = re.match(r"\|\s*(test_\w+\.py)\s*\|\s*(\d+) passed(?:, (\d+) skipped)?", line)
            if m:
                out[m.group(1)] = {"passed": int(m.group(2)), "skipped": int(m.group(3) or 0)}
    return out


README = ROOT / "README.md"
START, END = "<!-- conformance:start -->", "<!-- conformance:end -->"


def readme_table(results: dict, suite: Path) -> str:
    lines = [
        "| TorchRL test file | passed with our classes / with TorchRL's | other outcomes |",
        "|---|---|---|",
    ]
    total = total_base = 0
    for f, r in results.items():
        other = ", ".join(f"{n} {k}" for k, n in sorted(r.items()) if k not in ("passed", "baseline") and n)
        lines.append(f"| `{f}` | {r['passed']} / {r['baseline']} | {other or '-'} |")
        total += r["passed"]
        total_base += r["baseline"] or 0
    lines.append(f"| **total** | **{total} / {total_base}** | |")
    return "\n".join(lines)


def update_readme(table: str) -> None:
    text = README.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"conformance: {README} has no {START} ... {END} block")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{START}\n{table}\n{END}{tail}")


def main(argv: list[str]) -> int:
    update = "--update-readme" in argv
    argv = [a for a in argv if a != "--update-readme"]
    if "--" in argv:
        i = argv.index("--")
        files, extra = argv[:i], argv[i + 1:]
    else:
        files, extra = argv, []
    files = files or list(FILES)
    suite = Path(os.environ.get("TORCHRL_TESTS", DEFAULT_SUITE)).resolve()
    tests = suite / "test" / "objectives"
    if not tests.is_dir():
        print(f"conformance: TorchRL's test suite not found at {suite} (set TORCHRL_TESTS=...); skipped")
        return 0
    base = baseline(suite)
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        env = dict(os.environ, TORCHRL_CONFORMANCE_REPORT=str(report), RL_WARNINGS="False")
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        cmd = [
            sys.executable, "-m", "pytest", *[str(tests / f) for f in files],
            "-p", "conformance.plugin", "-p", "no:cacheprovider",
            "--rootdir", str(suite / "test"), "-c", str(HERE / "pytest.ini"),
            "-q", "--no-header", "-rN", "-n", os.environ.get("CONFORMANCE_WORKERS", "2"), *extra,
        ]
        proc = subprocess.run(cmd, cwd=tests, env=env)
        if not report.exists():
            print(f"conformance: pytest ended ({proc.returncode}) without a report")
            return proc.returncode or 1
        outcomes = json.loads(report.read_text())
    expected_path = HERE / "expected.json"
    expected = json.loads(expected_path.read_text()) if expected_path.exists() else {}
    print("\nconformance (passed with torchrl_functional's classes / passed with TorchRL's):")
    status = 0
    total = total_base = 0
    results = {}
    for f in files:
        got = outcomes.get(f, {})
        passed = got.get("passed", 0)
        ref = base.get(f, {}).get("passed")
        total += passed
        total_base += ref or 0
        other = ", ".join(f"{n} {k}" for k, n in sorted(got.items()) if k != "passed" and n)
        floor = expected.get(f, 0)
        flag = ""
        if passed < floor:
            flag = f"  REGRESSION: expected at least {floor}"
            status = 1
        print(f"  {f:<16} {passed}/{ref if ref is not None else '?'}" + (f"  ({other})" if other else "") + flag)
        results[f] = {"passed": passed, "baseline": ref, **{k: n for k, n in got.items() if k != "passed"}}
    print(f"  {'total':<16} {total}/{total_base}")
    (HERE / "results.json").write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    if update:
        if extra or set(files) != set(FILES):
            print("conformance: --update-readme needs a full run (all files, no pytest selection)")
            return 2
        update_readme(readme_table(results, suite))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

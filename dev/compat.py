"""`make test-compat`: the DAG's end-to-end suite (tests/dags, tests/faults) on each Airflow version
Composer 3 runs.

For each version: a venv of its own (`.venv-3.1`, `.venv-3.2`, `.venv-3.3`), created when missing
and synced with uv when its lock changed, then `python -m pytest tests/dags tests/faults` with that
venv's python. The table at the end has one row per version; the exit code is non-zero if any failed.

    python dev/compat.py [--uv UV] [--python PYTHON] [VERSION ...] [-- PYTEST_ARGS ...]

Before anything is installed, the requirement files are checked against each other: the compat
sets must pin what requirements.txt and requirements-dev.txt pin (only apache-airflow differs), and
every lock must hold every pin of its inputs (a lock that does not was not re-made: `make lock`).

Standard library only: it runs before any venv exists.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REQUIREMENTS = REPO / "requirements"
OUTPUT = REPO / "test-output" / "compat"
# The DAG run end to end, and the faults injected into those runs (each its own version's APIs).
SUITE = ("tests/dags", "tests/faults")
STAMP = ".compat-lock-sha256"

# The running pytest, and whether a signal asked this run to stop (see `stop`).
_running: subprocess.Popen | None = None
_stopped_by: str | None = None


@dataclass(frozen=True)
class Version:
    name: str
    inputs: Path  # what the lock is compiled from
    lock: Path

    @property
    def venv(self) -> Path:
        return REPO / f".venv-{self.name}"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"


VERSIONS = {
    name: Version(name, REQUIREMENTS / f"dev-{name}.txt", REQUIREMENTS / f"airflow-{name}.lock")
    for name in ("3.1", "3.2")
}
# 3.3 is the default version: its lock is the project's own (requirements.lock).
VERSIONS["3.3"] = Version("3.3", REPO / "requirements-dev.txt", REPO / "requirements.lock")


_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*([^\s;#]+)")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    """`name == version` lines of a requirements file, following `-r` (relative to the file)."""
    found: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-r ", "--requirement ")):
            found.update(pins((path.parent / line.split(None, 1)[1]).resolve()))
        elif match := _PIN.match(line):
            found[normalize(match.group(1))] = match.group(2)
    return found


def drift() -> list[str]:
    """What makes the compat sets disagree with the default ones, or a lock older than its inputs."""
    problems = []
    runtime, dev = pins(REPO / "requirements.txt"), pins(REPO / "requirements-dev.txt")
    for version in ("3.1", "3.2"):
        path = REQUIREMENTS / f"airflow-{version}.txt"
        theirs = pins(path)
        for name in sorted(set(runtime) | set(theirs)):
            if name != "apache-airflow" and runtime.get(name) != theirs.get(name):
                problems.append(
                    f"{path.relative_to(REPO)}: {name} {theirs.get(name) or 'missing'}, "
                    f"requirements.txt {runtime.get(name) or 'missing'}"
                )
        if not theirs.get("apache-airflow", "").startswith(version + "."):
            problems.append(f"{path.relative_to(REPO)}: apache-airflow is not a {version} release")
    if not runtime.get("apache-airflow", "").startswith("3.3."):
        problems.append("requirements.txt: apache-airflow is not a 3.3 release (the default version)")
    tools = REQUIREMENTS / "test-tools.txt"
    for name, pinned in sorted(pins(tools).items()):
        if dev.get(name) != pinned:
            theirs = dev.get(name) or "missing"
            problems.append(f"{tools.relative_to(REPO)}: {name} {pinned}, requirements-dev.txt {theirs}")
    for version in VERSIONS.values():
        locked = pins(version.lock) if version.lock.exists() else {}
        for name, pinned in sorted(pins(version.inputs).items()):
            if locked.get(name) != pinned:
                problems.append(
                    f"{version.lock.relative_to(REPO)}: {name} {locked.get(name) or 'missing'}, "
                    f"{version.inputs.relative_to(REPO)} asks for {pinned} (run `make lock`)"
                )
    return problems


def ensure_venv(version: Version, uv: str, python: str) -> str:
    """Create the venv if missing; sync it with the lock if the lock changed. Returns what was done."""
    digest = hashlib.sha256(version.lock.read_bytes()).hexdigest()
    stamp = version.venv / STAMP
    if version.python.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return "up to date"
    done = "synced with its changed lock"
    if not version.python.exists():
        subprocess.run([uv, "venv", "--quiet", "--python", python, str(version.venv)], check=True)
        done = "created"
    stamp.unlink(missing_ok=True)
    subprocess.run(
        [uv, "pip", "sync", "--quiet", "--python", str(version.python), str(version.lock)], check=True
    )
    stamp.write_text(digest + "\n")
    return done


def installed_airflow(version: Version) -> str:
    probe = "from importlib.metadata import version; print(version('apache-airflow'))"
    done = subprocess.run([str(version.python), "-c", probe], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else "?"


@dataclass
class Result:
    version: str
    airflow: str
    passed: int | None = None
    failed: int | None = None
    errors: int | None = None
    skipped: int = 0
    seconds: float = 0.0
    returncode: int = 0
    problem: str = ""
    not_passed: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problem and self.returncode == 0 and self.failed == 0 and self.errors == 0

    @property
    def verdict(self) -> str:
        if self.ok:
            return "ok" + (f" ({self.skipped} skipped)" if self.skipped else "")
        return "FAILED" + (f": {self.problem}" if self.problem else f" (pytest rc={self.returncode})")


def read_junit(path: Path, result: Result) -> None:
    if not path.exists():
        result.problem = result.problem or "pytest wrote no report"
        return
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = sum(int(s.get("tests", 0)) for s in suites)
    result.failed = sum(int(s.get("failures", 0)) for s in suites)
    result.errors = sum(int(s.get("errors", 0)) for s in suites)
    result.skipped = sum(int(s.get("skipped", 0)) for s in suites)
    result.passed = total - result.failed - result.errors - result.skipped
    result.not_passed = tuple(
        f"{child.tag.upper()}: {'::'.join(filter(None, (case.get('classname'), case.get('name'))))}"
        for case in root.iter("testcase")
        for child in case
        if child.tag in ("failure", "error")
    )


def stop(signum: int, _frame) -> None:
    """SIGTERM or Ctrl-C: pytest is interrupted as by Ctrl-C, so that its fixtures stop the emulator
    and the stand-ins; the versions not run yet are not started, and the table is still printed."""
    global _stopped_by
    _stopped_by = signal.Signals(signum).name
    # Ctrl-C reaches pytest from the terminal itself; a SIGTERM is passed on as SIGINT.
    if signum == signal.SIGTERM and _running is not None and _running.poll() is None:
        _running.send_signal(signal.SIGINT)


def run_suite(version: Version, pytest_args: list[str]) -> Result:
    global _running
    expected = pins(version.lock).get("apache-airflow", "?")
    result = Result(version.name, installed_airflow(version))
    if result.airflow != expected:
        result.problem = f"the venv has Airflow {result.airflow}, the lock {expected}"
        return result
    OUTPUT.mkdir(parents=True, exist_ok=True)
    junit = OUTPUT / f"junit-{version.name}.xml"
    log = OUTPUT / f"pytest-{version.name}.log"
    junit.unlink(missing_ok=True)
    env = {**os.environ, "VIRTUAL_ENV": str(version.venv)}
    env["PATH"] = f"{version.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    # A module that fails to import on one version must not hide what the others' tests say: it is
    # still an error in the table and fails the version.
    # (-u: pytest's progress reaches the terminal as it happens, not in blocks of a pipe's buffer.)
    command = [str(version.python), "-u", "-m", "pytest", *SUITE, "--continue-on-collection-errors"]
    command += [f"--junitxml={junit}", *pytest_args]
    print(f"\n=== Airflow {version.name} ({result.airflow}): {' '.join(command[1:])}", flush=True)
    print(f"    log: {log.relative_to(REPO)}", flush=True)
    started = time.monotonic()
    with (
        log.open("wb") as out,
        subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        ) as process,
    ):
        _running = process
        assert process.stdout is not None
        # As it comes (pytest's progress dots end no line), to the terminal and to the log.
        while chunk := process.stdout.read1(65536):
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
            out.write(chunk)
        result.returncode = process.wait()
        _running = None
    result.seconds = time.monotonic() - started
    if _stopped_by:
        result.problem = f"stopped by {_stopped_by}"
    read_junit(junit, result)
    return result


def duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def table(results: list[Result]) -> str:
    header = ("version", "airflow version installed", "passed", "failed", "errors", "wall time", "result")
    rows = [header] + [
        (r.version, r.airflow, *("-" if n is None else str(n) for n in (r.passed, r.failed, r.errors)),
         duration(r.seconds), r.verdict)
        for r in results
    ]  # fmt: skip
    widths = [max(map(len, column)) for column in zip(*rows, strict=True)]
    cells = [[cell.ljust(w) for cell, w in zip(row, widths, strict=True)] for row in rows]
    lines = ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join([lines[0], "|" + "|".join("-" * (w + 2) for w in widths) + "|", *lines[1:]])


def main(argv: list[str]) -> int:
    split = argv.index("--") if "--" in argv else len(argv)
    argv, pytest_args = argv[:split], argv[split + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("versions", nargs="*", metavar="VERSION", help=f"any of {', '.join(VERSIONS)} (all)")
    parser.add_argument("--uv", default=str(REPO / ".venv" / "bin" / "uv"), help="uv to create venvs with")
    parser.add_argument("--python", default="python3.11", help="interpreter of the new venvs")
    args = parser.parse_args(argv)
    unknown = [name for name in args.versions if name not in VERSIONS]
    if unknown:
        parser.error(f"unknown version {', '.join(unknown)}; known: {', '.join(VERSIONS)}")
    versions = [VERSIONS[name] for name in (args.versions or VERSIONS)]
    uv = args.uv if Path(args.uv).exists() else shutil.which("uv")
    if uv is None:
        print(f"error: uv not found at {args.uv} or on PATH (`make venv` installs it)", file=sys.stderr)
        return 2

    problems = drift()
    if problems:
        print("error: the requirement files disagree:", *problems, sep="\n  ", file=sys.stderr)
        return 2

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    started = time.monotonic()
    results = []
    for version in versions:
        if _stopped_by:
            results.append(Result(version.name, "-", problem=f"not run ({_stopped_by})"))
            continue
        setup = time.monotonic()
        try:
            done = ensure_venv(version, uv, args.python)
        except subprocess.CalledProcessError as error:
            results.append(Result(version.name, "-", problem=f"venv set-up failed ({error.cmd[:3]})"))
            continue
        print(f"{version.venv.name}: {done} ({duration(time.monotonic() - setup)})", flush=True)
        results.append(run_suite(version, pytest_args))

    print(f"\nDAG end-to-end suite ({', '.join(SUITE)}) per Airflow version:\n")
    print(table(results))
    for result in results:
        for case in result.not_passed:
            print(f"  {result.version}: {case}")
    print(
        f"\ntotal wall time {duration(time.monotonic() - started)}; logs and JUnit reports in "
        f"{OUTPUT.relative_to(REPO)}/"
    )
    return 0 if all(result.ok for result in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

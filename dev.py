#!/usr/bin/env python3
"""Development entry point that needs nothing but Python 3.11+.

    python3 dev.py demo   # run the example project's demo on SQLite
    python3 dev.py test   # lint, migration check, the docs build and the test suite
                          # ("test --folders unit,integration": only those test folders)
    python3 dev.py serve  # the example project's site and a worker, after the demo
    python3 dev.py docs   # serve the docs on 127.0.0.1:8001; "docs build" builds them into site/,
                          # "docs sync" copies docs/snippets/ files into the pages' code blocks
    python3 dev.py bench  # worker benchmark on a throwaway PostgreSQL (see bench/run.py)

Each creates (once) a virtual environment for the running Python in .venv-X.Y, with
Django 5.2 LTS on Python 3.11 and Django 6.1 on 3.12+. ``test`` runs tests/unit/ once with
no database configured, then tests/integration/ and tests/acceptance/ once per database URL
in TEST_DATABASE_URLS (space separated; "sqlite" means a local SQLite file, the default).
``--folders unit,integration`` runs only those folders, ``--tests-only`` skips the lint, mypy,
migration and docs checks; other arguments go to pytest, e.g.
``python3 dev.py test -k claim``, and test paths among them replace the folders.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tomllib
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
PYTHON_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
VENV = ROOT / f".venv-{PYTHON_VERSION}"
DJANGO = "Django>=5.2,<5.3" if sys.version_info < (3, 12) else "Django>=6.1,<6.2"


def say(message: str) -> None:
    print(f"\n== {message}", flush=True)


def run(*command: str | Path, env: dict[str, str] | None = None, cwd: Path = ROOT) -> None:
    result = subprocess.run([str(part) for part in command], cwd=cwd, env=env)
    if result.returncode:
        sys.exit(result.returncode)


def ensure_venv(extras: set[str]) -> Path:
    """The venv's python, with the package (editable), its extras and dev tools installed."""
    python = VENV / "bin" / "python"
    if not python.exists():
        say(f"creating {VENV.name}")
        venv.create(VENV, with_pip=True)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    dev_tools = pyproject["dependency-groups"]["dev"]
    extra = f"[{','.join(sorted(extras))}]" if extras else ""
    wanted = "\n".join([DJANGO, f".{extra}", *dev_tools])
    stamp = VENV / ".installed"
    if not stamp.exists() or stamp.read_text() != wanted:
        say(f"installing {DJANGO} and dependencies into {VENV.name}")
        run(python, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
        run(python, "-m", "pip", "install", "--quiet", DJANGO, "-e", f".{extra}", *dev_tools)
        stamp.write_text(wanted)
    return python


EXAMPLE = ROOT / "example_project"


def example_env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DATABASE_URL", None)  # the example project runs on its SQLite file
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


def demo() -> None:
    python = ensure_venv(set())
    # Each demo starts from an empty database, so its timeline shows only its own runs.
    for stale in EXAMPLE.glob("db.sqlite3*"):
        stale.unlink()
    say("migrating example_project/db.sqlite3")
    run(python, EXAMPLE / "manage.py", "migrate", "--verbosity", "0", env=example_env())
    say("manage.py demo")
    run(python, EXAMPLE / "manage.py", "demo", env=example_env())


def serve() -> None:
    """The example project's site on port 8000, with a worker beside it."""
    python = ensure_venv(set())
    env = example_env()
    manage = EXAMPLE / "manage.py"
    run(python, manage, "migrate", "--verbosity", "0", env=env)
    worker = subprocess.Popen([str(python), str(manage), "runworker", "--queue", "*"], env=env)
    try:
        subprocess.run([str(python), str(manage), "runserver", "127.0.0.1:8000"], env=env)
    except KeyboardInterrupt:
        pass
    finally:
        worker.terminate()
        worker.wait()


def docs(args: list[str]) -> None:
    if args[:1] == ["sync"]:
        # Copy each docs/snippets/ file into the page blocks that show it (stdlib only).
        run(sys.executable, ROOT / "tests" / "doc_blocks.py")
        return
    python = ensure_venv(set())
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_MKDOCS_2_WARNING": "1"}
    if args[:1] == ["build"]:
        run(python, "-m", "mkdocs", "build", "--strict", *args[1:], env=env)
    else:
        run(python, "-m", "mkdocs", "serve", "--dev-addr", "127.0.0.1:8001", *args, env=env)


FOLDERS = ("unit", "integration", "acceptance")
NO_TESTS_COLLECTED = 5  # pytest's exit code when a -k or -m filter leaves nothing


def split_test_args(args: list[str]) -> tuple[list[str], list[str], list[str], bool]:
    """(folders, test paths, other pytest arguments, whether to lint first) from
    ``dev.py test``'s arguments."""
    folders, paths, rest, lint = list(FOLDERS), [], [], True
    args = list(args)
    while args:
        arg = args.pop(0)
        if arg == "--tests-only":
            lint = False
        elif arg == "--folders" or arg.startswith("--folders="):
            value = arg.partition("=")[2] or (args.pop(0) if args else "")
            folders = [name for name in value.split(",") if name]
            unknown = set(folders) - set(FOLDERS)
            if unknown or not folders:
                sys.exit(f"--folders takes a comma-separated list of {', '.join(FOLDERS)}")
        elif not arg.startswith("-") and (ROOT / arg.split("::")[0]).exists():
            paths.append(arg)
        else:
            rest.append(arg)
    return folders, paths, rest, lint


def pytest_stage(python: Path, label: str, args: list[str], env: dict[str, str]) -> bool:
    """Run pytest once; True if it passed (or a filter left nothing to run here)."""
    started = time.monotonic()
    code = subprocess.run([str(python), "-m", "pytest", *args], cwd=ROOT, env=env).returncode
    print(f"-- {label}: exit {code} in {time.monotonic() - started:.0f}s", flush=True)
    return code == 0 or (code == NO_TESTS_COLLECTED and any(a.startswith("-") for a in args))


def test(args: list[str]) -> None:
    folders, paths, pytest_args, lint = split_test_args(args)
    urls = os.environ.get("TEST_DATABASE_URLS", "sqlite").split()
    extras = {"postgres" for u in urls if u.startswith("postgres")}
    extras |= {"mysql" for u in urls if u.startswith("mysql")}
    python = ensure_venv(extras)
    base_env = {**os.environ, "PYTHONPATH": str(ROOT)}
    base_env.pop("DATABASE_URL", None)
    if lint:  # --tests-only: CI's later stages on a Python whose checks already ran
        say("ruff")
        run(python, "-m", "ruff", "check", ".")
        run(python, "-m", "ruff", "format", "--check", ".")
        say("mypy")
        run(python, "-m", "mypy", env=base_env)
        say("migrations are up to date")
        run(
            python,
            "-m",
            "django",
            "makemigrations",
            "--check",
            "--dry-run",
            env={**base_env, "DJANGO_SETTINGS_MODULE": "tests.settings"},
        )
        say("docs build (mkdocs --strict)")
        run(
            python,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--quiet",
            "--site-dir",
            ROOT / "build" / "site",
            env=base_env,
        )
    # Paths under tests/unit/ run with the unit tests, once, with no database configured.
    unit_paths = [p for p in paths if Path(p).parts[:2] == ("tests", "unit")]
    if not paths and "unit" in folders:
        unit_paths = ["tests/unit"]
    selection = [p for p in paths if p not in unit_paths]
    if not paths:
        selection = [f"tests/{name}" for name in folders if name != "unit"]
    failed, passed = [], []
    if unit_paths:
        # Whatever the databases: these tests must not need one (tests/unit/conftest.py).
        say(f"{' '.join(unit_paths)}, no database configured (Python {PYTHON_VERSION}, {DJANGO})")
        env = {**base_env, "DJANGO_SETTINGS_MODULE": "tests.settings_no_database"}
        ok = pytest_stage(python, "no database", [*unit_paths, *pytest_args], env)
        (passed if ok else failed).append("no database")
    for url in urls if selection else []:
        label = url.split(":", 1)[0]
        env = dict(base_env) if url == "sqlite" else {**base_env, "DATABASE_URL": url}
        say(f"{' '.join(selection)} on {label} (Python {PYTHON_VERSION}, {DJANGO})")
        ok = pytest_stage(python, label, [*selection, *pytest_args], env)
        (passed if ok else failed).append(label)
    if failed:
        say(f"FAILED on: {', '.join(failed)}")
        sys.exit(1)
    say(f"all tests passed on: {', '.join(passed)}")


def main() -> None:
    command, *rest = sys.argv[1:] or ["help"]
    if command == "demo":
        demo()
    elif command == "test":
        test(rest)
    elif command == "serve":
        serve()
    elif command == "docs":
        docs(rest)
    elif command == "bench":
        python = ensure_venv({"postgres"})
        run(python, ROOT / "bench" / "run.py", *rest, env={**os.environ, "PYTHONPATH": str(ROOT)})
    else:
        print(__doc__)
        sys.exit(0 if command in ("help", "-h", "--help") else 2)


if __name__ == "__main__":
    main()

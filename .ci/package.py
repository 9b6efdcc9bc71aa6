#!/usr/bin/env python3
"""Build the sdist and wheel, check them, and run a fresh project from the wheel alone.

    python3 .ci/package.py

1. ``python -m build`` and ``twine check --strict`` (both in a tools venv of their own).
2. The archives hold what they should: the wheel has the admin's templates and static
   files, the migrations and py.typed; the sdist has no example_project/, tests/, docs/...
3. A clean venv gets Django and the wheel, nothing else (no extras, so no psycopg, and no
   dev tools). In a project from ``django-admin startproject`` at its stock SQLite
   settings (deliberately: no OPTIONS, as a newcomer's project has), a tiny app's two-step
   job is enqueued, ``runworker --burst`` runs it, and the run must be completed; the
   admin's static file is found and its run pages render.

Needs only Python 3.11+ and the package index; everything happens in a temporary
directory. Exits non-zero with the reason on the first failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DJANGO = "Django>=5.2,<5.3" if sys.version_info < (3, 12) else "Django>=6.1,<6.2"
# What a wheel must carry for the app to work when installed, not just in a checkout.
WHEEL_MUST_HAVE = [
    "django_durable/py.typed",
    "django_durable/static/django_durable/admin.css",
    "django_durable/templates/admin/django_durable/run/detail.html",
    "django_durable/templates/admin/django_durable/run/change_list.html",
    "django_durable/migrations/0001_initial.py",
]
# Django, its dependencies, ours, and what a venv starts with: no extras, no dev tools.
# Django's, ours, and croniter (schedules) with python-dateutil, which it needs.
CLEAN_VENV = {
    "django",
    "asgiref",
    "sqlparse",
    "tzdata",
    "croniter",
    "python-dateutil",
    "django-durable-runs",
    "pip",
    "setuptools",
}
SDIST_MUST_NOT_HAVE = ["example_project/", "tests/", "docs/", "bench/", ".ci/", "build/"]

JOBS = """\
from django_durable import job


@job(name="greetings.greet")
def greet(ctx, name: str) -> str:
    greeting = ctx.step("compose", lambda: f"hello {name}")
    return ctx.step("shout", lambda: greeting.upper())
"""
# Run by "manage.py shell -c" in the project, after the worker has drained the queue.
CHECK = """\
import importlib.util

from django.contrib.auth import get_user_model
from django.test import Client
from django.test.utils import setup_test_environment
from django.urls import reverse

from django_durable import get_run
from django_durable.models import Run

assert importlib.util.find_spec("psycopg") is None, "psycopg is installed: not a clean venv"
run = get_run(Run.objects.get().id)
assert (run.status, run.output) == ("completed", "HELLO WHEEL"), (run.status, run.output)

setup_test_environment()  # lets the test client's "testserver" host through
client = Client()
client.force_login(get_user_model().objects.create_superuser("ops", "ops@example.com", "pw"))
listing = client.get(reverse("admin:django_durable_run_changelist"))
assert listing.status_code == 200 and str(run.id) in listing.content.decode(), listing
detail = client.get(reverse("admin:django_durable_run_change", args=[run.id]))
assert detail.status_code == 200 and "shout" in detail.content.decode(), detail
print(f"run {run.id} completed with {run.output!r}; the admin's run list and page render")
"""


def say(message: str) -> None:
    print(f"\n== {message}", flush=True)


def run(*command: str | Path, cwd: Path = ROOT, capture: bool = False) -> str:
    result = subprocess.run(
        [str(part) for part in command], cwd=cwd, text=True, capture_output=capture
    )
    if result.returncode:
        if capture:
            print(result.stdout, result.stderr, sep="\n")
        sys.exit(f"failed (exit {result.returncode}): {' '.join(map(str, command))}")
    return result.stdout if capture else ""


def fail(message: str) -> None:
    sys.exit(f"package check failed: {message}")


def make_venv(path: Path, *packages: str | Path) -> Path:
    venv.create(path, with_pip=True)
    python = path / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", *packages, capture=True)
    return python


def build(tmp: Path) -> tuple[Path, Path]:
    say("python -m build; twine check --strict")
    tools = make_venv(tmp / "tools", "build>=1.2", "twine>=6.1")
    dist = tmp / "dist"
    run(tools, "-m", "build", "--outdir", dist, ROOT, capture=True)
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    run(tools, "-m", "twine", "check", "--strict", wheel, sdist)
    print(f"built {wheel.name} and {sdist.name}")
    return wheel, sdist


def check_archives(wheel: Path, sdist: Path) -> None:
    say("archive contents")
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    missing = [name for name in WHEEL_MUST_HAVE if name not in in_wheel]
    if missing:
        fail(f"the wheel lacks {missing}")
    strays = sorted({name.split("/")[0] for name in in_wheel} - {"django_durable"})
    if [name for name in strays if not name.endswith(".dist-info")]:
        fail(f"the wheel holds more than the package: {strays}")
    with tarfile.open(sdist) as archive:
        # Member names start with the sdist's own directory, e.g. django_durable_runs-0.1.0/.
        in_sdist = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    junk = sorted(
        name for name in in_sdist for prefix in SDIST_MUST_NOT_HAVE if name.startswith(prefix)
    )
    if junk:
        fail(f"the sdist ships files that are not the package: {junk[:10]}")
    for needed in ["pyproject.toml", "README.md", "LICENSE", *WHEEL_MUST_HAVE]:
        if needed not in in_sdist:
            fail(f"the sdist lacks {needed}")
    print(f"wheel: {len(in_wheel)} files; sdist: {len(in_sdist)} files, no {SDIST_MUST_NOT_HAVE}")


def run_a_project(tmp: Path, wheel: Path) -> None:
    say(f"a fresh project with only {DJANGO} and the wheel")
    python = make_venv(tmp / "clean", DJANGO, wheel)
    listed = run(python, "-m", "pip", "list", "--format=freeze", capture=True).split()
    installed = {line.split("==")[0].lower() for line in listed}
    print("installed: " + " ".join(sorted(installed)))
    if installed - CLEAN_VENV:
        fail(f"the clean venv has more than Django and the wheel: {installed - CLEAN_VENV}")
    project = tmp / "project"
    project.mkdir()
    run(python, "-m", "django", "startproject", "site_config", project)
    app = project / "greetings"
    app.mkdir()
    (app / "__init__.py").write_text("")
    (app / "jobs.py").write_text(JOBS)
    settings = project / "site_config" / "settings.py"
    settings.write_text(
        settings.read_text()
        + '\nINSTALLED_APPS += ["django_durable", "greetings"]\nSTATIC_ROOT = BASE_DIR / "static"\n'
    )
    # The project's own settings, not whatever the calling shell points at.
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH")}

    def manage(*args: str, capture: bool = False) -> str:
        result = subprocess.run(
            [str(python), "manage.py", *args], cwd=project, env=env, text=True, capture_output=True
        )
        if result.returncode:
            print(result.stdout, result.stderr, sep="\n")
            fail(f"manage.py {args[0]} exited {result.returncode}")
        if not capture:
            print(textwrap.indent((result.stdout + result.stderr).strip(), "  "))
        return result.stdout

    manage("migrate", "--verbosity", "0")
    manage("shell", "-c", "from greetings.jobs import greet; print(greet.enqueue(name='wheel').id)")
    manage("runworker", "--burst")
    found = manage("findstatic", "django_durable/admin.css", capture=True)
    if "site-packages/django_durable/static" not in found:
        fail(f"findstatic did not find the installed admin.css: {found}")
    manage("collectstatic", "--noinput", "--verbosity", "0")
    if not (project / "static" / "django_durable" / "admin.css").is_file():
        fail("collectstatic did not copy django_durable/admin.css")
    manage("shell", "-c", CHECK)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="durable-package-") as name:
        tmp = Path(name)
        wheel, sdist = build(tmp)
        check_archives(wheel, sdist)
        run_a_project(tmp, wheel)
    say("package check passed")


if __name__ == "__main__":
    main()

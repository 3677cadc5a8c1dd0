"""Shared fixtures: small seeded cohorts and the optional ../shared reference data."""

import atexit
import locale
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# subprocesses (examples, docs, CLI, README, joblib workers) import the package of
# this checkout, as the tests do, not whichever copy is installed
_REPO = str(Path(__file__).resolve().parents[1])
os.environ["PYTHONPATH"] = os.pathsep.join(
    [_REPO, *filter(None, [os.environ.get("PYTHONPATH")])]
)

# the radiomics cache's secret key: one per test session, outside the user's
# ~/.config (subprocesses and workers inherit the variable)
_KEY_FOLDER = tempfile.mkdtemp(prefix="medprep-cache-key-")
atexit.register(shutil.rmtree, _KEY_FOLDER, ignore_errors=True)
with os.fdopen(os.open(os.path.join(_KEY_FOLDER, "cache.key"),
                       os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as _out:
    _out.write(os.urandom(32))
os.environ["SKLEARN_MEDPREP_CACHE_KEY"] = os.path.join(_KEY_FOLDER, "cache.key")

# ../shared/data next to the repository; MEDPREP_SHARED_DATA overrides it (a git
# worktree elsewhere)
SHARED_DATA = Path(
    os.environ.get("MEDPREP_SHARED_DATA")
    or Path(__file__).resolve().parents[1].parent / "shared" / "data"
)


@pytest.fixture(autouse=True)
def _keep_locale():
    """Give every test the locale it started with.

    GDCM's DICOM writer (SimpleITK, used by the DICOM tests) resets the C locale to
    "C", after which Python decodes subprocess output as ASCII for the rest of the
    worker process.
    """
    saved = locale.setlocale(locale.LC_ALL)
    yield
    if locale.setlocale(locale.LC_ALL) != saved:
        locale.setlocale(locale.LC_ALL, saved)


@pytest.fixture(scope="session")
def shared_data():
    """Path of ../shared/data; the test is skipped where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def cohort_dir(tmp_path_factory):
    """A small 3D cohort written to disk once per session (paths in the table)."""
    from sklearn_medprep.datasets import make_multisite_cohort

    folder = tmp_path_factory.mktemp("cohort")
    return make_multisite_cohort(12, 3, shape=(20, 22, 18), path=folder, random_state=0)


@pytest.fixture
def tmpfs(tmp_path):
    """Factory of small tmpfs folders: ``tmpfs(size="64k", readonly=False)``.

    A real full disk (or a read-only one) for the write-fault tests; unmounted
    at the end of the test. Skipped, with the reason, where mounting is not
    allowed (not root); this project's CI runs as root and runs them.
    """
    import subprocess

    mounted = []

    def make(size="64k", readonly=False):
        folder = tmp_path / f"tmpfs{len(mounted)}"
        folder.mkdir()
        options = f"size={size}" + (",ro" if readonly else "")
        try:
            done = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                capture_output=True, text=True, check=False,
            )
        except OSError as exc:
            pytest.skip(f"cannot mount a tmpfs here ({exc})")
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(folder)
        return folder

    yield make
    for folder in reversed(mounted):
        subprocess.run(["umount", str(folder)], check=False)


@pytest.fixture
def fill_disk():
    """``fill_disk(folder, leave=0)``: fill ``folder``'s file system (a tmpfs)."""
    return _fill_disk


def _fill_disk(folder, leave=0):
    """Fill the file system of ``folder``, leaving about ``leave`` bytes free."""
    filler = Path(folder) / "filler.bin"
    with open(filler, "wb") as handle:
        chunk = b"\0" * 4096
        while True:
            free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
            if free <= leave:
                break
            try:
                handle.write(chunk[: max(1, min(4096, free - leave))])
                handle.flush()
            except OSError:
                break
    return filler


# -- reporting: how long a run takes, what the x marks of a test run are ---------
def pytest_report_header(config):
    return [
        "the whole suite takes about 11 min per stack with 2 workers on a 2-core "
        "machine also running other jobs, and up to about 40 min on a heavily "
        "loaded one; x marks are expected failures, summarised at the end"
    ]


_CHECKS_TEST = "tests/test_common.py::test_sklearn_compatible_estimator"


def pytest_terminal_summary(terminalreporter):
    """Say what the expected failures are and where their reasons are listed.

    Most of a full run's ``x`` marks are scikit-learn's estimator checks that
    the subject-table estimators fail by design (they read named columns of a
    subject table, not anonymous numeric arrays); each has its reason in the one
    table ``EXPECTED_FAILED_CHECKS``.
    """
    xfailed = terminalreporter.stats.get("xfailed", [])
    if not xfailed:
        return
    checks = [r for r in xfailed if r.nodeid.startswith(_CHECKS_TEST)]
    per_estimator = {}
    for report in checks:
        name = report.nodeid.split("[", 1)[-1].split("(", 1)[0]
        per_estimator[name] = per_estimator.get(name, 0) + 1
    others = len(xfailed) - len(checks)
    write = terminalreporter.write_line
    terminalreporter.section("expected failures (x)")
    write(f"{len(xfailed)} expected failures (x), as planned:")
    if checks:
        listed = ", ".join(f"{n} {k}" for k, n in sorted(per_estimator.items()))
        write(f"  {len(checks)} scikit-learn estimator checks that the subject-table "
              "estimators fail by design (they read named table columns, not "
              f"numeric arrays): {listed};")
        write("  each check's reason and the check replacing it: "
              "EXPECTED_FAILED_CHECKS in sklearn_medprep/utils/_test_common.py")
    if others:
        write(f"  {others} other tests marked xfail, each with its reason "
              "(pytest -rx lists them)")

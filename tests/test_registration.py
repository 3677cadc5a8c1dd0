"""A public name is registered in every place CONTRIBUTING.md lists.

The places: its subpackage's ``__all__`` (and lazy map), the package's
``__all__``, ``docs/api.rst``, and for an estimator ``TEST_CASES`` in
``utils/_test_common.py``. CONTRIBUTING.md's map names every subpackage.
"""

import importlib
import inspect
import re
from pathlib import Path

import pytest

import sklearn_medprep
from sklearn_medprep.utils import all_estimators
from sklearn_medprep.utils._test_common import TEST_CASES
from sklearn_medprep.utils.discovery import PUBLIC_SUBPACKAGES

ROOT = Path(__file__).resolve().parents[1]
# the user-facing API page and the developer page (estimator checks, discovery)
API = "\n".join(
    (ROOT / "docs" / page).read_text() for page in ("api.rst", "developer.rst")
)
CONTRIBUTING = (ROOT / "CONTRIBUTING.md").read_text()
# subpackages whose names users import from the subpackage itself, as in
# scikit-learn (sklearn.model_selection.KFold); the rest are re-exported at the top
SUBPACKAGE_ONLY = {"datasets", "model_selection", "utils"}


def _api_names():
    """Names listed in docs/api.rst, qualified by the current module."""
    names, module = set(), "sklearn_medprep"
    for line in API.splitlines():
        current = re.match(r"\.\. currentmodule:: (\S+)", line)
        if current:
            module = current.group(1)
        entry = re.match(r"   ([A-Za-z_]\w*)\s*$", line)
        if entry:
            names.add(f"{module}.{entry.group(1)}")
    return names


API_NAMES = _api_names()


def test_api_page_was_parsed():
    assert "sklearn_medprep.ComBatHarmonizer" in API_NAMES
    assert "sklearn_medprep.model_selection.SiteStratifiedKFold" in API_NAMES


def test_every_subpackage_is_on_the_map_and_is_a_package():
    folders = {
        p.parent.name for p in (ROOT / "sklearn_medprep").glob("*/__init__.py")
    }
    assert folders == set(PUBLIC_SUBPACKAGES)
    for name in PUBLIC_SUBPACKAGES:
        assert f"`{name}/`" in CONTRIBUTING, f"CONTRIBUTING.md's map lacks {name}/"


def test_contributing_names_places_that_exist():
    for path in re.findall(r"`((?:sklearn_medprep|tests|docs|benchmarks)/[\w/.]+)`",
                           CONTRIBUTING):
        assert (ROOT / path).exists(), path
    for module in re.findall(r"`((?:utils|io|table)/_?\w+\.py)`", CONTRIBUTING):
        assert (ROOT / "sklearn_medprep" / module).exists(), module


@pytest.mark.parametrize(
    "package", sorted(set(PUBLIC_SUBPACKAGES) - SUBPACKAGE_ONLY)
)
def test_subpackage_names_are_top_level_names_and_documented(package):
    # a name users import from the top (estimators, functions) is re-exported
    # there and documented there; an extension point (a backend's base class,
    # its registry) may stay in its subpackage and is documented there
    module = importlib.import_module(f"sklearn_medprep.{package}")
    for name in module.__all__:
        if name in sklearn_medprep.__all__:
            assert sklearn_medprep._LAZY[name] == f".{package}", name
            assert f"sklearn_medprep.{name}" in API_NAMES, (
                f"add {name} to docs/api.rst"
            )
        else:
            assert f"sklearn_medprep.{package}.{name}" in API_NAMES, (
                f"sklearn_medprep.{package}.{name} is public: add it to "
                "sklearn_medprep/__init__.py (_LAZY and __all__) and to docs/api.rst, "
                f"or document it in docs/api.rst under sklearn_medprep.{package}"
            )
    estimators = {name for name, _ in all_estimators()}
    for name in set(module.__all__) & estimators:
        assert name in sklearn_medprep.__all__, f"estimator {name} must be top-level"


def test_top_level_names_come_from_one_subpackage():
    for name in sklearn_medprep.__all__:
        if name == "__version__":
            continue
        package = sklearn_medprep._LAZY[name].lstrip(".")
        assert name in importlib.import_module(f"sklearn_medprep.{package}").__all__


@pytest.mark.parametrize("package", sorted(SUBPACKAGE_ONLY))
def test_subpackage_only_names_are_documented(package):
    module = importlib.import_module(f"sklearn_medprep.{package}")
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert f"sklearn_medprep.{package}.{name}" in API_NAMES, (
                f"add {name} to docs/api.rst (currentmodule sklearn_medprep.{package})"
            )


def test_every_estimator_has_a_test_case():
    names = {name for name, _ in all_estimators()}
    assert names and names <= set(TEST_CASES)

"""Importing the package and its table/radiomics/ComBat paths loads no torch.

torch and torchio take seconds to import; a user who harmonizes a feature table
or extracts radiomics never needs them. Checked in a fresh interpreter, where
nothing else has imported them.
"""

import subprocess
import sys

import pytest

import sklearn_medprep
from sklearn_medprep.utils._optional import OPTIONAL, import_optional

NO_TORCH = """
import sys
import sklearn_medprep
from sklearn_medprep import ComBatHarmonizer, RadiomicsExtractor, validate_table
from sklearn_medprep import site_effect_report, load_image, read_manifest
from sklearn_medprep.datasets import make_multisite_cohort
from sklearn_medprep.model_selection import SiteStratifiedKFold
import sklearn_medprep.utils

table = make_multisite_cohort(8, 2, shape=(24, 26, 22), random_state=0)
validate_table(table, image="image", mask="mask", required=["site"])
features = RadiomicsExtractor(
    settings={"featureClass": {"firstorder": ["Mean", "Variance", "Energy"]}},
    passthrough=["site", "age"],
).fit_transform(table)
out = ComBatHarmonizer(site="site", covariates=["age"]).fit_transform(features)
assert out.shape == (8, 3) and out.index.equals(table.index), out.shape
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchio"))
print("LOADED", loaded)
from sklearn_medprep import ImageTensorizer, TorchIOAugmenter, TorchIOPreprocessor
heavy = ("torch", "torchio")
print("NAMES", sorted(m for m in sys.modules if m.split(".")[0] in heavy))
import torchio as tio
TorchIOPreprocessor(tio.RescaleIntensity()).fit_transform(table.head(2))
print("AFTER", "torch" in sys.modules)
"""


def test_import_and_radiomics_combat_load_no_torch():
    result = subprocess.run(
        [sys.executable, "-c", NO_TORCH], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "LOADED []" in result.stdout, result.stdout
    # importing the names of the TorchIO estimators does not load it either
    assert "NAMES []" in result.stdout, result.stdout
    # using one does
    assert "AFTER True" in result.stdout, result.stdout


WITHOUT_TORCH = """
import sys


class NoTorch:  # as if the `torchio` extra were not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchio"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


sys.meta_path.insert(0, NoTorch())
from sklearn_medprep import (
    ComBatHarmonizer, ImageTensorizer, RadiomicsExtractor, TorchIOPreprocessor,
)
from sklearn_medprep.datasets import make_multisite_cohort

table = make_multisite_cohort(6, 2, shape=(16, 18, 14), random_state=0)
features = RadiomicsExtractor(
    settings={"featureClass": {"firstorder": ["Mean", "Energy"]}},
    passthrough=["site", "age"],
).fit_transform(table)
print("COMBAT", ComBatHarmonizer(site="site", covariates=["age"]).fit_transform(
    features).shape)
for name, use in [
    ("TorchIOPreprocessor", lambda: TorchIOPreprocessor([]).fit(table)),
    ("ImageTensorizer", lambda: ImageTensorizer().fit_transform(table)),
    ("TorchIOCollate", lambda: __import__("sklearn_medprep").TorchIOCollate),
]:
    try:
        use()
    except ImportError as exc:
        print(name, "->", exc)
    else:
        print(name, "-> no error")
"""


def test_without_torch_the_torchio_estimators_name_the_extra():
    # the lean install (no `torchio` extra): radiomics and ComBat work, the TorchIO
    # estimators and the nets say what to install
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH], capture_output=True, text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "COMBAT (6, 2)" in out, out
    for name in ("TorchIOPreprocessor", "ImageTensorizer", "TorchIOCollate"):
        line = next(li for li in out.splitlines() if li.startswith(name + " ->"))
        assert 'pip install "sklearn-medprep[torchio]"' in line, line
        assert "needs torch" in line, line


def test_lazy_names_resolve_and_are_listed():
    assert set(sklearn_medprep._LAZY) | {"__version__"} == set(sklearn_medprep.__all__)
    for name in sklearn_medprep.__all__:
        assert getattr(sklearn_medprep, name) is not None
        assert name in dir(sklearn_medprep)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        sklearn_medprep.Nope  # noqa: B018


@pytest.mark.parametrize("name", sorted(OPTIONAL))
def test_missing_optional_dependency_names_its_extra(name, monkeypatch):
    monkeypatch.setitem(sys.modules, name, None)  # import of `name` now fails
    extra = OPTIONAL[name][1]
    with pytest.raises(ImportError, match=rf'sklearn-medprep\[{extra}\]"') as info:
        import_optional(name, "this feature")
    assert str(info.value).startswith("this feature needs ")


def test_plot_harmonization_without_matplotlib(monkeypatch):
    from sklearn_medprep import plot_harmonization
    from sklearn_medprep.datasets import make_multisite_features

    table = make_multisite_features(20, 3, 2, random_state=0)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r'sklearn-medprep\[plot\]'):
        plot_harmonization(table, table, "site")


COMBAT_ONLY = """
import sys
from sklearn_medprep import ComBatHarmonizer
from sklearn_medprep.datasets import make_multisite_features

table = make_multisite_features(30, 4, 3, random_state=0).drop(columns=["sex", "y"])
out = ComBatHarmonizer(site="site", covariates=["age"]).fit_transform(table)
assert out.shape == (30, 4), out.shape  # the 4 features; site, age consumed
heavy = ("SimpleITK", "torch", "torchio", "radiomics", "nibabel", "matplotlib")
print("LOADED", sorted(m for m in sys.modules if m.split(".")[0] in heavy))
"""


def test_combat_alone_loads_no_image_library():
    # the subject table's pure-pandas rules (table._checks) are all ComBat needs
    result = subprocess.run(
        [sys.executable, "-c", COMBAT_ONLY], capture_output=True, text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "LOADED []" in result.stdout, result.stdout


@pytest.mark.parametrize(
    "package",
    ["harmonization", "radiomics", "images", "nets", "qc", "table", "io", "utils"],
)
def test_subpackage_lazy_names_resolve_and_are_listed(package):
    import importlib

    module = importlib.import_module(f"sklearn_medprep.{package}")
    assert set(module._LAZY) == set(module.__all__)
    for name in module.__all__:
        value = getattr(module, name)
        assert value is not None and name in dir(module)
        # the package-level name is the same object as the subpackage's
        if name in sklearn_medprep.__all__:
            assert getattr(sklearn_medprep, name) is value
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        module.Nope  # noqa: B018


def test_monai_seeding_module_loads_no_torch():
    # the seeded tio.Lambda class is built on first use, not at import
    code = (
        "import sys; import sklearn_medprep.images._monai, "
        "sklearn_medprep.images._walk; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == "False"

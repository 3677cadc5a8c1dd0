"""The 0.1.0 module paths still import, with a warning, for one release.

``tests/data/fitted_0.1.0_pandas{2,3}.pkl`` were written by
``tools/make_legacy_pickle.py`` with release 0.1.0's flat layout
(``sklearn_medprep._combat.ComBatHarmonizer``), one on each supported stack (a
pandas pickle loads only under the pandas major version that wrote it);
``tests/data/module_names_0.1.0.json`` lists the public names of each 0.1.0
module. Both were made before the move to subpackages and are not regenerated.
"""

import json
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sklearn_medprep._legacy import LEGACY_MODULES

DATA = Path(__file__).resolve().parent / "data"
NAMES = json.loads((DATA / "module_names_0.1.0.json").read_text())


def test_every_0_1_0_module_has_a_legacy_path():
    assert set(NAMES) == set(LEGACY_MODULES)


@pytest.mark.parametrize("old", sorted(NAMES))
def test_legacy_module_warns_and_serves_its_0_1_0_names(old):
    sys.modules.pop(f"sklearn_medprep.{old}", None)
    with pytest.warns(FutureWarning, match=rf"sklearn_medprep\.{old} is the 0\.1\.0"):
        module = __import__(f"sklearn_medprep.{old}", fromlist=["_"])
    missing = [name for name in NAMES[old] if not hasattr(module, name)]
    assert not missing, f"{old}: {missing}"
    # the alias serves the new objects, not copies
    for name in NAMES[old]:
        value = getattr(module, name)
        owner = getattr(value, "__module__", "") or ""
        if isinstance(value, type):
            assert not owner.startswith(f"sklearn_medprep.{old}"), (old, name)
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        module.no_such_name  # noqa: B018


def test_fitted_0_1_0_estimators_load_and_compute_the_same():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        major = pd.__version__.split(".")[0]
        with open(DATA / f"fitted_0.1.0_pandas{major}.pkl", "rb") as f:
            state = pickle.load(f)
    assert state["version"] == "0.1.0"
    est, expected = state["estimators"], state["expected"]
    # instances of today's classes, found through the old module paths
    assert type(est["covbat"]).__module__ == "sklearn_medprep.harmonization._covbat"
    X, images = state["X"], state["images"]
    # the models' own numbers: to rounding (the stored values were computed on
    # one stack; matrix products of another BLAS may differ in the last bit:
    # numpy 1.26 gives 13 of 120 probabilities 1 ulp apart)
    np.testing.assert_allclose(
        est["combat_pipeline"].predict_proba(X), expected["combat_pipeline"],
        rtol=1e-13, atol=1e-15,
    )
    np.testing.assert_allclose(est["covbat"].transform(X), expected["covbat"],
                               rtol=1e-13, atol=1e-15)
    features = est["radiomics"].transform(images).drop(columns=["site", "age"])
    np.testing.assert_array_equal(features.to_numpy(dtype=float), expected["radiomics"])
    out = est["preprocess"].transform(images)
    data = np.stack([out["image"].iloc[i].data.numpy() for i in range(len(out))])
    np.testing.assert_array_equal(data, expected["preprocess"])


def test_old_path_warning_is_raised_once_per_process():
    code = (
        "import warnings\n"
        "warnings.simplefilter('always')\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    from sklearn_medprep._combat import ComBatHarmonizer\n"
        "    from sklearn_medprep._combat import ComBatHarmonizer as again\n"
        "from sklearn_medprep import ComBatHarmonizer as new\n"
        "assert ComBatHarmonizer is again is new\n"
        "print(sum(issubclass(x.category, FutureWarning) for x in w))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "1"

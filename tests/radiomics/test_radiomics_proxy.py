"""RadiomicsExtractor refuses a passthrough column that is the target in
disguise (issue 20), default and explicit ``passthrough=``, also in a Pipeline."""

import re
import warnings

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline

from sklearn_medprep import RadiomicsExtractor
from sklearn_medprep.exceptions import TargetProxyError, TargetProxyWarning

FIRSTORDER = {"featureClass": {"firstorder": ["Mean", "Energy"]}}
N = 6


def _table():
    rng = np.random.default_rng(0)
    images, masks = [], []
    for seed in range(N):
        array = rng.normal(300 + 10 * seed, 60, (7, 8, 9))
        image = sitk.GetImageFromArray(array)
        mask_array = np.zeros(array.shape, np.uint8)
        mask_array[1:5, 2:6, 1:6] = 1
        mask = sitk.GetImageFromArray(mask_array)
        mask.CopyInformation(image)
        images.append(image)
        masks.append(mask)
    return pd.DataFrame(
        {
            "image": images,
            "mask": masks,
            "site": ["A", "B", "C"] * 2,
            "age": [41.0, 63.5, 37.0, 58.0, 72.5, 49.0],
        },
        index=pd.Index([f"sub-{i}" for i in range(N)], name="subject"),
    )


@pytest.mark.parametrize("passthrough", [None, ["site", "age"], ["age"]])
def test_passthrough_proxy_refused(passthrough):
    table = _table()
    y = table["age"].to_numpy() / 12  # y in years, the column in months
    extractor = RadiomicsExtractor(settings=FIRSTORDER, passthrough=passthrough)
    expected = re.escape("equals y up to a change of unit: y = 0.0833333 * age + 0")
    with pytest.raises(TargetProxyError, match=expected) as info:
        extractor.fit(table, y)
    assert info.value.column == "age"
    assert "RadiomicsExtractor would hand column 'age'" in str(info.value)
    assert "passthrough" not in str(info.value)  # no setting lets it through
    # in a Pipeline, y reaches the extractor's fit_transform
    with pytest.raises(TargetProxyError, match="column 'age'"):
        make_pipeline(RadiomicsExtractor(settings=FIRSTORDER,
                                         passthrough=passthrough),
                      RidgeCV()).fit(table, y)


def test_passthrough_relabelled_class_refused_and_clean_table_fits():
    table = _table()
    y = np.array(["c", "p", "c", "p", "c", "p"])
    table["group"] = np.where(y == "p", 1, 0)
    with pytest.raises(TargetProxyError, match="is y relabelled") as info:
        RadiomicsExtractor(settings=FIRSTORDER).fit(table, y)
    assert info.value.column == "group"
    # a column that is not handed on is not checked; y=None checks nothing
    with warnings.catch_warnings():
        warnings.simplefilter("error", TargetProxyWarning)
        ex = RadiomicsExtractor(settings=FIRSTORDER, passthrough=["site"])
        out = ex.fit_transform(table, y)
        RadiomicsExtractor(settings=FIRSTORDER).fit(table)
    assert list(out.columns[-1:]) == ["site"]
    assert out.index.equals(table.index)

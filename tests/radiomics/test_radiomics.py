"""RadiomicsExtractor: output contract, settings, error policy, multi-ROI rows."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from radiomics.featureextractor import RadiomicsFeatureExtractor
from sklearn.base import clone

from sklearn_medprep import RadiomicsExtractor, expand_labels
from sklearn_medprep.exceptions import (
    GeometryMismatchError,
    ImageReadError,
    MedprepWarning,
    SubjectTableError,
)

FIRSTORDER = {"featureClass": {"firstorder": [], "shape": ["VoxelVolume"]}}


def _case(seed, shape=(9, 8, 7), spacing=(1.0, 0.8, 1.3), labels=(1,)):
    """Asymmetric image and a mask holding blobs of each label."""
    rng = np.random.default_rng(seed)
    array = rng.normal(300 + 10 * seed, 60, shape)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin((3.0, -2.0, 5.5))
    mask_array = np.zeros(shape, np.uint8)
    z, y, x = shape
    mask_array[1 : z - 3, 2 : y - 2, 1 : x - 3] = labels[0]
    mask_array[2, 3, 2] = 0
    for k, value in enumerate(labels[1:], start=1):
        mask_array[z - 2, 1 : 1 + 2 * k + 1, 1 : x - 1] = value
    mask = sitk.GetImageFromArray(mask_array)
    mask.CopyInformation(image)
    return image, mask


def _table(n=3, **kwargs):
    images, masks = zip(*(_case(seed, **kwargs) for seed in range(n)))
    return pd.DataFrame(
        {
            "image": list(images),
            "site": [f"site_{'ABC'[i % 3]}" for i in range(n)],
            "mask": list(masks),
            "age": np.arange(n) * 3.5 + 40,
        },
        index=pd.Index([f"sub-{i:03d}" for i in range(n)], name="subject"),
    )


def _reference(image, mask, params=None, label=1):
    params = json.loads(json.dumps(params or {}))
    params.setdefault("setting", {})["additionalInfo"] = False
    result = RadiomicsFeatureExtractor(params).execute(image, mask, label=label)
    return pd.Series({k: float(v) for k, v in result.items()})


def test_output_matches_pyradiomics_index_order_and_passthrough():
    table = _table(3).iloc[[2, 0, 1]]  # non-sorted index must survive
    extractor = RadiomicsExtractor()
    out = extractor.fit_transform(table)
    assert out.index.equals(table.index)
    ref = _reference(table["image"].iloc[0], table["mask"].iloc[0])
    assert list(out.columns) == [*ref.index, "site", "age"]
    assert (out.dtypes[ref.index] == np.float64).all()
    for i, row in enumerate(table.index):
        ref = _reference(table["image"].iloc[i], table["mask"].iloc[i])
        np.testing.assert_allclose(out.loc[row, ref.index].to_numpy(float), ref,
                                   rtol=1e-12, atol=0)
    pd.testing.assert_frame_equal(out[["site", "age"]], table[["site", "age"]])
    assert list(extractor.get_feature_names_out()) == list(out.columns)
    # transform of a new table (rows in another order) agrees row by row
    again = extractor.transform(table.iloc[::-1])
    pd.testing.assert_frame_equal(again, out.iloc[::-1])


def test_passthrough_list_and_set_output():
    table = _table(2)
    extractor = RadiomicsExtractor(settings=FIRSTORDER, passthrough=["age"])
    extractor.set_output(transform="pandas")
    out = extractor.fit(table).transform(table)
    assert list(out.columns[-1:]) == ["age"]
    assert "site" not in out.columns
    assert out.columns[0] == "original_shape_VoxelVolume"
    assert list(out.columns) == list(extractor.get_feature_names_out())
    extractor.set_output(transform="default")
    assert isinstance(extractor.transform(table), pd.DataFrame)


def test_passthrough_columns_keep_their_values_and_dtypes():
    # the passthrough columns are X's own (values, dtypes, order), also
    # nullable, categorical and datetime columns, and an integer index
    table = _table(3)
    table.index = pd.Index([7, 3, 5], name="subject")
    table["group"] = pd.Categorical(["x", "y", "x"], categories=["y", "x"])
    table["count"] = pd.array([1, None, 3], dtype="Int64")
    table["flag"] = [True, False, True]
    table["when"] = pd.to_datetime(["2020-01-01", "2021-06-30", "2022-12-31"])
    columns = ["when", "flag", "count", "group", "site", "age"]
    extractor = RadiomicsExtractor(settings=FIRSTORDER, passthrough=columns)
    out = extractor.fit_transform(table)
    pd.testing.assert_frame_equal(out[columns], table[columns], check_exact=True)
    assert list(out.columns) == list(extractor.get_feature_names_out())
    assert out.index.equals(table.index)


def test_settings_dict_yaml_json_give_same_features(tmp_path):
    import yaml

    params = {
        "imageType": {"Original": {}, "Square": {}},
        "featureClass": {"firstorder": ["Mean", "Entropy"], "glcm": ["Contrast"]},
        "setting": {"binWidth": 10, "label": 1},
    }
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "p.json").write_text(json.dumps(params))
    table = _table(2)
    outs = [
        RadiomicsExtractor(settings=s).fit_transform(table)
        for s in (params, str(tmp_path / "p.yaml"), tmp_path / "p.json")
    ]
    ref = _reference(table["image"].iloc[1], table["mask"].iloc[1], params)
    assert list(outs[0].columns[: len(ref)]) == list(ref.index)
    assert any(name.startswith("square_") for name in ref.index)
    np.testing.assert_allclose(outs[0].iloc[1, : len(ref)].to_numpy(float), ref,
                               rtol=1e-12, atol=0)
    for out in outs[1:]:
        pd.testing.assert_frame_equal(out, outs[0])


@pytest.mark.parametrize(
    "settings, match",
    [
        ({"setting": {"binWidht": 5}}, "binWidht"),
        ({"imageType": {"Sobel": {}}}, "Sobel"),
        ({"setting": {"binWidth": -1}}, "binWidth"),
        ({"featureClass": {"glcm": ["NoSuchFeature"]}}, "NoSuchFeature"),
    ],
)
def test_invalid_settings_raise_in_fit_with_clear_message(settings, match):
    with pytest.raises(ValueError, match=f"invalid PyRadiomics settings.*{match}"):
        RadiomicsExtractor(settings=settings).fit(_table(1))


def test_missing_settings_file_and_clone_keeps_params(tmp_path):
    extractor = RadiomicsExtractor(settings=str(tmp_path / "nope.yaml"))
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        extractor.fit(_table(1))
    params = {"setting": {"binWidth": 5}}
    cloned = clone(RadiomicsExtractor(settings=params, label=2))
    assert cloned.get_params()["settings"] == params
    assert cloned.label == 2


def test_include_diagnostics_matches_pyradiomics_columns():
    table = _table(1)
    out = RadiomicsExtractor(settings=FIRSTORDER, include_diagnostics=True)
    out = out.fit_transform(table)
    ref = RadiomicsFeatureExtractor(FIRSTORDER).execute(
        table["image"].iloc[0], table["mask"].iloc[0]
    )
    features = [c for c in out.columns if c not in ("site", "age")]
    assert features == list(ref)
    assert out.loc["sub-000", "diagnostics_Image-original_Hash"] == (
        ref["diagnostics_Image-original_Hash"]
    )
    first = [k for k in ref if not k.startswith("diagnostics")][0]
    assert out.loc["sub-000", first] == float(ref[first])


# ------------------------------------------------------------- error policy
def _bad_table(tmp_path):
    table = _table(5)
    image, mask = _case(0)
    images, masks = table["image"].tolist(), table["mask"].tolist()
    images[1] = str(tmp_path / "missing.nii.gz")
    corrupt = tmp_path / "corrupt.nrrd"
    corrupt.write_bytes(b"NRRD0004\nnot really\n")
    masks[2] = str(corrupt)
    empty = sitk.Image(mask.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(mask)
    masks[3] = empty
    shifted = sitk.Image(mask)
    shifted.SetOrigin((0.0, 0.0, 0.0))
    masks[4] = shifted
    table["image"] = pd.Series(images, index=table.index, dtype=object)
    table["mask"] = pd.Series(masks, index=table.index, dtype=object)
    return table


@pytest.mark.parametrize(
    "row, error, column, file",
    [
        ("sub-001", ImageReadError, "image", "missing.nii.gz"),
        ("sub-002", ImageReadError, "mask", "corrupt.nrrd"),
        ("sub-003", SubjectTableError, "mask", None),
        ("sub-004", GeometryMismatchError, "mask", None),
    ],
)
def test_on_error_raise_names_row_column_file(tmp_path, row, error, column, file):
    table = _bad_table(tmp_path)
    extractor = RadiomicsExtractor(settings=FIRSTORDER).fit(table.iloc[:1])
    with pytest.raises(error) as info:
        extractor.transform(table.loc[["sub-000", row]])
    assert info.value.row == row
    assert info.value.column == column
    if file is not None:
        assert info.value.file.endswith(file)
        assert file in str(info.value)
    assert f"row {row!r}" in str(info.value)


def test_absent_label_and_empty_mask_messages():
    table = _table(1, labels=(1, 3))
    with pytest.raises(SubjectTableError, match=r"label 2 is not present.*\[1, 3\]"):
        RadiomicsExtractor(label=2).fit(table)
    image, mask = _case(0)
    empty = sitk.Image(mask.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(mask)
    table = pd.DataFrame({"image": [image], "mask": [empty]}, index=["s"])
    with pytest.raises(SubjectTableError, match="mask is empty"):
        RadiomicsExtractor().fit(table)


def test_on_error_nan_keeps_rows_warns_and_lists_errors(tmp_path):
    table = _bad_table(tmp_path)
    extractor = RadiomicsExtractor(settings=FIRSTORDER, on_error="nan")
    with pytest.warns(MedprepWarning, match="4 of 5 rows failed"):
        out = extractor.fit_transform(table)
    assert out.index.equals(table.index)
    features = list(extractor.feature_names_)
    assert out.loc["sub-000", features].notna().all()
    assert out.loc["sub-001":, features].isna().all().all()
    pd.testing.assert_frame_equal(out[["site", "age"]], table[["site", "age"]])
    errors = extractor.extraction_errors_
    assert list(errors["row"]) == ["sub-001", "sub-002", "sub-003", "sub-004"]
    assert list(errors["column"]) == ["image", "mask", "mask", "mask"]
    assert errors["file"].iloc[0].endswith("missing.nii.gz")
    assert "geometry" in errors["message"].iloc[3]
    # the good row equals PyRadiomics
    ref = _reference(table["image"].iloc[0], table["mask"].iloc[0], FIRSTORDER)
    np.testing.assert_allclose(out.loc["sub-000", ref.index].to_numpy(float), ref,
                               rtol=1e-12)
    # a first failing row does not prevent fit from learning the names
    with pytest.warns(MedprepWarning):
        out2 = clone(extractor).fit_transform(table.iloc[::-1])
    pd.testing.assert_frame_equal(out2, out.iloc[::-1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        extractor.transform(table.iloc[:1])
    assert extractor.extraction_errors_.empty


def test_all_rows_failing_raises_even_with_nan(tmp_path):
    table = _bad_table(tmp_path).iloc[1:]
    with pytest.raises(ImageReadError, match="sub-001"):
        RadiomicsExtractor(on_error="nan").fit(table)


def test_missing_column_and_bad_params():
    with pytest.raises(SubjectTableError, match="'mask'"):
        RadiomicsExtractor().fit(_table(1).drop(columns="mask"))
    with pytest.raises(ValueError, match="on_error"):
        RadiomicsExtractor(on_error="skip").fit(_table(1))


# ------------------------------------------------------------ several ROIs
def test_expand_labels_and_per_row_label_column():
    table = _table(2, labels=(1, 2))
    rows = expand_labels(table, [2, 1])
    assert list(rows.index) == ["sub-000|2", "sub-000|1", "sub-001|2", "sub-001|1"]
    assert list(rows["label"]) == [2, 1, 2, 1]
    extractor = RadiomicsExtractor(label="label", settings=FIRSTORDER)
    out = extractor.fit_transform(rows)
    assert list(out.columns[-4:]) == ["site", "age", "subject", "label"]
    assert list(out["subject"]) == ["sub-000", "sub-000", "sub-001", "sub-001"]
    for row in rows.index:
        subject, label = row.split("|")
        ref = _reference(table.loc[subject, "image"], table.loc[subject, "mask"],
                         FIRSTORDER, label=int(label))
        np.testing.assert_allclose(out.loc[row, ref.index].to_numpy(float), ref,
                                   rtol=1e-12)
    assert out.loc["sub-000|1", "original_shape_VoxelVolume"] != (
        out.loc["sub-000|2", "original_shape_VoxelVolume"]
    )
    with pytest.raises(SubjectTableError, match="already has a column"):
        expand_labels(rows, [1])


def test_complex_values_become_floats():
    from sklearn_medprep.radiomics._pyradiomics import _plain

    assert _plain(np.complex128(2.5 + 0j)) == 2.5
    assert type(_plain(np.complex128(2.5 + 0j))) is float
    assert type(_plain(np.array(3.0))) is float
    assert _plain("abc") == "abc"


def test_non_integer_label_in_label_column_is_an_error_not_truncated():
    table = _table(2)
    table["lab"] = [1.5, 1.0]
    extractor = RadiomicsExtractor(label="lab", settings=FIRSTORDER, on_error="nan")
    with pytest.warns(MedprepWarning, match="1 of 2"):
        out = extractor.fit_transform(table)
    assert out.loc["sub-000"].drop(["site", "age", "lab"]).isna().all()
    assert not out.loc["sub-001"].drop(["site", "age", "lab"]).isna().any()
    errors = extractor.extraction_errors_
    assert list(errors["row"]) == ["sub-000"]
    assert "label must be an integer, got 1.5" in errors["message"].iloc[0]


def test_label_in_settings_that_disagrees_warns():
    image, mask = _case(0, labels=(1, 2))
    table = pd.DataFrame({"image": [image], "mask": [mask]}, index=["s"])
    settings = {**FIRSTORDER, "setting": {"label": 2}}
    with pytest.warns(MedprepWarning, match="settings set label=2"):
        out = RadiomicsExtractor(settings=settings).fit_transform(table)
    expected = _reference(image, mask, FIRSTORDER, label=1)
    np.testing.assert_allclose(out.loc["s", expected.index], expected, rtol=1e-12)
    # agreeing settings and parameter: no warning (MedprepWarning is an error here)
    RadiomicsExtractor(settings=settings, label=2).fit_transform(table)


@pytest.mark.filterwarnings("ignore:Applying `local_binary_pattern`:UserWarning")
def test_lbp2d_matches_pyradiomics_and_unavailable_filter_is_an_error():
    image, mask = _case(4, shape=(9, 12, 11))
    table = pd.DataFrame({"image": [image], "mask": [mask]}, index=["s"])
    settings = {
        "imageType": {"LBP2D": {}},
        "featureClass": {"firstorder": []},
        "setting": {"force2D": True, "binCount": 16},
    }
    out = RadiomicsExtractor(settings=settings).fit_transform(table)
    expected = _reference(image, mask, settings)
    assert len(expected) > 10 and all(k.startswith("lbp-2D_") for k in expected.index)
    np.testing.assert_allclose(out.loc["s", expected.index], expected, rtol=1e-12)
    # an image type PyRadiomics cannot compute here gives no silent empty output
    broken = {"imageType": {"LBP3D": {}}, "featureClass": {"firstorder": []}}
    if len(_reference(image, mask, broken)) == 0:
        with pytest.raises(ValueError, match="image type 'LBP3D' produced no feat"):
            RadiomicsExtractor(settings=broken).fit(table)

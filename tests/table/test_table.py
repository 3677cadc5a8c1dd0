"""Validating subject tables and reading manifests: errors name row, column, file."""

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from sklearn_medprep import read_manifest, validate_table
from sklearn_medprep.exceptions import (
    GeometryMismatchError,
    ImageReadError,
    SubjectTableError,
)
from sklearn_medprep.table._checks import check_subject_table


def _write(folder, name, size=(7, 8, 9), spacing=(1.0, 1.0, 1.0)):
    image = sitk.Image(size, sitk.sitkUInt8)
    image.SetSpacing(spacing)
    file = folder / name
    sitk.WriteImage(image, str(file))
    return str(file)


@pytest.fixture
def table(tmp_path):
    rows = {}
    for i in range(3):
        rows[f"s{i}"] = {
            "image": _write(tmp_path, f"s{i}_img.nrrd"),
            "mask": _write(tmp_path, f"s{i}_msk.nrrd"),
            "site": "AB"[i % 2],
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def test_valid_table_is_returned_unchanged(table):
    before = table.copy()
    out = validate_table(table, image="image", mask="mask", required=["site"])
    assert out is table
    pd.testing.assert_frame_equal(table, before)


def test_missing_column(table):
    with pytest.raises(SubjectTableError, match=r"needs column\(s\) \['age'\]") as err:
        validate_table(table, required=["age"])
    assert err.value.column == "age"


def test_missing_value_names_first_row(table):
    table.loc["s1", "site"] = None
    with pytest.raises(SubjectTableError, match="missing value") as err:
        validate_table(table, required=["site"])
    assert err.value.row == "s1" and err.value.column == "site"


def test_missing_file_names_row_column_file(table, tmp_path):
    table.loc["s2", "mask"] = str(tmp_path / "gone.nrrd")
    with pytest.raises(ImageReadError, match="file does not exist") as err:
        validate_table(table, image="image", mask="mask")
    assert (err.value.row, err.value.column) == ("s2", "mask")
    assert err.value.file.endswith("gone.nrrd")
    assert "row 's2'" in str(err.value) and "gone.nrrd" in str(err.value)


def test_geometry_mismatch(table, tmp_path):
    table.loc["s1", "mask"] = _write(tmp_path, "odd.nrrd", spacing=(1.0, 1.0, 2.0))
    with pytest.raises(GeometryMismatchError, match="spacing") as err:
        validate_table(table, image="image", mask="mask")
    assert err.value.row == "s1" and err.value.file.endswith("odd.nrrd")
    table.loc["s1", "mask"] = _write(tmp_path, "big.nrrd", size=(7, 8, 10))
    with pytest.raises(
        GeometryMismatchError, match=r"size \(7, 8, 9\) vs \(7, 8, 10\)"
    ):
        validate_table(table, image="image", mask="mask")
    # without the geometry check the table is accepted as is
    assert (
        validate_table(table, image="image", mask="mask", check_geometry=False) is table
    )


def test_not_a_dataframe_and_bad_index():
    with pytest.raises(TypeError, match="pandas.DataFrame"):
        check_subject_table(np.zeros((2, 2)))
    dup = pd.DataFrame({"image": ["a", "b"]}, index=["x", "x"])
    with pytest.raises(SubjectTableError, match="repeated labels"):
        check_subject_table(dup)


def test_manifest_resolves_relative_paths(tmp_path):
    folder = tmp_path / "study"
    folder.mkdir()
    _write(folder, "a_img.nii.gz")
    _write(folder, "a_msk.nii.gz")
    _write(folder, "b_img.nii.gz")
    _write(folder, "b_msk.nii.gz")
    manifest = folder / "manifest.csv"
    manifest.write_text(
        "subject,image,mask,site,age\n"
        "b,b_img.nii.gz,b_msk.nii.gz,X,40\n"
        "a,a_img.nii.gz,a_msk.nii.gz,Y,50\n"
    )
    table = read_manifest(manifest, mask="mask", index_col="subject")
    assert table.index.tolist() == ["b", "a"]  # file order kept
    assert table.loc["a", "image"] == str(folder.resolve() / "a_img.nii.gz")
    assert table["age"].tolist() == [40, 50]


def test_manifest_error_names_manifest_row_and_file(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("image\nmissing.nii.gz\n")
    with pytest.raises(ImageReadError) as err:
        read_manifest(manifest)
    assert err.value.row == 0 and "m.csv" in str(err.value)
    assert err.value.file.endswith("missing.nii.gz")
    with pytest.raises(FileNotFoundError, match="manifest not found"):
        read_manifest(tmp_path / "none.csv")


def test_messages_show_python_values_not_numpy_reprs():
    # numpy 2 writes np.int64(3) for repr(numpy scalar); messages must not
    from sklearn_medprep import ComBatHarmonizer
    from sklearn_medprep.exceptions import SubjectTableError

    X = pd.DataFrame(
        {"f": [1.0, 2.0, 3.0, 4.0, 5.0], "site": np.array([1, 1, 2, 2, 3])},
        index=np.arange(5),
    )
    with pytest.raises(SubjectTableError) as info:
        ComBatHarmonizer().fit(X)
    assert "site 3 has 1 subject(s)" in str(info.value)
    assert "np." not in str(info.value)
    err = SubjectTableError("bad", row=np.int64(0), column=np.str_("c"))
    assert str(err) == "[row 0, column 'c'] bad"

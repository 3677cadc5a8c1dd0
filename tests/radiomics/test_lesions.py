"""Several rows per subject: ROIs and lesions, each row carrying its subject.

Lesions are checked against ``scipy.ndimage.label`` (count, voxel counts,
numbering) at two connectivities, and each lesion row's features against
PyRadiomics' own extractor on a mask holding only that component, built here
with scipy and SimpleITK.
"""

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from radiomics.featureextractor import RadiomicsFeatureExtractor
from scipy import ndimage

from sklearn_medprep import RadiomicsExtractor, expand_labels, expand_lesions
from sklearn_medprep.exceptions import (
    ImageReadError,
    MedprepWarning,
    SubjectTableError,
)
from sklearn_medprep.radiomics import RadiomicsBackend, RowResult
from sklearn_medprep.radiomics._cache import FeatureCache
from sklearn_medprep.utils import count_extractions
from sklearn_medprep.utils.estimator_checks import subject_table_checks

SHAPE = (9, 10, 11)
SMALL = {"featureClass": {"firstorder": ["Mean", "Variance"],
                          "shape": ["VoxelVolume"]}}


def _blobs(seed=0):
    """Label 1 as three blobs (two of them joined by a corner only), label 2."""
    array = np.zeros(SHAPE, np.uint8)
    array[1:4, 1:4, 1:5] = 1          # 36 voxels
    array[4, 4, 5] = 1                # touches the first blob by a corner only
    array[4, 5, 5] = 1                # ... and one more voxel below it: 2 voxels
    array[6:8, 5:9, 6:10] = 1         # 32 voxels
    array[1:3, 6:9, 7:10] = 2         # label 2: one blob
    if seed:  # another subject: the blobs shifted
        array = np.roll(array, seed, axis=2)
    rng = np.random.default_rng(seed)
    image = sitk.GetImageFromArray(rng.normal(200 + 7 * seed, 40, SHAPE))
    image.SetSpacing((0.9, 1.1, 1.3))
    image.SetOrigin((2.0, -1.0, 4.5))
    mask = sitk.GetImageFromArray(array)
    mask.CopyInformation(image)
    return image, mask


def _table(n=2):
    images, masks = zip(*(_blobs(seed) for seed in range(n)))
    return pd.DataFrame(
        {"image": list(images), "mask": list(masks),
         "site": ["A", "B", "C"][:n], "age": [40.5, 51.0, 60.0][:n]},
        index=pd.Index([f"sub-{i}" for i in range(n)], name="subject"),
    )


def _scipy_lesions(mask, label, connectivity):
    array = sitk.GetArrayFromImage(mask) == label
    structure = ndimage.generate_binary_structure(3, connectivity)
    return ndimage.label(array, structure=structure)


# ------------------------------------------------------------ expand_labels
def test_expand_labels_adds_the_subject_from_the_index():
    table = _table(2)
    rows = expand_labels(table, [2, 1])
    assert rows["subject"].tolist() == ["sub-0", "sub-0", "sub-1", "sub-1"]
    assert rows.index.tolist() == ["sub-0|2", "sub-0|1", "sub-1|2", "sub-1|1"]
    assert rows.index.name is None  # "subject" is now a column: not ambiguous
    pd.testing.assert_frame_equal(
        rows[["site", "age"]].reset_index(drop=True),
        table[["site", "age"]].iloc[[0, 0, 1, 1]].reset_index(drop=True),
    )
    assert "subject" not in expand_labels(table, [1], subject=None).columns
    named = expand_labels(table.rename_axis("visit"), [1], subject="participant")
    assert named.index.name == "visit"
    assert named["participant"].tolist() == ["sub-0", "sub-1"]


def test_expand_labels_keeps_an_existing_subject_column():
    visits = _table(2).rename_axis("visit")
    visits.index = ["visit-a", "visit-b"]
    visits["subject"] = ["P1", "P1"]  # two visits of one participant
    rows = expand_labels(visits, [1, 2])
    assert rows["subject"].tolist() == ["P1"] * 4
    assert list(rows.columns).count("subject") == 1
    visits.loc["visit-b", "subject"] = None
    with pytest.raises(SubjectTableError, match="visit-b.*'subject'.*missing"):
        expand_labels(visits, [1])
    with pytest.raises(SubjectTableError, match="already has a column 'label'"):
        expand_labels(expand_labels(_table(1), [1]), [1])
    for bad in ([1, 1], ["1"], [1.5], [0], []):
        with pytest.raises(ValueError, match="distinct positive integers"):
            expand_labels(_table(1), bad)


def test_subject_survives_extraction():
    rows = expand_labels(_table(2), [1, 2])
    out = RadiomicsExtractor(label="label", settings=SMALL).fit_transform(rows)
    pd.testing.assert_series_equal(out["subject"], rows["subject"])
    assert out.index.equals(rows.index)
    listed = RadiomicsExtractor(label="label", settings=SMALL,
                                passthrough=["subject"]).fit_transform(rows)
    assert listed.columns[-1] == "subject"


# ----------------------------------------------------------- expand_lesions
@pytest.mark.parametrize("connectivity", [1, 3])
def test_lesions_are_scipy_components(connectivity):
    table = _table(2)
    rows = expand_lesions(table, [1, 2], connectivity=connectivity)
    expected_index, expected = [], []
    for subject, mask in zip(table.index, table["mask"]):
        for label in (1, 2):
            components, n = _scipy_lesions(mask, label, connectivity)
            for k in range(1, n + 1):
                expected_index.append(f"{subject}|{label}|{k}")
                expected.append((subject, label, k, int((components == k).sum())))
    got = rows[["subject", "label", "lesion", "voxels"]]
    assert rows.index.tolist() == expected_index
    assert list(got.itertuples(index=False, name=None)) == expected
    assert (rows.dtypes[["label", "lesion", "voxels"]] == np.int64).all()
    # the corner-joined pair: separate at 6-, joined at 26-connectivity
    n_label1 = ((rows["subject"] == "sub-0") & (rows["label"] == 1)).sum()
    assert n_label1 == (3 if connectivity == 1 else 2)
    pd.testing.assert_series_equal(
        rows["site"], table["site"].iloc[[0] * (len(rows) // 2)
                                         + [1] * (len(rows) // 2)]
        .set_axis(rows.index))


def test_min_voxels_keeps_scipy_numbers_and_never_drops_a_subject():
    table = _table(1)
    rows = expand_lesions(table, 1, connectivity=1, min_voxels=3)
    assert rows["lesion"].tolist() == [1, 3]  # lesion 2 (2 voxels) left out
    with pytest.raises(SubjectTableError,
                       match=r"row 'sub-0', column 'mask'.*none of min_voxels=40"):
        expand_lesions(table, 1, min_voxels=40)
    with pytest.raises(SubjectTableError, match=r"sub-0.*no voxel of label 3"):
        expand_lesions(table, [1, 3])
    kept = expand_lesions(table, [3, 1], empty="keep")
    assert kept[["label", "lesion", "voxels"]].values.tolist() == [
        [3, 0, 0], [1, 1, 38], [1, 2, 32]]
    assert kept.index[0] == "sub-0|3|0"


def test_lesion_errors_name_row_column_and_file(tmp_path):
    table = _table(2)
    path = tmp_path / "mask.nii.gz"
    sitk.WriteImage(table["mask"].iloc[0], str(path))
    table["mask"] = [str(path), str(tmp_path / "missing.nii.gz")]
    with pytest.raises(ImageReadError, match=r"row 'sub-1'.*missing\.nii\.gz"):
        expand_lesions(table)
    assert expand_lesions(table.iloc[:1])["voxels"].tolist() == [38, 32]
    with pytest.raises(SubjectTableError, match=r"row 'sub-0', column 'mask', "
                       r"file '.*mask\.nii\.gz'\] the mask holds no voxel of label 3"):
        expand_lesions(table.iloc[:1], [1, 3])
    vector = sitk.Compose([_blobs()[1]] * 2)
    table = _table(1)
    table["mask"] = [vector]
    with pytest.raises(SubjectTableError, match="sub-0.*2 channels"):
        expand_lesions(table)
    with pytest.raises(SubjectTableError, match="already has a column 'site'"):
        expand_lesions(_table(1), lesion="site")
    with pytest.raises(ValueError, match="connectivity"):
        expand_lesions(_table(1), connectivity=26)
    for bad in (0, 2.5, "3", None):
        with pytest.raises(ValueError, match="min_voxels"):
            expand_lesions(_table(1), min_voxels=bad)
    with pytest.raises(ValueError, match="empty"):
        expand_lesions(_table(1), empty="drop")


# ------------------------------------------------------------- extraction
def _reference(image, mask, label, lesion, connectivity, params=None):
    """PyRadiomics on a mask holding only scipy's component ``lesion``."""
    components, _ = _scipy_lesions(mask, label, connectivity)
    only = sitk.GetImageFromArray((components == lesion).astype(np.uint8) * label)
    only.CopyInformation(mask)
    extractor = RadiomicsFeatureExtractor(dict(params or {}))
    extractor.settings["additionalInfo"] = False
    result = extractor.execute(image, only, label=label)
    return pd.Series({k: float(v) for k, v in result.items()})


@pytest.mark.parametrize("connectivity", [1, 3])
def test_lesion_features_equal_pyradiomics_on_that_component(connectivity):
    table = _table(1)
    rows = expand_lesions(table, [1, 2], connectivity=connectivity, min_voxels=3)
    extractor = RadiomicsExtractor(label="label", lesion="lesion",
                                   connectivity=connectivity)
    out = extractor.fit_transform(rows)  # PyRadiomics' default settings
    image, mask = table["image"].iloc[0], table["mask"].iloc[0]
    for row in rows.index:
        label, lesion = rows.loc[row, ["label", "lesion"]]
        ref = _reference(image, mask, int(label), int(lesion), connectivity)
        assert list(out.columns[:len(ref)]) == list(ref.index)
        np.testing.assert_allclose(out.loc[row, ref.index].to_numpy(float), ref,
                                   rtol=1e-12, atol=0)
        volume = rows.loc[row, "voxels"] * np.prod(image.GetSpacing())
        assert out.loc[row, "original_shape_VoxelVolume"] == pytest.approx(volume)
    assert out[["subject", "label", "lesion", "voxels"]].equals(
        rows[["subject", "label", "lesion", "voxels"]])


def test_lesions_numbered_otherwise_fail_naming_the_row():
    # numbered at 6-connectivity, extracted at 26: lesions 1 and 2 are other
    # components there (38 and 32 voxels), lesion 3 does not exist; label 3 is
    # absent; label 2's single blob is the same at both connectivities
    rows = expand_lesions(_table(1), [2, 1], connectivity=1, empty="keep")
    rows = pd.concat([rows, expand_lesions(_table(1), 3, empty="keep")])
    extractor = RadiomicsExtractor(label="label", lesion="lesion", settings=SMALL,
                                   connectivity=3, on_error="nan")
    with pytest.warns(MedprepWarning, match="4 of 5 rows failed"):
        out = extractor.fit_transform(rows)
    errors = extractor.extraction_errors_.set_index("row")
    assert errors.index.tolist() == ["sub-0|1|1", "sub-0|1|2", "sub-0|1|3",
                                     "sub-0|3|0"]
    assert errors.loc["sub-0|1|1", "message"].startswith(
        "lesion 1 of label 1 has 38 voxels at connectivity=3, the table says 36")
    assert errors.loc["sub-0|1|2", "message"].startswith(
        "lesion 2 of label 1 has 32 voxels at connectivity=3, the table says 2")
    assert errors.loc["sub-0|1|3", "message"].startswith(
        "lesion 3 of label 1 does not exist: the mask holds 2 lesion(s) of it "
        "at connectivity=3")
    assert "label 3 is not present" in errors.loc["sub-0|3|0", "message"]
    assert errors["column"].eq("mask").all()
    features = out.columns[:3]
    assert out.loc[errors.index, features].isna().all().all()
    assert out.drop(index=errors.index)[features].notna().all().all()
    unchecked = RadiomicsExtractor(label="label", lesion="lesion", settings=SMALL,
                                   lesion_voxels=None, on_error="nan")
    with pytest.warns(MedprepWarning, match="2 of 5 rows failed"):
        unchecked.fit_transform(rows)  # without counts: documented, unchecked
    kept = expand_lesions(_table(1), [1, 2], min_voxels=40, empty="keep")
    with pytest.raises(SubjectTableError, match=r"row 'sub-0\|1\|0'.*lesion 0"):
        RadiomicsExtractor(label="label", lesion="lesion",
                           settings=SMALL).fit_transform(kept)
    bad = expand_lesions(_table(1)).assign(lesion=[1.5, 2])
    with pytest.raises(SubjectTableError, match=r"sub-0\|1\|1.*lesion must be"):
        RadiomicsExtractor(label="label", lesion="lesion",
                           settings=SMALL).fit_transform(bad)
    with pytest.raises(SubjectTableError, match=r"needs column\(s\) \['voxels'\]"):
        RadiomicsExtractor(label="label", lesion="lesion").fit(
            expand_lesions(_table(1)).drop(columns="voxels"))


def test_cache_distinguishes_lesions(tmp_path):
    rows = expand_lesions(_table(1), 1, connectivity=1, min_voxels=3)
    assert rows["lesion"].tolist() == [1, 3]
    memory = tmp_path / "cache"
    extractor = RadiomicsExtractor(label="label", lesion="lesion", connectivity=1,
                                   settings=SMALL, memory=memory)
    first = extractor.fit_transform(rows)
    assert count_extractions(memory) == 2
    voxel = np.prod(_table(1)["image"].iloc[0].GetSpacing())
    np.testing.assert_allclose(first["original_shape_VoxelVolume"],
                               rows["voxels"] * voxel)
    again = extractor.transform(rows.iloc[::-1])
    pd.testing.assert_frame_equal(again, first.iloc[::-1])
    assert count_extractions(memory) == 2  # every lesion served by its own entry
    whole = RadiomicsExtractor(label="label", settings=SMALL, memory=memory)
    out = whole.fit_transform(expand_labels(_table(1), [1]))
    assert count_extractions(memory) == 3  # the whole label is another entry
    assert out["original_shape_VoxelVolume"].iloc[0] == pytest.approx(70 * voxel)
    joined = RadiomicsExtractor(label="label", lesion="lesion", connectivity=3,
                                settings=SMALL, memory=memory)
    joined.fit_transform(expand_lesions(_table(1), 1, connectivity=3))
    assert count_extractions(memory) == 5  # lesions at 26-connectivity: new keys
    with pytest.raises(SubjectTableError, match="has 38 voxels.*says 36"):
        joined.transform(rows)  # numbered at 6: checked, never a stale hit
    keys = {FeatureCache.entry_key("i", "m", 1, "s", (), lesion=lesion)
            for lesion in (None, (1, 1), (2, 1), (1, 3))}
    assert len(keys) == 4
    assert FeatureCache.entry_key("i", "m", 1, "s", ()) in keys


class _Voxels(RadiomicsBackend):
    """A batch backend that sees only the mask it is given."""

    name = "test-lesion-voxels"

    def extract_batch(self, rows, key, verbose):
        return [RowResult.success([("original_roi_Voxels", float(
            (sitk.GetArrayViewFromImage(r.mask) == r.label).sum()))])
            for r in rows]


def test_backend_gets_the_restricted_mask():
    rows = expand_lesions(_table(2), [1, 2], connectivity=1)
    out = RadiomicsExtractor(label="label", lesion="lesion", connectivity=1,
                             backend=_Voxels()).fit_transform(rows)
    np.testing.assert_array_equal(out["original_roi_Voxels"], rows["voxels"])


def test_real_tumour_lesions(shared_data):
    """PyRadiomics' brain1 case: label 1 is two lesions (613 and 3524 voxels)."""
    folder = shared_data / "pyradiomics"
    table = pd.DataFrame({"image": [str(folder / "brain1_image.nrrd")],
                          "mask": [str(folder / "brain1_label.nrrd")]},
                         index=["brain1"])
    mask = sitk.ReadImage(table["mask"].iloc[0])
    rows = expand_lesions(table, 1, connectivity=1)
    components, n = _scipy_lesions(mask, 1, 1)
    assert rows["voxels"].tolist() == np.bincount(components.ravel())[1:].tolist()
    assert rows["voxels"].tolist() == [613, 3524]
    out = RadiomicsExtractor(label="label", lesion="lesion", connectivity=1,
                             settings=SMALL).fit_transform(rows)
    image = sitk.ReadImage(table["image"].iloc[0])
    for row, lesion in zip(rows.index, rows["lesion"]):
        ref = _reference(image, mask, 1, lesion, 1, SMALL)
        np.testing.assert_allclose(out.loc[row, ref.index].to_numpy(float), ref,
                                   rtol=1e-12, atol=0)
    assert out["subject"].tolist() == ["brain1", "brain1"]


@pytest.mark.parametrize("check", subject_table_checks(), ids=lambda c: c.__name__)
def test_lesion_rows_keep_the_subject_table_contract(check):
    rows = expand_lesions(_table(2), [1, 2], connectivity=1, min_voxels=3)
    check(RadiomicsExtractor(label="label", lesion="lesion", connectivity=1,
                             settings=SMALL), rows, None)

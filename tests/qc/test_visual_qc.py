"""Visual QC figures: panels, titles, overlays and windows checked against references.

References are computed here with other tools: nibabel reads the files (its
canonical RAS array, flipped to LPS, gives the slices a panel must show),
numpy's percentiles give the window, TorchIO's own transforms and the
augmenter's own ``fit_resample`` give the images after preprocessing and the
draws.
"""

import sys

import matplotlib

matplotlib.use("Agg")

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import torchio as tio
from sklearn.exceptions import NotFittedError

from sklearn_medprep import (
    TorchIOAugmenter,
    TorchIOPreprocessor,
    plot_augmentations,
    plot_preprocessing,
    plot_subjects,
)
from sklearn_medprep.datasets import make_multisite_cohort, make_xray_cohort
from sklearn_medprep.exceptions import (
    GeometryMismatchError,
    ImageReadError,
    SubjectTableError,
)
from sklearn_medprep.qc._visual import layout


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    folder = tmp_path_factory.mktemp("visual_qc")
    return make_multisite_cohort(6, 2, shape=(14, 16, 12), path=folder, random_state=0)


def _lps_zyx(path):
    """The file's voxels in LPS orientation, axes (z, y, x), read by nibabel."""
    ras = np.asanyarray(nib.as_closest_canonical(nib.load(path)).dataobj)
    return np.ascontiguousarray(ras[::-1, ::-1, :].transpose(2, 1, 0)).astype(float)


def _panels(fig):
    return [ax for ax in fig.axes if ax.get_visible() and ax.images]


def _title(ax):
    return ax.get_title().splitlines()


def _slice_index(ax):
    return int(_title(ax)[1].rsplit("=", 1)[1])


def test_plot_subjects_panels_titles_slices_and_shared_window(cohort):
    fig = plot_subjects(cohort)
    panels = _panels(fig)
    assert len(panels) == 6 * 3
    images = {row: _lps_zyx(path) for row, path in cohort["image"].items()}
    masks = {row: _lps_zyx(path) for row, path in cohort["mask"].items()}
    # one window for all: numpy's percentiles over every voxel of the 6 images
    reference = np.percentile(np.concatenate([a.ravel() for a in images.values()]),
                              [1, 99])
    for ax in panels:
        np.testing.assert_allclose(ax.images[0].get_clim(), reference, rtol=1e-12)
    for k, row in enumerate(cohort.index):
        site = cohort.loc[row, "site"]
        axial, coronal, sagittal = panels[3 * k: 3 * k + 3]
        for ax in (axial, coronal, sagittal):
            assert _title(ax)[0] == f"{row} | {site}"
        assert _title(axial)[1].startswith("axial z=")
        assert _title(coronal)[1].startswith("coronal y=")
        assert _title(sagittal)[1].startswith("sagittal x=")
        # the slices pass through the mask's centre of mass
        centre = np.argwhere(masks[row] > 0).mean(axis=0).round().astype(int)
        z, y, x = (_slice_index(ax) for ax in (axial, coronal, sagittal))
        assert (z, y, x) == tuple(centre)
        image, mask = images[row], masks[row]
        np.testing.assert_array_equal(axial.images[0].get_array(), image[z])
        np.testing.assert_array_equal(coronal.images[0].get_array(), image[:, y])
        np.testing.assert_array_equal(sagittal.images[0].get_array(), image[:, :, x])
        assert coronal.images[0].origin == "lower"  # superior at the top
        # one contour per label present in the shown slice
        for ax, cut in ((axial, mask[z]), (coronal, mask[:, y]),
                        (sagittal, mask[:, :, x])):
            present = [v for v in np.unique(cut) if v != 0]
            assert present
            assert len(ax.collections) == len(present)
    assert "shared by all 6 subjects" in fig._suptitle.get_text()
    assert "percentiles 1 to 99" in fig._suptitle.get_text()
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["mask label 1", "mask label 2"]


def test_slices_through_one_label_or_the_image_centre(cohort):
    row = "sub-000"
    mask = _lps_zyx(cohort.loc[row, "mask"])
    lesion = _panels(plot_subjects(cohort, subjects=[row], through=1))
    centre = np.argwhere(mask == 1).mean(axis=0).round().astype(int)
    assert tuple(_slice_index(ax) for ax in lesion) == tuple(centre)
    middle = _panels(plot_subjects(cohort, subjects=[row], through="image"))
    assert tuple(_slice_index(ax) for ax in middle) == tuple(
        np.array(mask.shape) // 2)
    # a label absent from the mask: the image centre
    absent = _panels(plot_subjects(cohort, subjects=[row], through=7))
    assert [_slice_index(ax) for ax in absent] == [
        _slice_index(ax) for ax in middle]


def test_plot_subjects_fill_overlay_montage_and_subject_window(cohort):
    fig = plot_subjects(cohort, subjects=["sub-004", "sub-001"], view="montage",
                        n_slices=4, overlay="fill", window="subject",
                        percentiles=(5, 95))
    panels = _panels(fig)
    assert [_title(ax)[0].split(" |")[0] for ax in panels] == ["sub-004"] * 4 + [
        "sub-001"] * 4
    for k, row in enumerate(["sub-004", "sub-001"]):
        image, mask = _lps_zyx(cohort.loc[row, "image"]), _lps_zyx(
            cohort.loc[row, "mask"])
        occupied = np.flatnonzero((mask > 0).any(axis=(1, 2)))
        expected = np.unique(
            np.linspace(occupied[0], occupied[-1], 4).round().astype(int))
        shown = panels[4 * k: 4 * k + 4]
        assert [_slice_index(ax) for ax in shown] == expected.tolist()
        window = np.percentile(image, [5, 95])
        for ax, z in zip(shown, expected):
            np.testing.assert_allclose(ax.images[0].get_clim(), window, rtol=1e-12)
            # the mask as translucent colour: a second image, opaque where labelled
            assert len(ax.images) == 2
            alpha = ax.images[1].get_array()[..., 3]
            np.testing.assert_array_equal(alpha > 0, mask[z] > 0)
    assert "per subject" in fig._suptitle.get_text()


def test_plot_subjects_fixed_window_no_mask_no_site(cohort):
    table = cohort.drop(columns="site")
    fig = plot_subjects(table, mask=None, site=None, view="sagittal",
                        window=(0, 500))
    panels = _panels(fig)
    assert len(panels) == 6
    assert all(ax.images[0].get_clim() == (0, 500) for ax in panels)
    assert all(not ax.collections and len(ax.images) == 1 for ax in panels)
    assert [_title(ax)[0] for ax in panels] == list(table.index)
    assert "fixed at [0, 500]" in fig._suptitle.get_text()
    assert not fig.legends


def test_layout_grows_readably_to_40_subjects_and_refuses_more():
    table = make_multisite_cohort(41, 4, shape=(8, 9, 7), random_state=0)
    fig = plot_subjects(table, subjects=40, view="axial")
    panels = _panels(fig)
    assert len(panels) == 40
    assert layout(40, 1) == (7, 6)  # 7 per row, 6 rows
    assert fig.get_size_inches()[0] == pytest.approx(7 * 1.6)
    small = plot_subjects(table, subjects=4, view="axial")
    assert layout(4, 1) == (2, 2)
    assert small.get_size_inches()[1] < fig.get_size_inches()[1]
    with pytest.raises(ValueError, match="41 subjects to show.*max_subjects=40.*page"):
        plot_subjects(table)


def test_2d_xray_one_panel_per_subject(tmp_path):
    table = make_xray_cohort(4, 2, shape=(40, 36), path=tmp_path, random_state=0)
    fig = plot_subjects(table)
    panels = _panels(fig)
    assert len(panels) == 4
    for ax, path in zip(panels, table["image"]):
        reference = sitk.GetArrayFromImage(sitk.ReadImage(path)).astype(float)
        if reference.ndim == 3:  # RGB PNG: the package's grey level
            reference = reference[..., :3] @ np.array([0.299, 0.587, 0.114])
        np.testing.assert_allclose(ax.images[0].get_array(), reference, atol=1e-3)
        assert _title(ax)[1] == "2D"
        assert ax.collections  # the heart contour
    assert "2D images" in fig._suptitle.get_text()


def test_unreadable_cell_names_row_column_and_file(cohort, tmp_path):
    table = cohort.copy()
    table.loc["sub-002", "mask"] = str(tmp_path / "gone.nii.gz")
    with pytest.raises(ImageReadError, match=r"row 'sub-002', column 'mask', file "
                       r"'.*gone\.nii\.gz'"):
        plot_subjects(table)
    with pytest.raises(SubjectTableError, match="scanner"):
        plot_subjects(cohort, site="scanner")
    with pytest.raises(SubjectTableError, match="sub-999"):
        plot_subjects(cohort, subjects=["sub-000", "sub-999"])


def test_mask_outside_the_image_is_refused_by_row(cohort):
    table = cohort.iloc[:2].copy()
    mask = sitk.ReadImage(table["mask"].iloc[1])
    mask.SetOrigin((500.0, 500.0, 500.0))
    cells = table["mask"].tolist()
    cells[1] = mask  # an in-memory image in a cell (pandas 2 would unpack it)
    table["mask"] = pd.Series(cells, index=table.index, dtype=object)
    with pytest.raises(GeometryMismatchError,
                       match="row 'sub-001', column 'mask'.*does not overlap"):
        plot_subjects(table)


def test_missing_matplotlib_names_the_plot_extra(cohort, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"sklearn-medprep\[plot\]"):
        plot_subjects(cohort, subjects=1)


def test_saved_figure_and_inputs_protected(cohort, tmp_path):
    out = tmp_path / "qc.png"
    plot_subjects(cohort, subjects=2, view="axial", file=out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_preprocessing_before_after_against_torchio(cohort):
    crop = tio.CropOrPad((10, 10, 10))
    pre = TorchIOPreprocessor(tio.Compose([crop, tio.ZNormalization()]))
    with pytest.raises(NotFittedError):
        plot_preprocessing(pre, cohort)
    pre.fit(cohort.iloc[:4])
    shown = ["sub-004", "sub-005"]
    fig = plot_preprocessing(pre, cohort, subjects=shown, view="orthogonal")
    panels = _panels(fig)
    assert len(panels) == 2 * 2 * 3
    before, after = [], []
    for k, row in enumerate(shown):
        block = panels[6 * k: 6 * k + 6]
        assert [_title(ax)[1].split()[0] for ax in block] == ["before"] * 3 + [
            "after"] * 3
        assert all(_title(ax)[0] == f"{row} | site_B" for ax in block)
        before += block[:3]
        after += block[3:]
        # TorchIO itself: the subject through the same transforms
        subject = tio.Subject(image=tio.ScalarImage(cohort.loc[row, "image"]),
                              mask=tio.LabelMap(cohort.loc[row, "mask"]))
        done = tio.Compose([tio.CropOrPad((10, 10, 10)), tio.ZNormalization()])(
            subject)
        lps = tio.ToCanonical()(done)["image"].data[0].numpy()[::-1, ::-1, :]
        reference = lps.transpose(2, 1, 0)
        label = tio.ToCanonical()(done)["mask"].data[0].numpy()[::-1, ::-1, :]
        centre = np.argwhere(label.transpose(2, 1, 0) > 0).mean(axis=0).round()
        z = _slice_index(block[3])
        assert z == int(centre[0])
        np.testing.assert_allclose(block[3].images[0].get_array(), reference[z],
                                   rtol=1e-6, atol=1e-6)
        assert block[3].collections  # the mask moved with the image
    # one window per stage, each shared by the subjects shown
    for group in (before, after):
        clims = {ax.images[0].get_clim() for ax in group}
        assert len(clims) == 1
    assert before[0].images[0].get_clim() != after[0].images[0].get_clim()
    assert "(one per stage)" in fig._suptitle.get_text()


def test_plot_augmentations_draws_reproducible_and_equal_to_fit_resample(cohort):
    augmenter = TorchIOAugmenter(tio.RandomAffine(degrees=20), random_state=5)
    shown = cohort.iloc[:2]
    fig = plot_augmentations(augmenter, cohort, n_draws=2, subjects=2,
                             random_state=3)
    panels = _panels(fig)
    assert len(panels) == 2 * 3
    assert [_title(ax)[1].rsplit(" ", 2)[0] for ax in panels] == [
        "original", "draw 1", "draw 2"] * 2
    assert augmenter.n_augmentations == 1 and augmenter.random_state == 5
    # reference: the augmenter's own copies for the same seed
    X_res, _ = TorchIOAugmenter(
        tio.RandomAffine(degrees=20), n_augmentations=2, random_state=3
    ).fit_resample(shown, None)
    for i, row in enumerate(shown.index):
        np.testing.assert_array_equal(
            panels[3 * i].images[0].get_array(),
            _lps_zyx(cohort.loc[row, "image"])[_slice_index(panels[3 * i])],
        )
        for k in (1, 2):
            data = X_res.loc[f"{row}|aug{k}", "image"]
            canonical = tio.ToCanonical()(data).data[0].numpy()[::-1, ::-1, :]
            ax = panels[3 * i + k]
            np.testing.assert_allclose(
                ax.images[0].get_array(),
                canonical.transpose(2, 1, 0)[_slice_index(ax)], rtol=1e-6,
            )
    assert len({ax.images[0].get_clim() for ax in panels}) == 1
    again = _panels(plot_augmentations(augmenter, cohort, n_draws=2, subjects=2,
                                       random_state=3))
    other = _panels(plot_augmentations(augmenter, cohort, n_draws=2, subjects=2,
                                       random_state=4))
    for a, b in zip(panels, again):
        np.testing.assert_array_equal(a.images[0].get_array(),
                                      b.images[0].get_array())
    assert not np.array_equal(panels[1].images[0].get_array(),
                              other[1].images[0].get_array())
    assert "random_state=3" in fig._suptitle.get_text()


def test_options_are_validated(cohort):
    bad_options = [
        dict(view="oblique"), dict(window="auto"), dict(window=(3, 1)),
        dict(window=5), dict(percentiles=(99, 1)), dict(percentiles=50),
        dict(overlay="outline"), dict(through="lesion"), dict(through=0),
        dict(n_slices=0),
        dict(max_subjects=0),
    ]
    for bad in bad_options:
        with pytest.raises(ValueError):
            plot_subjects(cohort, **bad)
    with pytest.raises(ValueError, match="n_draws"):
        plot_augmentations(TorchIOAugmenter(tio.RandomFlip()), cohort, n_draws=0)
    assert isinstance(cohort, pd.DataFrame)

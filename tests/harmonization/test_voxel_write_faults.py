"""VoxelComBatHarmonizer's files under faults: all of a call's images, or a named error.

Issue 21's voxel cases, one table each for ``output_dir`` and ``scratch_dir``:
a full disk (a real 64 kB tmpfs, where ITK itself reports "wrote only 4096 of
6720 bytes" on stderr and returns normally), a writer failing or the process
being interrupted half-way, output names that collide after sanitising, an
output that is an input image, a read-only folder; the scratch file of ``fit``
on a full disk, and ``os.pwrite`` writing part of what it was given. Each case
asserts the error (type, row and file named), that no file is left under a
final name (nor a temporary one), that inputs keep their bytes, and that the
estimator never fits on zeros.
"""

import errno
import os

import numpy as np
import pytest
import SimpleITK as sitk

from sklearn_medprep import VoxelComBatHarmonizer
from sklearn_medprep.datasets import make_voxel_cohort
from sklearn_medprep.exceptions import OutputWriteError, SubjectTableError
from sklearn_medprep.harmonization import _voxel_chunks


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    folder = tmp_path_factory.mktemp("voxels")
    table, _ = make_voxel_cohort(n_subjects=16, n_sites=2, path=folder, random_state=3)
    return table


@pytest.fixture(scope="module")
def fitted(cohort):
    return VoxelComBatHarmonizer().fit(cohort)


def _snapshot(table):
    return {path: open(path, "rb").read() for path in table["image"]}


def _transform(fitted, table, folder, suffix=".nii"):
    return fitted.set_params(output_dir=folder, output_suffix=suffix).transform(table)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_full_output_disk_named_error_and_no_file(fitted, cohort, tmpfs, fill_disk,
                                                  suffix):
    folder = tmpfs("64k")
    fill_disk(folder, leave=30_000)  # room for a few images, not sixteen
    inputs = _snapshot(cohort)
    with pytest.raises(OutputWriteError) as info:
        _transform(fitted, cohort, folder, suffix)
    error = info.value
    assert error.row in set(cohort.index)
    assert error.file == str(folder / f"{error.row}{suffix}")
    assert error.errno == errno.ENOSPC or "does not read back" in str(error)
    # no 0-byte, truncated or temporary file: nothing but the filler
    assert os.listdir(folder) == ["filler.bin"]
    assert _snapshot(cohort) == inputs
    # with room, the same call writes every image in full
    os.remove(folder / "filler.bin")
    out = _transform(fitted, cohort.head(4), folder, suffix)
    memory = fitted.set_params(output_dir=None).transform(cohort.head(4))
    for path, image in zip(out["image"], memory["image"]):
        assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(path)),
                              sitk.GetArrayFromImage(image))


def _half_then(exc, after=2):
    calls = []
    real = sitk.WriteImage

    def write(image, path):
        calls.append(path)
        if len(calls) > after:
            real(image, path)
            with open(path, "r+b") as handle:  # half of the file, then the fault
                handle.truncate(os.path.getsize(path) // 2)
            if exc is not None:
                raise exc
            return  # a truncated file and no error, as ITK on a full disk
        real(image, path)

    return write


@pytest.mark.parametrize(
    "fault, error, text",
    [
        (RuntimeError("ITK ERROR: wrote only 4096 of 6720 bytes"), OutputWriteError,
         "wrote only 4096 of 6720 bytes"),
        (OSError(errno.EIO, "Input/output error"), OutputWriteError,
         "Input/output error"),
        (KeyboardInterrupt(), KeyboardInterrupt, None),  # the process stopped
        # ITK on a full disk: "wrote only 4096 of 6720 bytes" on stderr, no error
        (None, OutputWriteError, "does not read back"),
    ],
    ids=["itk-error", "io-error", "interrupted", "silent-truncation"],
)
@pytest.mark.parametrize("existing", [False, True], ids=["new", "over-old-run"])
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_writer_failing_half_way_leaves_no_file(fitted, cohort, tmp_path, monkeypatch,
                                                fault, error, text, existing, suffix):
    folder = tmp_path / "out"
    if existing:  # outputs of an earlier run keep their bytes
        _transform(fitted, cohort, folder, suffix)
        before = {name: (folder / name).read_bytes() for name in os.listdir(folder)}
    monkeypatch.setattr(_voxel_chunks.sitk, "WriteImage", _half_then(fault))
    with pytest.raises(error) as info:
        _transform(fitted, cohort, folder, suffix)
    if text is not None:
        assert text in str(info.value)
        assert info.value.row == cohort.index[2]
        assert info.value.file == str(folder / f"{cohort.index[2]}{suffix}")
    if existing:
        assert {n: (folder / n).read_bytes() for n in os.listdir(folder)} == before
    else:
        assert os.listdir(folder) == []


@pytest.mark.parametrize(
    "labels, text",
    [
        (["a b", "a/b"], "rows 'a b' and 'a/b' would both be written to 'a_b.nii'"),
        (["a/b", "a:b"], "rows 'a/b' and 'a:b' would both be written to 'a_b.nii'"),
        (["Sub", "sub"], "differing only in case"),
    ],
)
def test_output_names_colliding_after_sanitising_are_refused(fitted, cohort,
                                                             tmp_path, labels, text):
    table = cohort.head(2).copy()
    table.index = labels
    with pytest.raises(OutputWriteError, match=text) as info:
        _transform(fitted, table, tmp_path / "out")
    assert info.value.row == labels[1]
    assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []


def test_output_dir_equal_to_input_folder_is_refused(fitted, tmp_path):
    table, _ = make_voxel_cohort(n_subjects=16, n_sites=2, path=tmp_path,
                                 random_state=3)
    # images named after their rows, in output_dir: the outputs would replace them
    table = table.rename(index=lambda label: f"r{label}")
    for label in table.index:
        os.rename(table.at[label, "image"], tmp_path / f"{label}.nii")
        table.at[label, "image"] = str(tmp_path / f"{label}.nii")
    before = _snapshot(table)
    listing = sorted(os.listdir(tmp_path))
    with pytest.raises(OutputWriteError, match="would write over the input") as info:
        _transform(fitted.set_params(output_dir=None), table, tmp_path)
    assert info.value.row == table.index[0]
    assert info.value.file == str(tmp_path / f"{table.index[0]}.nii")
    assert _snapshot(table) == before and sorted(os.listdir(tmp_path)) == listing


def test_output_dir_that_is_an_input_file_is_refused(fitted, cohort):
    image = cohort["image"].iloc[0]
    before = open(image, "rb").read()
    with pytest.raises(OutputWriteError, match="output_dir cannot be") as info:
        _transform(fitted, cohort, image)
    assert info.value.file == image and open(image, "rb").read() == before


def test_read_only_output_dir_refused_before_the_model_is_applied(
        fitted, cohort, tmpfs, monkeypatch):
    folder = tmpfs("64k", readonly=True)
    applied = []
    monkeypatch.setattr(_voxel_chunks, "apply_combat",
                        lambda *a, **k: applied.append(1))
    with pytest.raises(OutputWriteError, match="output_dir cannot be written") as info:
        _transform(fitted, cohort, folder)
    assert info.value.errno == errno.EROFS and info.value.file == str(folder)
    assert applied == []


def test_full_scratch_disk_named_error_and_no_fit_on_zeros(cohort, tmpfs, fill_disk):
    folder = tmpfs("64k")
    fill_disk(folder, leave=16_384)  # 16 float32 images of the mask do not fit
    combat = VoxelComBatHarmonizer(scratch_dir=folder)
    with pytest.raises(OutputWriteError, match="the disk is full") as info:
        combat.fit(cohort)
    error = info.value
    assert error.errno == errno.ENOSPC
    assert error.row in set(cohort.index)
    assert os.path.basename(error.file).startswith("voxels-")
    assert "scratch file" in str(error) and "scratch_dir" in str(error)
    assert not hasattr(combat, "gamma_star_")  # nothing fitted
    assert os.listdir(folder) == ["filler.bin"]  # scratch folder removed


def test_partial_pwrite_is_completed_not_ignored(cohort, fitted, monkeypatch):
    real = os.pwrite
    sizes = []

    def partial(fd, data, offset):  # at most 1000 bytes a call, as a full pipe
        sizes.append(len(data))
        return real(fd, bytes(memoryview(data)[:1000]), offset)

    monkeypatch.setattr(os, "pwrite", partial)
    combat = VoxelComBatHarmonizer().fit(cohort)
    assert max(sizes) > 1000  # the pieces really were cut
    for name in ("gamma_star_", "delta_star_", "grand_mean_", "var_pooled_"):
        np.testing.assert_array_equal(getattr(combat, name), getattr(fitted, name))


def test_duplicate_labels_still_refused_as_before(fitted, cohort, tmp_path):
    table = cohort.head(2).copy()
    table.index = ["s", "s"]
    with pytest.raises(SubjectTableError, match="repeated labels"):
        _transform(fitted, table, tmp_path / "out")


def test_site_effect_maps_on_a_full_disk_leave_no_map(cohort, fitted, tmpfs,
                                                      fill_disk):
    from sklearn_medprep import voxel_site_effect_maps

    folder = tmpfs("64k")
    fill_disk(folder, leave=2_000)  # not room for one compressed map
    out = fitted.set_params(output_dir=None).transform(cohort)
    with pytest.raises(OutputWriteError) as info:
        voxel_site_effect_maps(cohort, out, mask=fitted.mask_, output_dir=folder)
    assert info.value.file == str(folder / "site_fmap_before.nii.gz")
    assert info.value.errno == errno.ENOSPC
    assert os.listdir(folder) == ["filler.bin"]
    # with room, both maps written in full and equal to the returned images
    os.remove(folder / "filler.bin")
    maps = voxel_site_effect_maps(cohort, out, mask=fitted.mask_, output_dir=folder)
    assert sorted(os.listdir(folder)) == ["site_fmap_after.nii.gz",
                                          "site_fmap_before.nii.gz"]
    for name, path in zip(("before", "after"), maps.files):
        np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(path)),
                                      sitk.GetArrayFromImage(maps[name]))

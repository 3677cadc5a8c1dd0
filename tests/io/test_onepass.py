"""One decode reads and checks a compressed file (sklearn_medprep.io._onepass).

The image returned must be exactly what ``SimpleITK.ReadImage`` gives (pixel
type, size, spacing, origin, direction, voxels), read by ITK alone when the
stream's own checksum and length confirm it (``check_file``, the Python
decompression, is then never called), and checked the slow way whenever ITK
changed or missed something: NaN voxels, scaling, a multi-member gzip file, a
corrupt stream.
"""

import gzip
import zlib

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from sklearn_medprep.exceptions import ImageReadError
from sklearn_medprep.io import _onepass
from sklearn_medprep.io._read import to_sitk

SHAPE = (9, 10, 11)  # z, y, x


@pytest.fixture
def slow_checks(monkeypatch):
    """The files the slow (Python-decompressing) check was run on."""
    seen = []
    check = _onepass.check_file

    def spy(path):
        seen.append(str(path))
        return check(path)

    monkeypatch.setattr(_onepass, "check_file", spy)
    return seen


def _assert_itk_identical(image, path):
    ref = sitk.ReadImage(str(path))
    assert image.GetPixelID() == ref.GetPixelID()
    assert image.GetSize() == ref.GetSize()
    assert image.GetSpacing() == ref.GetSpacing()
    assert image.GetOrigin() == ref.GetOrigin()
    assert image.GetDirection() == ref.GetDirection()
    assert image.GetNumberOfComponentsPerPixel() == ref.GetNumberOfComponentsPerPixel()
    np.testing.assert_array_equal(
        sitk.GetArrayViewFromImage(image), sitk.GetArrayViewFromImage(ref)
    )


def _oblique():
    rng = np.random.default_rng(0)
    image = sitk.GetImageFromArray(rng.normal(100, 30, SHAPE).astype(np.float32))
    image.SetSpacing((0.7, 1.1, 2.3))
    image.SetOrigin((-12.5, 30.25, 7.0))
    angle = 0.3
    c, s = np.cos(angle), np.sin(angle)
    image.SetDirection((c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0))
    return image


@pytest.mark.parametrize("case", ["breast1", "brain1"])
@pytest.mark.parametrize("part", ["image", "label"])
def test_pyradiomics_files_read_by_itk_once(shared_data, slow_checks, case, part):
    path = shared_data / "pyradiomics" / f"{case}_{part}.nrrd"
    _assert_itk_identical(to_sitk(str(path)), path)
    assert slow_checks == []


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha", ".mhd"])
@pytest.mark.parametrize("pixel", [sitk.sitkFloat32, sitk.sitkInt16, sitk.sitkUInt8])
def test_itk_written_files(tmp_path, slow_checks, suffix, pixel):
    path = tmp_path / f"img{suffix}"
    sitk.WriteImage(sitk.Cast(_oblique(), pixel), str(path), useCompression=True)
    _assert_itk_identical(_onepass.read_file(path), path)
    assert slow_checks == []


def _nifti(data, affine, *, qform=None, sform=None, endian=None, slope=None):
    header = nib.Nifti1Header(endianness=endian) if endian else None
    image = nib.Nifti1Image(data, None, header=header)
    if qform is not None:
        image.set_qform(affine if qform else None, code=qform)
    if sform is not None:
        image.set_sform(affine if sform else None, code=sform)
    image.set_data_dtype(data.dtype)
    if slope is not None:
        image.header.set_slope_inter(slope, 1.5)
    return image


_C, _S = np.cos(0.4), np.sin(0.4)
AFFINE = np.array([[_C * 0.8, -_S * 1.1, 0.0, 12.0], [_S * 0.8, _C * 1.1, 0.0, -7.5],
                   [0.0, 0.0, 2.0, 3.25], [0.0, 0.0, 0.0, 1.0]])
ROTATION = np.array([[0.0, -1.2, 0.0, 10.0], [0.9, 0.0, 0.0, -5.0],
                     [0.0, 0.0, 1.5, 3.0], [0.0, 0.0, 0.0, 1.0]])


@pytest.mark.parametrize(
    ("qform", "sform", "endian"),
    [(1, 0, None), (0, 2, None), (1, 2, None), (0, 0, None), (2, 4, ">"), (1, 0, ">")],
)
def test_nibabel_written_nifti_qform_sform_byte_order(tmp_path, slow_checks, qform,
                                                      sform, endian):
    data = np.random.default_rng(1).integers(-500, 500, (11, 10, 9)).astype(np.int16)
    image = _nifti(data, ROTATION, qform=qform, sform=sform, endian=endian)
    if sform:  # an oblique sform, other than the qform: ITK picks one
        image.set_sform(AFFINE, code=sform)
    path = tmp_path / "img.nii.gz"
    nib.save(image, str(path))
    assert nib.load(str(path)).header.endianness == (endian or "<")
    _assert_itk_identical(_onepass.read_file(path), path)
    assert slow_checks == []


def _nrrd(path, data, endian):
    payload = gzip.compress(np.ascontiguousarray(data).astype(f"{endian}i2").tobytes())
    header = (
        "NRRD0004\ntype: short\ndimension: 3\nspace: left-posterior-superior\n"
        f"sizes: {data.shape[2]} {data.shape[1]} {data.shape[0]}\n"
        "space directions: (0.5,0,0) (0,0.75,0) (0,0,2.5)\n"
        "kinds: domain domain domain\n"
        f"endian: {'big' if endian == '>' else 'little'}\nencoding: gzip\n"
        "space origin: (-3,4.5,10)\n\n"
    )
    path.write_bytes(header.encode() + payload)
    return path


@pytest.mark.parametrize("endian", ["<", ">"])
def test_nrrd_of_either_byte_order(tmp_path, slow_checks, endian):
    data = np.random.default_rng(2).integers(-900, 900, SHAPE).astype(np.int16)
    path = _nrrd(tmp_path / "img.nrrd", data, endian)
    image = to_sitk(str(path))
    _assert_itk_identical(image, path)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(image), data)
    assert slow_checks == []


def test_nan_voxels_kept_through_the_slow_check(tmp_path, slow_checks):
    array = sitk.GetArrayFromImage(_oblique())
    array[3, 4, 5] = np.nan
    array[0, 0, 0] = -np.inf
    image = sitk.GetImageFromArray(array)
    path = tmp_path / "nan.nii.gz"
    sitk.WriteImage(image, str(path))
    assert np.isfinite(sitk.GetArrayViewFromImage(sitk.ReadImage(str(path)))).all()
    out = to_sitk(str(path))
    got = sitk.GetArrayViewFromImage(out)
    np.testing.assert_array_equal(got, array)  # NaN == NaN in this comparison
    assert slow_checks == [str(path)]


def test_scaled_nifti_equals_itk(tmp_path, slow_checks):
    data = np.arange(np.prod(SHAPE), dtype=np.int16).reshape(SHAPE[::-1])
    path = tmp_path / "scaled.nii.gz"
    nib.save(_nifti(data, ROTATION, qform=1, slope=2.0), str(path))
    _assert_itk_identical(_onepass.read_file(path), path)
    assert slow_checks == [str(path)]


def test_multi_member_gzip_is_read_not_refused(tmp_path, slow_checks):
    path = tmp_path / "img.nii.gz"
    sitk.WriteImage(_oblique(), str(path))
    raw = gzip.decompress(path.read_bytes())
    half = len(raw) // 2
    path.write_bytes(gzip.compress(raw[:half]) + gzip.compress(raw[half:]))
    _assert_itk_identical(_onepass.read_file(path), path)
    assert slow_checks == [str(path)]


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_flipped_byte_in_the_stream_is_an_error(tmp_path, suffix):
    path = tmp_path / f"img{suffix}"
    sitk.WriteImage(_oblique(), str(path), useCompression=True)
    data = bytearray(path.read_bytes())
    if suffix == ".mha":
        data[-2] ^= 0x01  # inside the Adler-32 trailer
    else:
        data[-12] ^= 0x01  # the last deflate bytes, before the 8-byte trailer
    path.write_bytes(bytes(data))
    with pytest.raises(ImageReadError, match=rf"{path.name}.*truncated or corrupt"):
        to_sitk(str(path), row="s1", column="image")


def test_zlib_stream_checked_by_adler32(tmp_path):
    path = tmp_path / "img.mha"
    sitk.WriteImage(_oblique(), str(path), useCompression=True)
    stream = _onepass._meta_stream(path)
    kind, checksum, length = _onepass._trailer(stream)
    image = sitk.ReadImage(str(path))
    voxels = sitk.GetArrayViewFromImage(image)
    assert (kind, length) == ("zlib", None)
    assert checksum == zlib.adler32(voxels)


def _stored_nrrd(path, raw, crc_of=None):
    """An NRRD of ``raw`` int16 voxels as a gzip stream of stored blocks (level
    0, so a flipped voxel byte still inflates), with the CRC-32 of ``crc_of``.
    """
    stream = gzip.compress(raw, compresslevel=0, mtime=0)
    if crc_of is not None:
        stream = stream[:-8] + zlib.crc32(crc_of).to_bytes(4, "little") + stream[-4:]
    header = (f"NRRD0004\ntype: short\ndimension: 3\nsizes: {len(raw) // 2} 1 1\n"
              "endian: little\nencoding: gzip\n\n")
    path.write_bytes(header.encode() + stream)
    return path


@pytest.mark.parametrize("where", [0, 5001, -1])
def test_nrrd_voxel_byte_against_stale_crc_is_an_error(tmp_path, where):
    # ITK's NRRD reader checks the CRC-32 (read_file does not hash NRRD again):
    # a voxel byte changed under the original CRC-32 and length must fail
    raw = np.random.default_rng(3).integers(-900, 900, 6000).astype("<i2").tobytes()
    changed = bytearray(raw)
    changed[where] ^= 0x01
    path = _stored_nrrd(tmp_path / "stale.nrrd", bytes(changed), crc_of=raw)
    assert zlib.crc32(changed) != zlib.crc32(raw)
    with pytest.raises(ImageReadError, match=r"stale\.nrrd.*truncated or corrupt"):
        to_sitk(str(path), row="s1", column="mask")


def _hashed(monkeypatch):
    """The streams whose checksum read_file computed in Python."""
    seen = []
    matches = _onepass._matches

    def spy(image, stream, kind, checksum):
        seen.append(stream.file.name)
        return matches(image, stream, kind, checksum)

    monkeypatch.setattr(_onepass, "_matches", spy)
    return seen


def test_nrrd_crc_left_to_itk_except_near_a_chunk_boundary(tmp_path, monkeypatch,
                                                          slow_checks):
    hashed = _hashed(monkeypatch)
    rng = np.random.default_rng(4)
    # incompressible voxels: the stream's length follows the voxel count; pick
    # counts whose deflate data ends just after / well after a 16 KiB chunk
    near = far = None
    for n in range(8192, 12000):
        raw = rng.integers(-30000, 30000, n).astype("<i2").tobytes()
        end = len(gzip.compress(raw, compresslevel=0, mtime=0)) - 8
        if near is None and end > _onepass._TEEM_CHUNK and end % (
                _onepass._TEEM_CHUNK) < _onepass._TEEM_TAIL:
            near = raw
        if far is None and end % _onepass._TEEM_CHUNK > 4 * _onepass._TEEM_TAIL:
            far = raw
    for name, raw in (("near.nrrd", near), ("far.nrrd", far)):
        path = _stored_nrrd(tmp_path / name, raw)
        got = _onepass.read_file(path)
        np.testing.assert_array_equal(sitk.GetArrayViewFromImage(got).ravel(),
                                      np.frombuffer(raw, "<i2"))
    assert hashed == ["near.nrrd"]  # the CRC-32 computed here only near a boundary
    assert slow_checks == []
    # near a boundary, a stale CRC-32 is caught (by ITK or here) all the same
    changed = bytearray(near)
    changed[-1] ^= 0x01
    path = _stored_nrrd(tmp_path / "near-stale.nrrd", bytes(changed), crc_of=near)
    with pytest.raises(ImageReadError, match="truncated or corrupt"):
        _onepass.read_file(path)

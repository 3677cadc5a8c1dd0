"""The mesh coefficients equal PyRadiomics' ``_cshape.calculate_coefficients`` bit
for bit: every cube configuration, random ROIs at several spacings, the
PyRadiomics test cases, and the shape class built on them.
"""

import numpy as np
import pytest
import SimpleITK as sitk
from radiomics import cShape
from radiomics.shape import RadiomicsShape

from sklearn_medprep.radiomics import _mesh
from sklearn_medprep.radiomics._mesh import mesh_coefficients, shape_class

SPACINGS = [(1.0, 1.0, 1.0), (2.0, 0.7, 0.9), (5.0, 0.4, 0.43),
            (3.0, 0.976562, 0.976562), (0.3, 1.7, 1.1)]


@pytest.fixture
def always_ours(monkeypatch):
    """Our path on any mesh size (below MIN_VERTICES PyRadiomics' own runs);
    counts the calls that took it.
    """
    monkeypatch.setattr(_mesh, "MIN_VERTICES", 0)
    calls = []
    compute = _mesh._surface_and_volume

    def counted(*args):
        calls.append(1)
        return compute(*args)

    monkeypatch.setattr(_mesh, "_surface_and_volume", counted)
    return calls


def _same(mask, spacing):
    mask = np.pad(np.asarray(mask, dtype=bool), 1)
    spacing = np.array(spacing, dtype=float)
    want = cShape.calculate_coefficients(mask, spacing)
    got = mesh_coefficients(mask, spacing)
    assert got == want  # every value bit for bit, not to a tolerance
    # the bound that sends small ROIs to PyRadiomics' loop without the cubes
    vertices = _mesh._vertices(_mesh._cube_indices(mask)[0], spacing)[0]
    assert len(vertices) <= 6 * np.count_nonzero(mask)


def _blob(rng, shape, noise):
    """A smooth random ROI, with ``noise`` of its voxels flipped."""
    zz, yy, xx = np.mgrid[: shape[0], : shape[1], : shape[2]]
    centre = np.array(shape) / 2 + rng.normal(0, 1, 3)
    radii = np.array(shape) / rng.uniform(2.5, 4, 3)
    field = (((zz - centre[0]) / radii[0]) ** 2 + ((yy - centre[1]) / radii[1]) ** 2
             + ((xx - centre[2]) / radii[2]) ** 2)
    field += 0.3 * np.sin(xx / 2.0 + rng.uniform(0, 6)) * np.cos(yy / 3.0)
    mask = field < 1
    mask ^= rng.random(shape) < noise
    return mask


def test_every_cube_configuration(always_ours):
    # the 256 corner patterns each in a 2 x 2 x 2 block of its own (blocks 3
    # apart), so that every one of PyRadiomics' table rows is used
    mask = np.zeros((8 * 3, 8 * 3, 4 * 3), dtype=bool)
    for index in range(256):
        block = [(index >> bit) & 1 for bit in range(8)]
        z, y, x = 3 * (index // 32), 3 * (index // 4 % 8), 3 * (index % 4)
        for bit, (dz, dy, dx) in enumerate(_mesh._CORNERS):
            mask[z + dz, y + dy, x + dx] = block[bit]
    for spacing in SPACINGS:
        _same(mask, spacing)
    assert len(always_ours) == len(SPACINGS)


@pytest.mark.parametrize("seed", range(6))
def test_random_rois(always_ours, seed):
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(6, 24, 3))
    for spacing, noise in zip(SPACINGS, (0.0, 0.02, 0.0, 0.1, 0.5)):
        _same(_blob(rng, shape, noise), spacing)
    assert len(always_ours) == len(SPACINGS)


def test_thin_and_flat_rois(always_ours):
    line = np.zeros((1, 1, 9), dtype=bool)
    line[0, 0, 2:7] = True
    plate = np.zeros((1, 7, 8), dtype=bool)
    plate[0, 1:6, 2:7] = True
    ring = np.ones((3, 9, 9), dtype=bool)
    ring[:, 3:6, 3:6] = False
    for mask in (line, plate, ring, np.ones((1, 1, 1), dtype=bool)):
        for spacing in SPACINGS[:3]:
            _same(mask, spacing)


def test_small_margin_falls_back(monkeypatch, always_ours):
    # half the smallest spacing squared below MIN_RELATIVE_GAP of the diameter
    # squared: PyRadiomics' own loop, the same values
    rng = np.random.default_rng(7)
    _same(_blob(rng, (9, 12, 11), 0.0), (1e-6, 1.0, 1.0))
    assert always_ours == []


def test_shape_class_features(always_ours):
    rng = np.random.default_rng(3)
    mask_array = _blob(rng, (14, 22, 19), 0.01).astype(np.uint8)
    image = sitk.GetImageFromArray(rng.normal(100, 20, mask_array.shape))
    image.SetSpacing((0.8, 0.9, 2.5))
    mask = sitk.GetImageFromArray(mask_array)
    mask.CopyInformation(image)
    fast = shape_class(RadiomicsShape)
    assert fast is shape_class(RadiomicsShape) and issubclass(fast, RadiomicsShape)
    values = []
    for cls in (RadiomicsShape, fast):
        shape = cls(image, mask, label=1)
        shape.enableAllFeatures()
        values.append(dict(shape.execute()))
    assert list(values[1]) == list(values[0]) and len(values[0]) > 10
    assert values[1] == values[0]
    assert len(always_ours) == 1


@pytest.mark.parametrize("case", ["brain1", "lung2"])
def test_pyradiomics_cases(shared_data, case):
    # large meshes (over MIN_VERTICES): our path without any monkeypatching
    mask = sitk.ReadImage(str(shared_data / "pyradiomics" / f"{case}_label.nrrd"))
    array = sitk.GetArrayFromImage(mask) == 1
    z, y, x = np.nonzero(array)
    box = array[z.min():z.max() + 1, y.min():y.max() + 1, x.min():x.max() + 1]
    padded = np.pad(box, 1)
    index, _ = _mesh._cube_indices(padded)
    assert len(_mesh._vertices(index, np.ones(3))[0]) >= _mesh.MIN_VERTICES
    _same(box, mask.GetSpacing()[::-1])


def test_large_round_roi(monkeypatch):
    # a large ball (many hull vertices, round planes): the default path
    calls = []
    compute = _mesh._surface_and_volume
    monkeypatch.setattr(_mesh, "_surface_and_volume",
                        lambda *args: calls.append(1) or compute(*args))
    zz, yy, xx = np.mgrid[:21, :44, :41]
    ball = ((zz - 10) / 9.5) ** 2 + ((yy - 21.5) / 20.0) ** 2 \
        + ((xx - 19.7) / 18.6) ** 2 < 1
    _same(ball, (2.5, 0.8, 0.85))
    assert calls == [1]


def test_largest_in_blocks():
    rng = np.random.default_rng(5)
    points = rng.normal(0, 10, (50, 3))
    want = max(
        float(((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2) + (a[2] - b[2]) ** 2)
        for a in points for b in points
    )
    for block in (1, 7, 50, 256):
        assert _mesh._largest(points, block) == want

"""The block loops of ComBat: constant-in-site probe, layouts, block sizes."""

import numpy as np
import pandas as pd
import pytest

from sklearn_medprep import ComBatHarmonizer
from sklearn_medprep.harmonization import _apply, _blocks
from sklearn_medprep.harmonization._blocks import SiteProbe


def _constant_reference(block, codes, n_sites):
    """Brute force: one distinct non-NaN value within the site (and not all NaN)."""
    out = np.zeros((n_sites, block.shape[1]), dtype=bool)
    for s in range(n_sites):
        for j in range(block.shape[1]):
            values = block[codes == s, j]
            values = values[~np.isnan(values)]
            out[s, j] = values.size > 0 and np.unique(values).size == 1
    return out


@pytest.mark.parametrize("n_probe", [1, 2, 8])
def test_site_probe_matches_brute_force(n_probe):
    rng = np.random.default_rng(0)
    # sites of 1, 3 (covered by 8 probes) and 40 rows; discrete columns, so
    # that the probed rows are often equal while the site is not constant
    codes = np.repeat([0, 1, 2], [1, 3, 40])
    rng.shuffle(codes)
    n = codes.size
    block = rng.integers(0, 2, size=(n, 30)).astype(float)
    block[:, 0] = 5.0  # constant everywhere
    block[codes == 2, 1] = 7.0  # constant in the large site only
    block[:, 2] = np.where(codes == 2, 1.0, block[:, 2])
    block[np.flatnonzero(codes == 2)[-1], 2] = 2.0  # differs in one row only
    block[codes == 1, 3] = np.nan  # a site without any value
    block[np.flatnonzero(codes == 2)[:3], 4] = np.nan  # NaN among equal values
    block[codes == 2, 4] = np.where(np.isnan(block[codes == 2, 4]), np.nan, 3.0)
    rows_by_site = [np.flatnonzero(codes == s) for s in range(3)]
    probe = SiteProbe(rows_by_site, n_probe=n_probe)
    expected = _constant_reference(block, codes, 3)
    got = probe.constant(np.asfortranarray(block))
    np.testing.assert_array_equal(got, expected)
    assert expected[2, 1] and not expected[2, 2] and expected[2, 4]
    assert not expected[1, 3]


def _table(n=60, p=23, seed=0):
    rng = np.random.default_rng(seed)
    site = rng.integers(0, 3, size=n)
    data = rng.standard_normal((n, p)) * (1 + site[:, None]) + site[:, None]
    data[:, 5] = np.round(data[:, 5])  # ties within sites
    age = rng.uniform(20, 80, size=n)
    data += np.outer(age / 40, rng.normal(size=p))
    return data, np.array([f"s{k}" for k in site]), age


@pytest.mark.parametrize("reference_site", [None, "s1"])
def test_layouts_and_block_sizes_agree(monkeypatch, reference_site):
    """Row-major and column-major data, one-column and whole blocks: one result."""
    data, site, age = _table()
    cols = [f"f{j}" for j in range(data.shape[1])]

    def run(layout):
        arr = np.asfortranarray(data) if layout == "F" else np.ascontiguousarray(data)
        table = pd.DataFrame(arr, columns=cols, copy=False)
        table["site"], table["age"] = site, age
        combat = ComBatHarmonizer(covariates=["age"], reference_site=reference_site)
        return combat.fit_transform(table).to_numpy(), combat

    base, combat = run("F")
    for cells in (1, 7 * 60, 10**7):  # one column per block, 7, all at once
        monkeypatch.setattr(_blocks, "_CACHE_CELLS", cells)
        monkeypatch.setattr(_apply, "_APPLY_CELLS", cells)
        monkeypatch.setattr(_apply, "_ROW_CELLS", cells)
        for layout in "FC":
            out, other = run(layout)
            np.testing.assert_allclose(out, base, rtol=1e-13, atol=1e-12)
            np.testing.assert_allclose(other.gamma_star_, combat.gamma_star_)
    if reference_site is not None:
        # the reference site's rows come back bit for bit (a = 1, c = 0)
        rows = site == reference_site
        np.testing.assert_array_equal(base[rows], data[rows])
    else:
        assert np.abs(base - data).max() > 0.1


def test_one_row_equals_its_row_of_the_batch():
    data, site, age = _table(seed=1)
    table = pd.DataFrame(data, columns=[f"f{j}" for j in range(data.shape[1])])
    table["site"], table["age"] = site, age
    combat = ComBatHarmonizer(covariates=["age"]).fit(table)
    full = combat.transform(table).to_numpy()
    for i in (0, 17, 59):
        one = combat.transform(table.iloc[[i]]).to_numpy()
        np.testing.assert_allclose(one[0], full[i], rtol=1e-14, atol=1e-13)

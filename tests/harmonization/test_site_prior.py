"""The one prior across sites (:mod:`._site_prior`) and its two users."""

import numpy as np
import pytest
from scipy.special import digamma, polygamma

from sklearn_medprep import ComBatHarmonizer, QuantileComBatHarmonizer
from sklearn_medprep.datasets import make_multisite_features
from sklearn_medprep.harmonization import _new_site_prior, _site_prior
from sklearn_medprep.harmonization._site_prior import (
    gaussian_log_variance,
    posterior_factor,
    posterior_weight,
    site_prior,
)


def test_site_prior_equals_a_direct_computation():
    """Known and estimated centre, with cells left out, against numpy."""
    rng = np.random.default_rng(0)
    est = rng.normal(0.3, 1.0, (7, 5))
    noise = rng.uniform(0.1, 0.5, (7, 5))
    cells = rng.random((7, 5)) > 0.2
    cells[:, 3] = False
    cells[0, 3] = True  # one cell: no prior
    est[2, 4] = np.nan  # a non-finite estimate is left out
    for centre in (0.0, "mean"):
        got_centre, tau2 = site_prior(est, noise, cells, centre=centre)
        for j in range(5):
            use = cells[:, j] & np.isfinite(est[:, j])
            x, v = est[use, j], noise[use, j]
            if use.sum() < 2:
                assert np.isnan(tau2[j])
                continue
            c = x.mean() if centre == "mean" else 0.0
            ddof = 1 if centre == "mean" else 0
            want = max(0.0, ((x - c) ** 2).sum() / (x.size - ddof) - v.mean())
            assert got_centre[j] == pytest.approx(c, abs=1e-14)
            assert tau2[j] == pytest.approx(want, abs=1e-14)
    with pytest.raises(ValueError, match="centre must be"):
        site_prior(est, noise, cells, centre="median")


@pytest.mark.parametrize("centre", [0.0, "mean"])
def test_tau2_is_unbiased_with_unequal_noise(centre):
    """Simulated: 5 sites of unequal noise, 40,000 replicates as features.

    The method-of-moments ``tau2`` (true 2.0; the clipping at 0 almost never
    acts at this spread) averages to the truth within 5 standard errors; the
    estimated centre's ``K - 1`` matters: ``K`` would average 1.54.
    """
    rng = np.random.default_rng(1)
    n_sites, n_rep, tau2 = 5, 40_000, 2.0
    v = np.linspace(0.1, 0.5, n_sites)[:, None] * np.ones((1, n_rep))
    est = (3.0 if centre == "mean" else 0.0) + rng.normal(
        0.0, np.sqrt(tau2), (n_sites, n_rep)) + rng.normal(0.0, np.sqrt(v))
    _, got = site_prior(est, v, np.ones(est.shape, dtype=bool), centre=centre)
    assert abs(got.mean() - tau2) < 5 * got.std() / np.sqrt(n_rep)


def test_posterior_weight_and_factor():
    tau2 = np.array([1.0, 0.0, 0.0, np.nan])
    noise = np.array([3.0, 2.0, 0.0, 1.0])
    np.testing.assert_array_equal(posterior_weight(tau2, noise),
                                  [0.25, 0.0, 0.0, np.nan])
    est = np.array([[2.0, 1.0], [4.0, 1.0], [0.0, 1.0]])
    cells = np.array([[True, True], [True, True], [True, False]])
    factor, centre, t2 = posterior_factor(est, np.full((3, 2), 0.5), cells,
                                          centre="mean")
    # column 0: centre 2, squared deviations 8 / 2 - 0.5 = 3.5
    np.testing.assert_allclose(centre, [2.0, 1.0])
    np.testing.assert_allclose(t2, [3.5, 0.0])
    np.testing.assert_allclose(factor[:, 0], 3.5 / 4.0)
    np.testing.assert_array_equal(factor[:, 1], [0.0, 0.0, 1.0])


def test_gaussian_log_variance():
    var, n = np.array([0.5, 2.0]), np.array([5.0, 40.0])
    log_var, noise = gaussian_log_variance(var, n)
    half = (n - 1) / 2
    np.testing.assert_allclose(log_var, np.log(var) - digamma(half) + np.log(half))
    np.testing.assert_allclose(noise, polygamma(1, half))
    # unbiased for normal rows: mean over simulated variances of 5 rows
    rows = np.random.default_rng(2).normal(0.0, 2.0, (200_000, 5))
    sim, _ = gaussian_log_variance(rows.var(axis=1, ddof=1), 5.0)
    assert abs(sim.mean() - np.log(4.0)) < 0.01


def test_both_users_go_through_the_one_prior(monkeypatch):
    """``shrinkage="sites"`` and ``"estimate_prior_cov"`` call :func:`site_prior`.

    Each caller's centre and noise model are recorded: the training sites'
    locations around the known centre 0 (twice: locations, then the quantile
    maps), their log-scales around the estimated mean with the kurtosis-aware
    noise; the new-site prior's log-scales around the estimated mean with the
    Gaussian trigamma noise.
    """
    calls = []
    real = _site_prior.site_prior

    def spy(estimate, noise, cells, *, centre=0.0):
        calls.append((centre, noise.copy()))
        return real(estimate, noise, cells, centre=centre)

    monkeypatch.setattr(_site_prior, "site_prior", spy)
    monkeypatch.setattr(_new_site_prior, "site_prior", spy)
    df = make_multisite_features(240, 6, n_sites=4, site_effect=1.0, random_state=0)
    X, y = df.drop(columns="y"), df["y"]
    QuantileComBatHarmonizer(covariates=["sex"], shrinkage="sites",
                             n_quantiles=5).fit(X, y)
    assert [c for c, _ in calls] == [0.0, "mean", 0.0]
    counts = X["site"].value_counts().sort_index().to_numpy()[:, None]
    assert np.all(calls[1][1] != polygamma(1, (counts - 1) / 2))  # kurtosis
    calls.clear()
    h = ComBatHarmonizer(covariates=["sex"], unseen_site="estimate_prior_cov")
    h.fit(X, y)
    assert [c for c, _ in calls] == ["mean"]
    np.testing.assert_array_equal(calls[0][1],
                                  np.broadcast_to(polygamma(1, (counts - 1) / 2),
                                                  calls[0][1].shape))

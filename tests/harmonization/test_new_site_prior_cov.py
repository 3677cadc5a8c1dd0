"""``unseen_site="estimate_prior_cov"``: the prior with the features' covariances.

Recovering the new site's location and never reading its labels are tested
with ``"estimate_prior"``'s, parametrised (``test_new_site_prior.py``).
"""

import warnings

import numpy as np
import pytest
from new_site_cohort import N_FEATURES, PRIOR_COV, new_site_cohort
from scipy.special import digamma, polygamma
from sklearn.covariance import LedoitWolf
from sklearn.preprocessing import SplineTransformer

from sklearn_medprep import ComBatHarmonizer
from sklearn_medprep.exceptions import MedprepWarning
from sklearn_medprep.harmonization import _new_site_prior as _nsp
from sklearn_medprep.harmonization._new_site_prior import (
    PRIOR_SPLINE_KNOTS,
    NewSitePrior,
    prior_location,
    prior_scale,
)

N_TRAIN_SITES = PRIOR_COV["n_train_sites"]
NEW = f"s{N_TRAIN_SITES}"


def _cohort(seed=0, **kwargs):
    """:func:`new_site_cohort` with ``"estimate_prior_cov"``'s setting."""
    return new_site_cohort(seed, **{**PRIOR_COV, **kwargs})


def _train(X):
    return (X["site"] != NEW).to_numpy()


def test_fitted_covariances_equal_a_direct_computation():
    """``noise_cov``, ``site_cov`` and the scale prior, computed by hand.

    From the fitted public attributes: the training rows standardized with
    the target at its training centre, less their site's ``gamma_hat``; the
    age effect in the same spline basis by least squares; Ledoit-Wolf of
    what is left; the site locations' second moment less that covariance
    times the mean of ``1 / n_k``, negative eigenvalues cut; the training
    sites' bias-corrected log scales, their mean and their variance beyond
    the trigamma sampling variance.
    """
    X, y, _, _, _ = _cohort(seed=1)
    train = _train(X)
    Xt, yt = X[train], y[train]
    combat = ComBatHarmonizer(unseen_site="estimate_prior_cov").fit(Xt, yt)
    prior = combat.new_site_prior_
    n_sites = len(combat.sites_)
    codes = np.searchsorted(combat.sites_, Xt["site"].to_numpy())
    slope = combat.coef_[n_sites]
    sd = np.sqrt(combat.var_pooled_)
    z = (Xt[combat.features_].to_numpy() - combat.grand_mean_
         - yt.mean() * slope) / sd
    residual = z - combat.gamma_hat_[codes]
    basis = SplineTransformer(n_knots=PRIOR_SPLINE_KNOTS, degree=3,
                              include_bias=False).fit_transform(yt[:, None])
    basis -= basis.mean(axis=0)
    centred = residual - residual.mean(axis=0)
    effect = np.linalg.lstsq(basis, centred, rcond=None)[0]
    np.testing.assert_allclose(prior.effect, effect, atol=1e-10)
    noise = LedoitWolf(assume_centered=True).fit(centred - basis @ effect)
    np.testing.assert_allclose(prior.noise_cov, noise.covariance_, atol=1e-10)
    n_rows = np.bincount(codes).astype(float)
    moment = combat.gamma_hat_.T @ combat.gamma_hat_ / n_sites
    eigval, eigvec = np.linalg.eigh(moment - noise.covariance_ * np.mean(1 / n_rows))
    assert eigval.min() < 0  # the clipping is exercised
    np.testing.assert_allclose(
        prior.site_cov, eigvec @ np.diag(np.maximum(eigval, 0)) @ eigvec.T,
        atol=1e-10)
    half = (n_rows[:, None] - 1) / 2
    logs = np.log(combat.delta_hat_) - (digamma(half) - np.log(half))
    np.testing.assert_allclose(prior.log_scale_mean, logs.mean(axis=0), atol=1e-12)
    beyond = logs.var(axis=0, ddof=1) - polygamma(1, half).mean(axis=0)
    np.testing.assert_allclose(prior.log_scale_var, np.maximum(beyond, 0),
                               atol=1e-12)


def test_location_equals_the_dense_posterior():
    """The location is the explicit GLS with both covariances written out."""
    rng = np.random.default_rng(4)
    n_basis, n_sites, n_features = 3, 6, 25
    root = rng.normal(size=(n_features, n_features))
    noise = root @ root.T / n_features + np.eye(n_features)
    g = rng.normal(size=(n_sites, n_features))
    prior = NewSitePrior(
        rng.normal(size=(n_basis, n_features)),
        np.linalg.inv(np.cov(rng.normal(size=(n_basis, 10)))),
        g, noise, g.T @ g / n_sites, np.zeros(n_features), np.zeros(n_features),
        np.inf,
    )
    mean = rng.normal(size=n_features)
    counts = rng.integers(8, 15, n_features).astype(float)
    c = prior.effect
    d = np.diag(1 / np.sqrt(counts))
    w = np.linalg.inv(prior.site_cov + d @ noise @ d)
    shift = np.linalg.solve(c @ w @ c.T + prior.shift_precision, c @ w @ mean)
    var = np.ones(n_features)
    np.testing.assert_allclose(prior_location(mean, var, counts, prior),
                               mean - shift @ c, rtol=1e-10, atol=1e-12)
    mean[4] = np.nan  # a feature without a finite mean keeps it, out of the split
    out = prior_location(mean, var, counts, prior)
    assert np.isnan(out[4]) and np.isfinite(np.delete(out, 4)).all()


def test_scale_is_shrunk_towards_the_training_sites():
    """:func:`prior_scale` is the precision-weighted average of log scales.

    Checked against the formula, and at its two ends: no spread of the
    training sites gives their mean scale, a wide one the new site's own
    (bias-corrected) variance.
    """
    rng = np.random.default_rng(5)
    n_features = 12
    var = rng.uniform(0.5, 2.0, n_features)
    counts = np.full(n_features, 20.0)
    mean, spread = rng.normal(0, 0.1, n_features), rng.uniform(0, 0.2, n_features)
    prior = NewSitePrior(None, None, None, log_scale_mean=mean,
                         log_scale_var=spread)
    half = 19 / 2
    own = np.log(var) - (digamma(half) - np.log(half))
    weight = spread / (spread + polygamma(1, half))
    np.testing.assert_allclose(prior_scale(var, counts, prior),
                               np.exp(mean + weight * (own - mean)), rtol=1e-12)
    none = NewSitePrior(None, None, None, log_scale_mean=mean,
                        log_scale_var=np.zeros(n_features))
    np.testing.assert_allclose(prior_scale(var, counts, none), np.exp(mean))
    wide = NewSitePrior(None, None, None, log_scale_mean=mean,
                        log_scale_var=np.full(n_features, 1e12))
    np.testing.assert_allclose(prior_scale(var, counts, wide), np.exp(own))


def test_a_wider_new_site_is_scaled_down():
    """A new site twice as noisy on half its features gets a larger scale there.

    The training sites' scales differ (by ``exp(0.3 N(0, 1))``), so that the
    prior lets a new site's scale differ too; with no spread among them the
    new site would get their common scale (checked in the test above). The
    applied ``delta*`` is read back from the output: a row's deviation
    from the site's mean is divided by ``sqrt(delta*)``.
    """
    X, y, _, _, _ = _cohort(seed=6, new_age=45.0, new_scale=2.0, scale_spread=0.3)
    train = _train(X)
    combat = ComBatHarmonizer(unseen_site="estimate_prior_cov").fit(X[train], y[train])
    out = combat.transform(X[~train]).to_numpy()
    raw = X.loc[~train, combat.features_].to_numpy()
    ratio = raw.std(axis=0) / out.std(axis=0)  # sqrt(delta*)
    half = N_FEATURES // 2
    assert np.median(ratio[:half]) > 1.5 * np.median(ratio[half:])


def test_nan_cell_stays_nan():
    """A NaN cell of the new site stays NaN; its other cells are harmonized."""
    X, y, _, _, _ = _cohort(seed=7)
    train = _train(X)
    combat = ComBatHarmonizer(unseen_site="estimate_prior_cov").fit(X[train], y[train])
    new = X[~train].copy()
    new.iloc[3, 5] = np.nan
    out = combat.transform(new).to_numpy()
    assert np.isnan(out[3, 5])
    assert np.isfinite(np.delete(out.ravel(), 3 * N_FEATURES + 5)).all()


def test_refusals(monkeypatch):
    """Without a protected target, or with too many features: refused at fit."""
    X, y, _, _, _ = _cohort(seed=8)
    train = _train(X)
    with pytest.raises(ValueError, match="no target is protected"):
        ComBatHarmonizer(unseen_site="estimate_prior_cov").fit(X[train])
    monkeypatch.setattr(_nsp, "MAX_COV_FEATURES", 10)
    with pytest.raises(ValueError, match="30 features are more than 10"):
        ComBatHarmonizer(unseen_site="estimate_prior_cov").fit(X[train], y[train])


@pytest.mark.parametrize("factor", [_nsp.OUTLIER_FACTOR, np.inf])
def test_a_site_outside_the_training_distribution(monkeypatch, factor):
    """A new site offset far along the age direction is taken for a site.

    The new site's ages are centred like the training sites' (mean 45), but
    its features carry an offset of ``120 * beta``: 120 years of ageing, an
    offset no training site's age distribution comes near (another scanner
    or software release). The split alone attributes it to the target
    (``OUTLIER_FACTOR`` infinite: the offset is kept, less than 20% of it
    removed along ``beta``); with the outlier rule the site covariance is
    inflated and at least 70% of it is removed as the site's.
    """
    monkeypatch.setattr(_nsp, "OUTLIER_FACTOR", factor)
    X, y, beta, truth, _ = _cohort(seed=9, new_age=45.0)
    train = _train(X)
    offset = 120.0 * beta
    X.loc[~train, [f"f{j}" for j in range(N_FEATURES)]] += offset
    combat = ComBatHarmonizer(unseen_site="estimate_prior_cov", mean_only=True,
                              eb=False).fit(X[train], y[train])
    out = combat.transform(X[~train])
    removed = (X.loc[~train, combat.features_].to_numpy() - out.to_numpy())[0]
    along = (removed - truth) @ beta / (offset @ beta)
    if np.isfinite(factor):
        assert along > 0.7
    else:
        assert along < 0.2


def test_estimate_prior_warns_of_a_site_outside_the_training_distribution():
    """``"estimate_prior"`` has no outlier rule: it says so, naming the site.

    The same new site as above, centred like the training sites: silent;
    with the offset of 120 years of ageing, which it would keep as a target
    shift, a warning names the site and the option that handles it.
    """
    X, y, beta, _, _ = _cohort(seed=9, new_age=45.0)
    train = _train(X)
    combat = ComBatHarmonizer(unseen_site="estimate_prior").fit(X[train], y[train])
    with warnings.catch_warnings():
        warnings.simplefilter("error", MedprepWarning)
        combat.transform(X[~train])
    X.loc[~train, [f"f{j}" for j in range(N_FEATURES)]] += 120.0 * beta
    with pytest.warns(MedprepWarning, match=(
            r"new site 's10': its estimated target shift lies beyond every "
            r"training site's.*'estimate_prior_cov'")):
        combat.transform(X[~train])

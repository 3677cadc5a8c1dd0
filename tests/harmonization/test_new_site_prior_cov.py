"""``unseen_site="estimate_prior_cov"``: the prior with the features' covariances."""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.special import digamma, polygamma
from sklearn.covariance import LedoitWolf
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
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
from sklearn_medprep.model_selection import LeaveOneSiteOut

N_FEATURES = 30
N_TRAIN_SITES = 10
NEW = f"s{N_TRAIN_SITES}"


def _cohort(seed=0, new_age=80.0, new_scale=1.0, scale_spread=0.0):
    """Ten training sites of mean ages 30-60, a new one of mean age ``new_age``.

    Every feature is ``2 + beta * age + gamma_site + noise``: the sites'
    locations lie in a two-dimensional subspace plus a little independent
    noise, the within-site noise has two common factors (the features move
    together, as cortical thicknesses do) and the age effect ``beta`` is drawn
    independently. The new site's noise is multiplied by ``new_scale`` on the
    first half of the features, each training site's by ``exp(scale_spread
    * N(0, 1))`` per feature (drawn from a generator of its own). Returns the
    table, the ages, ``beta``, the new site's true location (relative to the
    row-weighted mean of the training sites', as ComBat's grand mean is) and
    the noise covariance.
    """
    rng = np.random.default_rng(seed)
    scales = np.exp(scale_spread * np.random.default_rng(seed + 100).normal(
        size=(N_TRAIN_SITES, N_FEATURES)))
    beta = rng.normal(0.0, 0.06, N_FEATURES)
    factors = rng.normal(0.0, 1.0, (2, N_FEATURES))
    common = rng.normal(0.0, 1.0, (2, N_FEATURES))
    means = [*np.linspace(30, 60, N_TRAIN_SITES), new_age]
    rows, sites, ages, gammas, counts = [], [], [], [], []
    for k, mean_age in enumerate(means):
        n = 40 if k < N_TRAIN_SITES else 30
        age = rng.normal(mean_age, 6.0, n)
        gamma = rng.normal(0.0, 0.8, 2) @ factors + rng.normal(0, 0.05, N_FEATURES)
        noise = (rng.normal(0.0, 1.0, (n, 2)) @ common
                 + rng.normal(0.0, 1.0, (n, N_FEATURES)))
        if k == N_TRAIN_SITES:
            noise[:, : N_FEATURES // 2] *= new_scale
        else:
            noise *= scales[k]
        rows.append(2.0 + age[:, None] * beta + gamma + noise)
        sites += [f"s{k}"] * n
        ages.append(age)
        gammas.append(gamma)
        counts.append(n)
    X = pd.DataFrame(np.vstack(rows), columns=[f"f{j}" for j in range(N_FEATURES)])
    X.index = [f"sub{i:03d}" for i in range(len(X))]
    X["site"] = sites
    weights = np.array(counts[:-1]) / sum(counts[:-1])
    truth = gammas[-1] - weights @ np.array(gammas[:-1])
    return X, np.concatenate(ages), beta, truth, common.T @ common + np.eye(N_FEATURES)


def _train(X):
    return (X["site"] != NEW).to_numpy()


def test_recovers_the_site_shift_and_keeps_the_age_shift():
    """The location found is the site's, not its age shift; "estimate" fails.

    As for ``"estimate_prior"`` (test_new_site_prior.py), with noise common
    to the features: ``"estimate"`` removes the new site's 30-year age shift
    with its location; ``"estimate_prior_cov"`` gets the location at least
    2.5 times closer, within 2.5 times the noise of the 30-row mean, and
    keeps 80-120% of the age shift along ``beta``. Without empirical Bayes,
    whose shrinkage across features is the same for every policy.
    """
    X, y, beta, truth, noise_cov = _cohort()
    train = _train(X)
    age_shift = (y[~train].mean() - y[train].mean()) * beta
    errors, kept = {}, {}
    for policy in ("estimate", "estimate_prior_cov"):
        combat = ComBatHarmonizer(unseen_site=policy, mean_only=True, eb=False)
        combat.fit(X[train], y[train])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MedprepWarning)  # "estimate" warns
            out = combat.transform(X[~train])
        removed = X.loc[~train, combat.features_].to_numpy() - out.to_numpy()
        np.testing.assert_allclose(removed, removed[:1].repeat(len(removed), 0),
                                   atol=1e-10)  # one location per feature
        errors[policy] = np.sqrt(np.mean((removed[0] - truth) ** 2))
        kept[policy] = 1.0 - (removed[0] - truth) @ beta / (age_shift @ beta)
    assert kept["estimate"] < 0.2
    assert errors["estimate_prior_cov"] < errors["estimate"] / 2.5
    noise_of_mean = np.sqrt(np.mean(np.diag(noise_cov)) / 30)
    assert errors["estimate_prior_cov"] < 2.5 * noise_of_mean
    assert 0.8 < kept["estimate_prior_cov"] < 1.2


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


def test_new_site_labels_are_never_read():
    """Leak check: the held-out site's predictions ignore its labels.

    Under ``LeaveOneSiteOut`` in a Pipeline (scale adjusted), replacing the
    held-out site's ages by noise changes nothing of its predictions.
    """
    X, y, _, _, _ = _cohort(seed=2, new_age=50.0)
    rng = np.random.default_rng(3)
    pipe = make_pipeline(ComBatHarmonizer(unseen_site="estimate_prior_cov"), Ridge())
    for train, test in LeaveOneSiteOut().split(X, y, groups=X["site"]):
        garbled = y.copy()
        garbled[test] = rng.normal(0.0, 100.0, len(test))
        first = pipe.fit(X.iloc[train], y[train]).predict(X.iloc[test])
        again = pipe.fit(X.iloc[train], garbled[train]).predict(X.iloc[test])
        np.testing.assert_array_equal(first, again)
        assert pipe[0].new_site_prior_.noise_cov.shape == (N_FEATURES, N_FEATURES)


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

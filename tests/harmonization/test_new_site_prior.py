"""``unseen_site="estimate_prior"``: a new site's shift without its target's.

The two tests shared with ``"estimate_prior_cov"`` (its own in
``test_new_site_prior_cov.py``) are parametrised over both options.
"""

import warnings

import numpy as np
import pytest
from new_site_cohort import N_FEATURES, PRIOR, PRIOR_COV, new_site_cohort
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline

from sklearn_medprep import ComBatHarmonizer
from sklearn_medprep.exceptions import MedprepWarning
from sklearn_medprep.harmonization._new_site_prior import (
    NewSitePrior,
    prior_location,
)
from sklearn_medprep.model_selection import LeaveOneSiteOut

N_TRAIN_SITES = PRIOR["n_train_sites"]


def _cohort(seed=0, **kwargs):
    """:func:`new_site_cohort` with ``"estimate_prior"``'s setting (no noise cov)."""
    return new_site_cohort(seed, **{**PRIOR, **kwargs})[:4]


def _new_site_location(policy, X, y, n_train_sites=N_TRAIN_SITES):
    """The location removed from the new site's rows (``mean_only``).

    Without empirical Bayes, whose shrinkage across features is the same for
    every policy: what is compared is the estimate itself.
    """
    train = (X["site"] != f"s{n_train_sites}").to_numpy()
    combat = ComBatHarmonizer(unseen_site=policy, mean_only=True, eb=False)
    combat.fit(X[train], y[train])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MedprepWarning)  # "estimate" warns
        out = combat.transform(X[~train])
    removed = X.loc[~train, combat.features_].to_numpy() - out.to_numpy()
    np.testing.assert_allclose(removed, removed[:1].repeat(len(removed), 0),
                               atol=1e-10)  # one location per feature
    return removed[0]


@pytest.mark.parametrize(("policy", "cohort", "closer", "within"), [
    ("estimate_prior", PRIOR, 3.0, 2.0),
    ("estimate_prior_cov", PRIOR_COV, 2.5, 2.5),
])
def test_recovers_the_site_shift_and_keeps_the_age_shift(policy, cohort, closer,
                                                          within):
    """The location found is the site's, not its age shift; "estimate" fails.

    The truth is known: the new site's simulated location. ``"estimate"``
    removes the site's whole mean, so ``beta`` times its extra age (10-20
    years beyond the oldest training site) goes with it; ``policy`` must get
    the location ``closer`` times closer, within ``within`` times the noise
    of the 30-row mean, and keep 80-120% of the age shift along ``beta``.
    ``"estimate_prior_cov"`` on the cohort whose noise has factors common to
    the features (that noise's covariance gives the mean's noise).
    """
    X, y, beta, truth, noise_cov = new_site_cohort(**cohort)
    train = (X["site"] != f"s{cohort['n_train_sites']}").to_numpy()
    age_shift = (y[~train].mean() - y[train].mean()) * beta
    errors, kept = {}, {}
    for option in ("estimate", policy):
        removed = _new_site_location(option, X, y, cohort["n_train_sites"])
        errors[option] = np.sqrt(np.mean((removed - truth) ** 2))
        # the part of the age shift along beta left in the rows
        kept[option] = 1.0 - (removed - truth) @ beta / (age_shift @ beta)
    # "estimate" removes the age shift with the site (what this test guards)
    assert kept["estimate"] < 0.2
    assert errors[policy] < errors["estimate"] / closer
    noise_of_mean = np.sqrt(np.mean(np.diag(noise_cov)) / 30)
    assert errors[policy] < within * noise_of_mean
    assert 0.8 < kept[policy] < 1.2


def test_prior_location_equals_the_dense_posterior():
    """Woodbury solves equal the explicit GLS with the covariance written out."""
    rng = np.random.default_rng(1)
    n_basis, n_sites, n_features = 3, 6, 25
    prior = NewSitePrior(
        rng.normal(size=(n_basis, n_features)),
        np.linalg.inv(np.cov(rng.normal(size=(n_basis, 10)))),
        rng.normal(size=(n_sites, n_features)),
    )
    mean = rng.normal(size=n_features)
    var = rng.uniform(0.5, 2.0, n_features)
    counts = np.full(n_features, 12.0)
    c, g = prior.effect, prior.site_locations
    cov = g.T @ g / n_sites + np.diag(var / counts)
    w = np.linalg.inv(cov)
    shift = np.linalg.solve(c @ w @ c.T + prior.shift_precision, c @ w @ mean)
    np.testing.assert_allclose(prior_location(mean, var, counts, prior),
                               mean - shift @ c, rtol=1e-10, atol=1e-12)
    # a feature with a NaN mean keeps it and is left out of the split
    mean[4] = np.nan
    out = prior_location(mean, var, counts, prior)
    assert np.isnan(out[4]) and np.isfinite(np.delete(out, 4)).all()


@pytest.mark.parametrize(("policy", "cohort", "mean_only"), [
    ("estimate_prior", {**PRIOR, "new_age": 70.0}, True),
    ("estimate_prior_cov", {**PRIOR_COV, "new_age": 50.0}, False),
])
def test_new_site_labels_are_never_read(policy, cohort, mean_only):
    """Leak check: the held-out site's predictions ignore its labels.

    Under ``LeaveOneSiteOut`` in a Pipeline, replacing the held-out site's
    ages by noise changes nothing of its predictions (the training sites'
    labels are those of the fit, the new site's never reach ``transform``);
    ``"estimate_prior_cov"`` with the scale adjusted.
    """
    X, y, _, _, _ = new_site_cohort(2, **cohort)
    rng = np.random.default_rng(3)
    pipe = make_pipeline(
        ComBatHarmonizer(unseen_site=policy, mean_only=mean_only), Ridge()
    )
    for train, test in LeaveOneSiteOut().split(X, y, groups=X["site"]):
        garbled = y.copy()
        garbled[test] = rng.normal(0.0, 100.0, len(test))
        first = pipe.fit(X.iloc[train], y[train]).predict(X.iloc[test])
        again = pipe.fit(X.iloc[train], garbled[train]).predict(X.iloc[test])
        np.testing.assert_array_equal(first, again)
        # and the prior was learned: the new site is not simply passed through
        prior = pipe[0].new_site_prior_
        if policy == "estimate_prior":
            assert prior.effect.shape[1] == N_FEATURES
            assert not np.allclose(pipe[0].transform(X.iloc[test]),
                                   X.iloc[test][pipe[0].features_])
        else:
            assert prior.noise_cov.shape == (N_FEATURES, N_FEATURES)


def test_scale_adjusted_and_classes_target():
    """With the scale and a class target: finite output, training rows unchanged."""
    X, y, _, _ = _cohort(seed=4)
    train = (X["site"] != f"s{N_TRAIN_SITES}").to_numpy()
    labels = np.where(y > np.median(y), "old", "young")
    for target in (y, labels):
        plain = ComBatHarmonizer(unseen_site="estimate").fit(X[train], target[train])
        prior = ComBatHarmonizer(unseen_site="estimate_prior")
        prior.fit(X[train], target[train])
        with warnings.catch_warnings():
            # the class target warns: the new site's ages (70) continue the
            # age effect beyond the training sites' (30-60), so its estimated
            # class shift exceeds what any share of "old" can reach
            warnings.simplefilter("ignore", MedprepWarning)
            out = prior.transform(X)
        assert np.isfinite(out.to_numpy()).all()
        np.testing.assert_allclose(out[train], plain.transform(X[train]),
                                   rtol=1e-12)


@pytest.mark.parametrize("kwargs", [{"protect_target": "none"}, {}])
def test_refused_without_a_protected_target(kwargs):
    X, y, _, _ = _cohort()
    combat = ComBatHarmonizer(unseen_site="estimate_prior", **kwargs)
    with pytest.raises(ValueError, match="estimate_prior"):
        combat.fit(X, y if kwargs else None)

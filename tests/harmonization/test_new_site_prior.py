"""``unseen_site="estimate_prior"``: a new site's shift without its target's."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline

from sklearn_medprep import ComBatHarmonizer
from sklearn_medprep.exceptions import MedprepWarning
from sklearn_medprep.harmonization._new_site_prior import (
    NewSitePrior,
    prior_location,
)
from sklearn_medprep.model_selection import LeaveOneSiteOut

N_FEATURES = 30
N_TRAIN_SITES = 8


def _cohort(seed=0, new_age=70.0):
    """Eight training sites of different mean ages, a new one much older.

    Every feature is ``2 + beta * age + gamma_site + noise``; the sites'
    locations ``gamma`` lie in a two-dimensional subspace (two scanner
    factors) plus a little independent noise, the age effect ``beta`` is
    drawn independently of it. Training sites' mean ages spread from 30 to
    60, the new site's is ``new_age``. Returns the table, the ages, ``beta``
    and the new site's true location (in data units, relative to the
    row-weighted mean of the training sites' locations, as ComBat's grand
    mean is).
    """
    rng = np.random.default_rng(seed)
    beta = rng.normal(0.0, 0.06, N_FEATURES)
    factors = rng.normal(0.0, 1.0, (2, N_FEATURES))
    means = [*np.linspace(30, 60, N_TRAIN_SITES), new_age]
    rows, sites, ages, gammas, counts = [], [], [], [], []
    for k, mean_age in enumerate(means):
        n = 40 if k < N_TRAIN_SITES else 30
        age = rng.normal(mean_age, 6.0, n)
        gamma = rng.normal(0.0, 0.8, 2) @ factors + rng.normal(0, 0.05, N_FEATURES)
        rows.append(2.0 + age[:, None] * beta + gamma
                    + rng.normal(0.0, 1.0, (n, N_FEATURES)))
        sites += [f"s{k}"] * n
        ages.append(age)
        gammas.append(gamma)
        counts.append(n)
    X = pd.DataFrame(np.vstack(rows), columns=[f"f{j}" for j in range(N_FEATURES)])
    X.index = [f"sub{i:03d}" for i in range(len(X))]
    X["site"] = sites
    weights = np.array(counts[:-1]) / sum(counts[:-1])
    truth = gammas[-1] - weights @ np.array(gammas[:-1])
    return X, np.concatenate(ages), beta, truth


def _new_site_location(policy, X, y):
    """The location removed from the new site's rows (``mean_only``).

    Without empirical Bayes, whose shrinkage across features is the same for
    every policy: what is compared is the estimate itself.
    """
    train = (X["site"] != f"s{N_TRAIN_SITES}").to_numpy()
    combat = ComBatHarmonizer(unseen_site=policy, mean_only=True, eb=False)
    combat.fit(X[train], y[train])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MedprepWarning)  # "estimate" warns
        out = combat.transform(X[~train])
    removed = X.loc[~train, combat.features_].to_numpy() - out.to_numpy()
    np.testing.assert_allclose(removed, removed[:1].repeat(len(removed), 0),
                               atol=1e-10)  # one location per feature
    return removed[0]


def test_recovers_the_site_shift_and_keeps_the_age_shift():
    """The location found is the site's, not its age shift; "estimate" fails.

    The truth is known: the new site's simulated location. ``"estimate"``
    removes the site's whole mean, so ``beta`` times its extra age goes with
    it; ``"estimate_prior"`` must get the location at least three times
    closer, within twice the noise of a 30-row mean (``1 / sqrt(30)``), and
    keep 80-120% of the age shift along ``beta``.
    """
    X, y, beta, truth = _cohort()
    train_mean_age = y[(X["site"] != f"s{N_TRAIN_SITES}").to_numpy()].mean()
    new_ages = y[(X["site"] == f"s{N_TRAIN_SITES}").to_numpy()]
    age_shift = (new_ages.mean() - train_mean_age) * beta
    errors, kept = {}, {}
    for policy in ("estimate", "estimate_prior"):
        removed = _new_site_location(policy, X, y)
        errors[policy] = np.sqrt(np.mean((removed - truth) ** 2))
        # the part of the age shift along beta left in the rows
        kept[policy] = 1.0 - (removed - truth) @ beta / (age_shift @ beta)
    # "estimate" removes the age shift with the site (what this test guards)
    assert kept["estimate"] < 0.2
    assert errors["estimate_prior"] < errors["estimate"] / 3
    assert errors["estimate_prior"] < 2.0 / np.sqrt(30)
    assert 0.8 < kept["estimate_prior"] < 1.2


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


def test_new_site_labels_are_never_read():
    """Leak check: the held-out site's predictions ignore its labels.

    Under ``LeaveOneSiteOut`` in a Pipeline, replacing the held-out site's
    ages by noise changes nothing of its predictions (the training sites'
    labels are those of the fit, the new site's never reach ``transform``).
    """
    X, y, _, _ = _cohort(seed=2)
    rng = np.random.default_rng(3)
    pipe = make_pipeline(
        ComBatHarmonizer(unseen_site="estimate_prior", mean_only=True), Ridge()
    )
    for train, test in LeaveOneSiteOut().split(X, y, groups=X["site"]):
        garbled = y.copy()
        garbled[test] = rng.normal(0.0, 100.0, len(test))
        first = pipe.fit(X.iloc[train], y[train]).predict(X.iloc[test])
        again = pipe.fit(X.iloc[train], garbled[train]).predict(X.iloc[test])
        np.testing.assert_array_equal(first, again)
        # and the prior was learned: the new site is not simply passed through
        combat = pipe[0]
        assert combat.new_site_prior_.effect.shape[1] == N_FEATURES
        assert not np.allclose(combat.transform(X.iloc[test]),
                               X.iloc[test][combat.features_])


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

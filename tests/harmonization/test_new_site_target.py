"""``unseen_site="estimate_outside_target"``: a new site's target shift is kept."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline

from sklearn_medprep import ComBatHarmonizer
from sklearn_medprep.exceptions import MedprepWarning
from sklearn_medprep.harmonization._core import standardize
from sklearn_medprep.harmonization._sites import outside_target_moments
from sklearn_medprep.model_selection import LeaveOneSiteOut

N_FEATURES = 40


def _cohort(seed=0, new_age_shift=25.0):
    """Three training sites of similar ages, a new site 25 years older.

    Every feature is ``alpha + beta * age + gamma_site + delta_site * noise``,
    with the site effects drawn independently of ``beta``.
    """
    rng = np.random.default_rng(seed)
    beta = rng.normal(0.0, 0.05, N_FEATURES)
    rows, sites, ages = [], [], []
    for k, (n, shift) in enumerate([(60, 0.0), (50, 0.0), (55, 0.0),
                                    (40, new_age_shift)]):
        age = rng.uniform(30, 50, n) + shift
        gamma = rng.normal(0.0, 0.5, N_FEATURES)
        delta = rng.uniform(0.7, 1.4, N_FEATURES)
        noise = rng.normal(0.0, 1.0, (n, N_FEATURES)) * delta
        rows.append(2.0 + age[:, None] * beta + gamma + noise)
        sites += [f"s{k}"] * n
        ages.append(age)
    X = pd.DataFrame(np.vstack(rows), columns=[f"f{j}" for j in range(N_FEATURES)])
    X.index = [f"sub{i:03d}" for i in range(len(X))]
    X["site"] = sites
    return X, np.concatenate(ages), beta


def _fit(X, y, **kwargs):
    train = (X["site"] != "s3").to_numpy()
    combat = ComBatHarmonizer(**kwargs).fit(X[train], y[train])
    return combat, train


def test_location_is_orthogonal_to_the_target_and_the_variance_is_the_rest():
    """The moments equal a direct computation from the standardized rows."""
    X, y, _ = _cohort()
    combat, train = _fit(X, y, unseen_site="estimate_outside_target")
    model = combat.model_
    new = X.loc[~train, combat.features_].to_numpy()
    design = np.tile(combat.target_term_.centre, (new.shape[0], 1))
    basis = model["coef_cov"][combat.target_columns_] / np.sqrt(model["var_pooled"])
    mean, var, counts, _ = outside_target_moments(
        lambda a, b: new[:, a:b], N_FEATURES, design, model, basis
    )
    # reference: plain numpy on the standardized rows
    s = (new - model["grand_mean"] - design @ model["coef_cov"]) / np.sqrt(
        model["var_pooled"]
    )
    np.testing.assert_allclose(
        s, standardize(new, design, model["coef_cov"], model["grand_mean"],
                       model["var_pooled"]), rtol=1e-12)
    m = s.mean(axis=0)
    b = basis[0]
    np.testing.assert_allclose(mean, m - (m @ b) / (b @ b) * b, atol=1e-12)
    assert abs(mean @ b) < 1e-10 * np.linalg.norm(m) * np.linalg.norm(b)
    c = s - m
    rest = c - np.outer(c @ b / (b @ b), b)
    np.testing.assert_allclose(var, (rest**2).sum(axis=0) / (len(s) - 1),
                               rtol=1e-12)
    np.testing.assert_array_equal(counts, len(s))


def test_new_site_keeps_its_target_shift_where_estimate_removes_it():
    """Along the target's direction, the new site's older age survives."""
    X, y, beta = _cohort()
    out = {}
    for policy in ("estimate", "estimate_outside_target"):
        combat, train = _fit(X, y, unseen_site=policy, mean_only=True, eb=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MedprepWarning)
            out[policy] = combat.transform(X).to_numpy()
    train_mean = out["estimate"][train].mean(axis=0)
    # the true shift of the new site's mean along beta: 25 years more
    unit = beta / np.linalg.norm(beta)
    expected = (y[~train].mean() - y[train].mean()) * (beta @ unit)
    kept = {
        policy: (o[~train].mean(axis=0) - train_mean) @ unit
        for policy, o in out.items()
    }
    assert abs(kept["estimate"]) < 0.1 * abs(expected)
    assert kept["estimate_outside_target"] == pytest.approx(expected, rel=0.35)
    # training rows are harmonized identically by both
    np.testing.assert_array_equal(out["estimate"][train],
                                  out["estimate_outside_target"][train])


def test_age_prediction_at_a_new_older_site():
    """LOSO-style: the model trained on harmonized training sites is not biased."""
    X, y, _ = _cohort(seed=1)
    errors = {}
    for policy in ("estimate", "estimate_outside_target"):
        combat, train = _fit(X, y, unseen_site=policy)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MedprepWarning)
            h = combat.transform(X)
        model = Ridge(alpha=1.0).fit(h[train], y[train])
        errors[policy] = np.mean(model.predict(h[~train]) - y[~train])
    # "estimate" pulls the new site's predictions toward the training ages
    assert errors["estimate"] < -10
    assert abs(errors["estimate_outside_target"]) < 0.5 * abs(errors["estimate"])


def test_no_warning_about_the_target_centre():
    X, y, _ = _cohort()
    combat, _ = _fit(X, y, unseen_site="estimate_outside_target")
    with warnings.catch_warnings():
        warnings.simplefilter("error", MedprepWarning)
        combat.transform(X)


@pytest.mark.parametrize("kwargs", [{"protect_target": "none"}, {}])
def test_refused_without_a_protected_target(kwargs):
    X, y, _ = _cohort()
    combat = ComBatHarmonizer(unseen_site="estimate_outside_target", **kwargs)
    with pytest.raises(ValueError, match="no target is protected"):
        combat.fit(X, y if kwargs else None)


def test_in_a_pipeline_with_leave_one_site_out():
    X, y, _ = _cohort()
    pipe = make_pipeline(
        ComBatHarmonizer(unseen_site="estimate_outside_target"), Ridge()
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MedprepWarning)
        for train, test in LeaveOneSiteOut().split(X, y, groups=X["site"]):
            pred = pipe.fit(X.iloc[train], y[train]).predict(X.iloc[test])
            combat = ComBatHarmonizer(unseen_site="estimate_outside_target")
            combat.fit(X.iloc[train], y[train])
            by_hand = Ridge().fit(combat.transform(X.iloc[train]), y[train])
            np.testing.assert_allclose(
                pred, by_hand.predict(combat.transform(X.iloc[test])), rtol=1e-10
            )

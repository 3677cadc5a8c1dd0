"""CovBatHarmonizer: equal to our restatement (ddof=1), removes covariance effects.

Against the authors' own covbat.py: test_covbat_authors.py.
"""

import numpy as np
import pandas as pd
import pytest
from covbat_reference import reference_covbat
from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import train_test_split

from sklearn_medprep import ComBatHarmonizer, CovBatHarmonizer
from sklearn_medprep.exceptions import MedprepWarning

P = 10
FEATS = [f"f{j}" for j in range(P)]


def covariance_sites(seed=0, n_site=60):
    """Three sites that differ in mean, scale and, mostly, covariance."""
    rng = np.random.default_rng(seed)
    sites = np.repeat(["a", "b", "c"], n_site)
    age = rng.uniform(20, 80, sites.size)
    data = np.empty((sites.size, P))
    for k, label in enumerate("abc"):
        rows = sites == label
        loadings = rng.normal(0, 1.0, (P, 2)) * (k + 0.5)  # site-specific factors
        factors = rng.standard_normal((n_site, 2))
        data[rows] = rng.standard_normal((n_site, P)) + factors @ loadings.T + k
    data += 0.03 * age[:, None]
    df = pd.DataFrame(data, columns=FEATS)
    df["site"], df["age"] = sites, age
    return df


@pytest.mark.parametrize("kw, ref_kw", [({}, {}), ({"n_components": 3}, {"n_pc": 3})])
def test_equal_to_reference_covbat(kw, ref_kw):
    df = covariance_sites()
    ref = reference_covbat(
        df[FEATS].to_numpy(), df["site"].to_numpy(), df[["age"]].to_numpy(), **ref_kw
    )
    ours = CovBatHarmonizer(covariates=["age"], **kw).fit_transform(df)
    assert list(ours.columns) == FEATS and ours.index.equals(df.index)
    np.testing.assert_allclose(ours.to_numpy(), ref, rtol=0, atol=1e-10)
    # and it is not ComBat's output
    combat = ComBatHarmonizer(covariates=["age"]).fit_transform(df)
    assert np.abs(combat.to_numpy() - ref).max() > 0.1


def test_pct_var_picks_the_components_as_the_reference():
    df = covariance_sites(1)
    covbat = CovBatHarmonizer(covariates=["age"], pct_var=0.6).fit(df)
    cum = np.cumsum(np.round(covbat.explained_variance_ratio_, 4))
    assert covbat.n_components_ == int(np.flatnonzero(cum > 0.6)[0]) + 1
    assert covbat.n_components_ < P
    ref = reference_covbat(
        df[FEATS].to_numpy(), df["site"].to_numpy(), df[["age"]].to_numpy(), 0.6
    )
    np.testing.assert_allclose(covbat.transform(df).to_numpy(), ref, atol=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_site_less_predictable_than_after_combat(seed):
    """A multivariate classifier (QDA) trained and scored on held-out rows."""
    df = covariance_sites(seed, n_site=150)
    train, test = train_test_split(
        df, test_size=0.4, stratify=df["site"], random_state=seed
    )
    scores = {}
    for est in (
        ComBatHarmonizer(covariates=["age"]),
        CovBatHarmonizer(covariates=["age"]),
    ):
        est.fit(train)  # training rows only
        clf = QuadraticDiscriminantAnalysis(reg_param=0.1)
        clf.fit(est.transform(train).to_numpy(), train["site"])
        pred = clf.predict(est.transform(test).to_numpy())
        scores[type(est).__name__] = balanced_accuracy_score(test["site"], pred)
    assert scores["CovBatHarmonizer"] < scores["ComBatHarmonizer"] - 0.05, scores


def test_leak_free_rows_independent_and_target_never_needed():
    df = covariance_sites()
    train, test = df.iloc[::2], df.iloc[1::2]
    y = (train["age"] > 50).astype(int)
    covbat = CovBatHarmonizer(covariates=["age"], n_components=4).fit(train, y)
    assert covbat.target_term_.kind == "classes"
    full = covbat.transform(test)
    one_by_one = pd.concat([covbat.transform(test.iloc[[i]]) for i in range(len(test))])
    np.testing.assert_allclose(one_by_one.to_numpy(), full.to_numpy(), atol=1e-12)
    # the components are those of the training rows
    other = CovBatHarmonizer(covariates=["age"], n_components=4).fit(df, None)
    assert not np.allclose(np.abs(other.components_), np.abs(covbat.components_))


def test_unseen_site_rows_get_the_combat_step_only():
    df = covariance_sites()
    train, new = df[df["site"] != "c"], df[df["site"] == "c"]
    covbat = CovBatHarmonizer(covariates=["age"], unseen_site="passthrough").fit(train)
    with pytest.warns(MedprepWarning, match="unharmonized"):
        out = covbat.transform(new)
    np.testing.assert_allclose(out.to_numpy(), new[FEATS].to_numpy(), atol=1e-10)


def test_new_site_scores_are_estimated_like_training_sites():
    # unseen_site="estimate": ComBat step as ComBatHarmonizer's, then the new
    # site's score location/scale from its rows' scores (no EB), computed here
    # directly from the fitted attributes
    df = covariance_sites()
    train, new = df[df["site"] != "c"], df[df["site"] == "c"]
    kw = {"covariates": ["age"], "unseen_site": "estimate", "n_components": 3}
    covbat = CovBatHarmonizer(**kw).fit(train)
    out = covbat.transform(new)
    combat = ComBatHarmonizer(covariates=["age"], unseen_site="estimate").fit(train)
    step1 = combat.transform(new).to_numpy()
    mean = new[["age"]].to_numpy() @ covbat.coef_[2:] + covbat.grand_mean_
    z = (step1 - mean - covbat.scaler_mean_) / covbat.scaler_scale_
    scores = z @ covbat.components_.T
    gm = covbat.score_params_["grand_mean"]
    sd = np.sqrt(covbat.score_params_["var_pooled"])
    u = (scores - gm) / sd
    gamma, delta = u.mean(axis=0), u.var(axis=0, ddof=1)
    adjusted = (u - gamma) / np.sqrt(delta) * sd + gm
    expected = (z + (adjusted - scores) @ covbat.components_) * covbat.scaler_scale_
    expected += covbat.scaler_mean_ + mean
    np.testing.assert_allclose(out.to_numpy(), expected, rtol=0, atol=1e-10)
    # the new site's scores now have the training scores' mean and variance
    z_out = (out.to_numpy() - mean - covbat.scaler_mean_) / covbat.scaler_scale_
    u_out = (z_out @ covbat.components_.T - gm) / sd
    np.testing.assert_allclose(u_out.mean(axis=0), 0, atol=1e-10)
    np.testing.assert_allclose(u_out.var(axis=0, ddof=1), 1, atol=1e-10)
    # and the step changed something (the site's scores were not centred)
    assert np.abs(out.to_numpy() - step1).max() > 1e-3


def test_parameters_are_validated():
    df = covariance_sites()
    with pytest.raises(ValueError, match="pct_var"):
        CovBatHarmonizer(pct_var=1.5).fit(df)
    with pytest.raises(ValueError, match="n_components"):
        CovBatHarmonizer(n_components=0).fit(df)


def test_protected_target_is_not_taken_for_a_site_effect_of_the_scores():
    """Sites differing only in age: the scores' site effects stay near zero.

    Every feature is ``age * beta + noise``, with no site effect at all, and
    the three sites' ages differ (30, 50, 70 on average). With age protected,
    ComBat's site effects are near zero; the principal-component step must
    find none either, and the harmonized rows keep predicting age. Scores
    taken around the target's training centre would hold each row's age
    effect, and their site means would remove it (FCON1000: age R2 0.064).
    """
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(0)
    n, p = 150, 12
    site = np.repeat(["a", "b", "c"], n // 3)
    age = np.concatenate([rng.uniform(20, 40, n // 3), rng.uniform(40, 60, n // 3),
                          rng.uniform(60, 80, n // 3)])
    beta = rng.normal(0.0, 0.05, p)
    X = pd.DataFrame(age[:, None] * beta + rng.normal(0.0, 0.3, (n, p)),
                     columns=[f"f{j}" for j in range(p)])
    X["site"] = site
    train = np.arange(n) % 3 != 0
    covbat = CovBatHarmonizer(n_components=3).fit(X[train], age[train])
    combat = ComBatHarmonizer().fit(X[train], age[train])
    # no site effect in the data: the scores' site means are noise-sized
    assert np.abs(covbat.score_params_["gamma_hat"]).max() < 0.5
    r2 = {}
    for name, est in {"covbat": covbat, "combat": combat}.items():
        model = Ridge(alpha=1.0).fit(est.transform(X[train]), age[train])
        r2[name] = r2_score(age[~train], model.predict(est.transform(X[~train])))
    assert r2["combat"] > 0.8
    assert r2["covbat"] > r2["combat"] - 0.05

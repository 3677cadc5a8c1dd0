"""CovBatHarmonizer: equal to the authors' algorithm, removes covariance effects."""

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


def test_parameters_are_validated():
    df = covariance_sites()
    with pytest.raises(ValueError, match="pct_var"):
        CovBatHarmonizer(pct_var=1.5).fit(df)
    with pytest.raises(ValueError, match="n_components"):
        CovBatHarmonizer(n_components=0).fit(df)

"""Survival targets (scikit-survival's structured y) through ComBat and CovBat."""

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from sklearn_medprep import ComBatHarmonizer, CovBatHarmonizer
from sklearn_medprep.datasets import make_multisite_features
from sklearn_medprep.exceptions import SubjectTableError, TargetProxyError
from sklearn_medprep.model_selection import SiteStratifiedKFold
from sklearn_medprep.table import find_target_proxies

SURV = [("event", bool), ("time", np.float64)]


def survival_table(n=90, seed=0):
    """Features with site effects, and an event/time target depending on them.

    Follow-up (censoring) differs by site, as it does between real studies.
    """
    table = make_multisite_features(n, 6, 3, site_sizes=[30, 30, 30],
                                    random_state=seed).drop(columns="y")
    rng = np.random.default_rng(seed)
    features = table.filter(like="f0").to_numpy()
    risk = 0.6 * features[:, 0] - 0.4 * features[:, 1]
    time = rng.exponential(10 * np.exp(-risk))
    follow_up = table["site"].map({"site_0": 8.0, "site_1": 15.0, "site_2": 30.0})
    censor = rng.uniform(0.3, 1.0, n) * follow_up.to_numpy()
    y = np.empty(n, dtype=SURV)
    y["event"] = time <= censor
    y["time"] = np.minimum(time, censor)
    return table.drop(columns="sex"), y


@pytest.mark.parametrize("harmonizer", [ComBatHarmonizer, CovBatHarmonizer])
def test_survival_target_protects_its_event_indicator(harmonizer):
    X, y = survival_table()
    kwargs = {"covariates": ["age"]}
    fitted = harmonizer(**kwargs).fit(X, y)
    assert fitted.target_term_.kind == "classes"
    assert fitted.target_term_.levels.tolist() == [False, True]
    # the same model as the event indicator itself protected, as two classes
    reference = harmonizer(**kwargs).fit(X, y["event"])
    np.testing.assert_array_equal(fitted.transform(X), reference.transform(X))
    np.testing.assert_array_equal(fitted.gamma_star_, reference.gamma_star_)
    # and it differs from plain ComBat (something was protected)
    plain = harmonizer(**kwargs).fit(X)
    assert not np.allclose(fitted.transform(X), plain.transform(X))


@pytest.mark.parametrize("harmonizer", [ComBatHarmonizer, CovBatHarmonizer])
def test_survival_target_with_protect_target_none_is_plain_combat(harmonizer):
    X, y = survival_table()
    fitted = harmonizer(covariates=["age"], protect_target="none").fit(X, y)
    plain = harmonizer(covariates=["age"]).fit(X)
    assert fitted.target_term_ is None
    np.testing.assert_array_equal(fitted.transform(X), plain.transform(X))


@pytest.mark.parametrize("mode", ["linear", "smooth"])
def test_numeric_protection_of_a_censored_time_is_refused(mode):
    X, y = survival_table()
    with pytest.raises(ValueError, match="only the event indicator"):
        ComBatHarmonizer(covariates=["age"], protect_target=mode).fit(X, y)


def test_a_constant_event_indicator_is_refused_with_the_way_out():
    X, y = survival_table()
    y["event"] = True
    with pytest.raises(ValueError, match="every training row has an event"):
        ComBatHarmonizer(covariates=["age"]).fit(X, y)
    ComBatHarmonizer(covariates=["age"], protect_target="none").fit(X, y)


def test_a_structured_y_that_is_not_event_and_time_is_refused_by_its_fields():
    X, _ = survival_table()
    y = np.zeros(len(X), dtype=[("a", float), ("b", float)])
    with pytest.raises(ValueError, match=r"fields 'a' \(float64\), 'b'"):
        ComBatHarmonizer(covariates=["age"]).fit(X, y)


def test_the_time_or_event_as_covariate_or_feature_is_refused():
    X, y = survival_table()
    equal = "covariate equals the target"
    with pytest.raises(SubjectTableError, match=equal) as info:
        ComBatHarmonizer(covariates=["age", "days"]).fit(
            X.assign(days=y["time"] * 365.25), y)
    assert info.value.column == "days"
    with pytest.raises(SubjectTableError, match=equal):
        ComBatHarmonizer(covariates=["age", "dead"]).fit(
            X.assign(dead=np.where(y["event"], "yes", "no")), y)
    with pytest.raises(TargetProxyError, match="follow_up") as info:
        ComBatHarmonizer(covariates=["age"]).fit(X.assign(follow_up=y["time"]), y)
    found = find_target_proxies(X.assign(follow_up=2 * y["time"]), y)
    assert [(p.column, p.kind) for p in found] == [("follow_up", "unit")]
    assert found[0].detail.startswith("equals y['time'] up to a change of unit")


def test_radiomics_combat_cox_pipeline_cross_validates_like_by_hand():
    pytest.importorskip("sksurv")
    from sklearn.model_selection import cross_validate
    from sksurv.linear_model import CoxPHSurvivalAnalysis
    from sksurv.metrics import concordance_index_censored

    X, y = survival_table()
    cv = SiteStratifiedKFold(n_splits=3, site="site", stratify_y=True)
    pipe = Pipeline([
        ("combat", ComBatHarmonizer(covariates=["age"])),
        ("cox", CoxPHSurvivalAnalysis(alpha=0.1)),
    ])
    scores = cross_validate(pipe, X, y, cv=cv)["test_score"]
    by_hand = []
    for train, test in cv.split(X, y):
        combat = ComBatHarmonizer(covariates=["age"]).fit(X.iloc[train], y[train])
        cox = CoxPHSurvivalAnalysis(alpha=0.1).fit(
            combat.transform(X.iloc[train]), y[train])
        risk = cox.predict(combat.transform(X.iloc[test]))
        by_hand.append(concordance_index_censored(
            y["event"][test], y["time"][test], risk)[0])
    np.testing.assert_allclose(scores, by_hand, rtol=0, atol=1e-12)
    assert np.mean(scores) > 0.6  # the features carry the risk
    # every test fold holds each site's share of events (stratified on event)
    for _, test in cv.split(X, y):
        events = pd.crosstab(X["site"].iloc[test], y["event"][test])
        assert events.shape == (3, 2)
    per_fold = np.array([
        pd.Series(y["event"][test]).groupby(X["site"].iloc[test].to_numpy()).sum()
        for _, test in cv.split(X, y)
    ])
    assert (per_fold.max(axis=0) - per_fold.min(axis=0) <= 1).all()

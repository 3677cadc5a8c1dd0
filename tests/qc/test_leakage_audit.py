"""audit_leakage: one planted leak per kind is found and named; clean pipelines
report nothing (synthetic cohorts, and FCON1000 when ../shared is present)."""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from sklearn_medprep import ComBatHarmonizer, LeakageAudit, audit_leakage
from sklearn_medprep.datasets import make_multisite_features
from sklearn_medprep.exceptions import (
    SubjectOverlapWarning,
    SubjectTableError,
    TargetProxyError,
    TargetProxyWarning,
)
from sklearn_medprep.model_selection import SiteStratifiedKFold
from sklearn_medprep.qc._leakage_stats import (
    design_matrix,
    site_tests,
    wilks_left_tail,
)

COV = ["age", "sex"]


def _data(n=150, n_features=8, seed=0, **kwargs):
    df = make_multisite_features(n, n_features, n_sites=3, random_state=seed, **kwargs)
    return df.drop(columns="y"), df["y"]


def _recommended():
    return make_pipeline(
        ComBatHarmonizer(covariates=COV), StandardScaler(), LogisticRegression()
    )


def test_recommended_pipeline_reports_nothing():
    X, y = _data()
    audit = audit_leakage(_recommended(), X, y, covariates=COV)
    assert isinstance(audit, LeakageAudit)
    assert audit.findings == [] and audit.kinds == set()
    assert audit.n_splits == 5 and audit.metric == "balanced_accuracy"
    # the pipeline's score is sklearn's own cross-validated score on the same folds
    from sklearn.model_selection import cross_val_score

    cv = SiteStratifiedKFold(5, stratify_y=True, shuffle=True, random_state=0)
    expected = cross_val_score(
        _recommended(), X, y, cv=cv, scoring="balanced_accuracy"
    )
    np.testing.assert_allclose(audit.split_scores, expected)
    assert audit.scores["pipeline"] == pytest.approx(expected.mean())
    assert "Nothing found" in str(audit)
    assert "Nothing found" in audit._repr_html_()
    assert repr(audit).startswith("<LeakageAudit: 5 splits, 0 findings")


# --- (a) target proxies -----------------------------------------------------
def test_target_proxy_passed_through_is_named():
    X, _ = _data()
    y = X["age"]
    # the target in months, handed on by ComBat's pass-through (features=)
    X = X.drop(columns="age").assign(age_months=12 * y)
    feats = [c for c in X.columns if c.startswith("f")]
    pipe = make_pipeline(
        ComBatHarmonizer(features=feats, covariates=["sex"]),
        StandardScaler(),
        RidgeCV(),
    )
    audit = audit_leakage(pipe, X, y, covariates=["sex"])
    proxies = [f for f in audit.findings if f.kind == "target_proxy"]
    assert len(proxies) == 1
    assert proxies[0].evidence["column"] == "age_months"
    assert proxies[0].evidence["splits"] == [0, 1, 2, 3, 4]
    assert "'age_months'" in proxies[0].message
    assert "Drop it from X" in proxies[0].message
    # refused in fit (the library's steps refuse it) or found downstream: no
    # other finding follows from the missing scores
    assert audit.kinds == {"target_proxy"}
    # without the column, nothing reaches the model
    clean = audit_leakage(pipe, X.drop(columns="age_months"), y, covariates=["sex"])
    assert "target_proxy" not in clean.kinds


class _RefusesLeak(TransformerMixin, BaseEstimator):
    """Refuses the column 'leak' in fit, as the library's steps do."""

    def fit(self, X, y=None):
        if "leak" in X.columns:
            raise TargetProxyError("equals the target", column="leak")
        return self

    def transform(self, X):
        return X


def test_proxy_refused_in_fit_becomes_a_finding():
    X, y = _data()
    pipe = make_pipeline(
        _RefusesLeak(),
        make_column_transformer(("drop", ["site"]), remainder="passthrough"),
        LogisticRegression(),
    )
    audit = audit_leakage(pipe, X.assign(leak=y), y)
    (finding,) = [f for f in audit.findings if f.kind == "target_proxy"]
    assert finding.evidence["column"] == "leak"
    assert finding.evidence["refused_in_fit"] is True
    assert "'leak'" in finding.message
    assert np.isnan(audit.split_scores).all()
    assert "transductive" in audit.skipped


# --- (b) subject overlap ------------------------------------------------------
def _three_rois(n_subjects=20, seed=0):
    X, y = _data(n_subjects * 3 // 3, 4, seed)
    X = X.iloc[:n_subjects].reset_index(drop=True)
    y = y.iloc[:n_subjects].reset_index(drop=True)
    rows = X.loc[X.index.repeat(3)].reset_index(drop=True)
    rows["subject"] = np.repeat([f"sub-{i:02d}" for i in range(n_subjects)], 3)
    rows["roi"] = np.tile([1, 2, 3], n_subjects)
    feats = [c for c in rows.columns if c.startswith("f")]
    rng = np.random.default_rng(seed)
    rows[feats] += rng.normal(size=(len(rows), len(feats)))
    return rows, np.repeat(y.to_numpy(), 3)


def test_subject_rows_on_both_sides_of_a_split_are_counted():
    X, y = _three_rois()
    cv = SiteStratifiedKFold(5, shuffle=True, random_state=0)
    pipe = make_pipeline(
        make_column_transformer(
            ("drop", ["site", "subject", "sex"]), remainder="passthrough"
        ),
        LogisticRegression(),
    )
    audit = audit_leakage(pipe, X, y, cv=cv)
    (finding,) = [f for f in audit.findings if f.kind == "subject_overlap"]
    expected = {}
    with warnings.catch_warnings():  # a splitter may warn of it: counted here
        warnings.simplefilter("ignore", SubjectOverlapWarning)
        splits = list(cv.split(X))
    for k, (train, test) in enumerate(splits):
        both = set(X["subject"].iloc[train]) & set(X["subject"].iloc[test])
        if both:
            expected[k] = len(both)
    assert expected  # the planted leak is there
    assert finding.evidence["per_split"] == expected
    assert finding.evidence["source"] == "column 'subject'"
    assert finding.evidence["examples"][0] in set(X["subject"])
    # the same rows split by subject: no overlap
    from sklearn.model_selection import GroupKFold

    grouped = audit_leakage(pipe, X, y, cv=GroupKFold(5), groups=X["subject"])
    assert "subject_overlap" not in grouped.kinds


def test_repeating_index_is_taken_as_subjects():
    X, y = _data(90, 4)
    X2, y2 = pd.concat([X, X]), pd.concat([y, y])
    audit = audit_leakage(_recommended(), X2, y2.to_numpy(), covariates=COV)
    (finding,) = [f for f in audit.findings if f.kind == "subject_overlap"]
    assert finding.evidence["source"] == "the index (it repeats)"


# --- (c) transductive steps -------------------------------------------------
def _batch_centre(Z):
    return Z - Z.mean(axis=0)


def test_transductive_step_is_named():
    X, y = _data()
    pipe = make_pipeline(
        ComBatHarmonizer(covariates=COV),
        FunctionTransformer(_batch_centre, feature_names_out="one-to-one"),
        LogisticRegression(),
    )
    audit = audit_leakage(pipe, X, y, covariates=COV)
    assert audit.kinds == {"transductive"}
    (finding,) = audit.findings
    assert finding.evidence["step"] == "functiontransformer"
    assert finding.evidence["difference"] > 1e-3
    assert "'functiontransformer'" in finding.message


# --- (d) X prepared on the whole cohort -------------------------------------
def test_site_tests_match_scipy():
    X, y = _data(120, 3)
    values = X[["f000", "f001", "f002"]].to_numpy()
    F, p_mean, T, p_var, _ = site_tests(
        values, X["site"].to_numpy(), design_matrix(X, [])
    )
    for j in range(3):
        groups = [values[X["site"] == s, j] for s in sorted(X["site"].unique())]
        ref_f = stats.f_oneway(*groups)
        ref_b = stats.bartlett(*groups)
        assert F[j] == pytest.approx(ref_f.statistic, rel=1e-9)
        assert p_mean[j] == pytest.approx(1 - ref_f.pvalue, rel=1e-6)
        assert T[j] == pytest.approx(ref_b.statistic, rel=1e-9)
        assert p_var[j] == pytest.approx(1 - ref_b.pvalue, rel=1e-6)


def test_wilks_statistic_matches_statsmodels_manova():
    manova = pytest.importorskip("statsmodels.multivariate.manova")
    X, _ = _data(120, 3)
    values = X[["f000", "f001", "f002"]].to_numpy()
    design = design_matrix(X, ["age"])
    stat, df, p = wilks_left_tail(values, X["site"].to_numpy(), design)
    fit = manova.MANOVA.from_formula("f000 + f001 + f002 ~ age + C(site)", data=X)
    wilks = fit.mv_test().results["C(site)"]["stat"].loc["Wilks' lambda", "Value"]
    n, k, d = 120, 3, 3
    nu = n - (2 + k - 1)  # intercept, age, k - 1 site indicators
    assert stat == pytest.approx(-(nu - (d - k + 2) / 2) * np.log(wilks), rel=1e-9)
    assert df == d * (k - 1)
    assert p == pytest.approx(stats.chi2.cdf(stat, df))


def test_whole_cohort_combat_before_cv_is_flagged():
    X, y = _data()
    harmonized = ComBatHarmonizer(covariates=COV).fit(X, y).transform(X)
    leaky_X = harmonized.assign(site=X["site"], age=X["age"], sex=X["sex"])
    model = make_pipeline(
        make_column_transformer(("drop", ["site", *COV]), remainder="passthrough"),
        StandardScaler(),
        LogisticRegression(),
    )
    audit = audit_leakage(model, leaky_X, y, covariates=COV)
    findings = [f for f in audit.findings if f.kind == "whole_cohort_preparation"]
    assert findings and findings[0].evidence["check"] == "equal site means"
    assert findings[0].evidence["p_value"] < 1e-6
    assert set(findings[0].evidence["columns"]) <= {f"f00{i}" for i in range(8)}
    # the same model on the raw table: the site means differ as sampled
    raw = audit_leakage(model, X, y, covariates=COV)
    assert "whole_cohort_preparation" not in raw.kinds


def test_standardized_on_all_rows_is_flagged():
    X, y = _data()
    feats = [c for c in X.columns if c.startswith("f")]
    Xs = X.copy()
    Xs[feats] = StandardScaler().fit_transform(X[feats])
    audit = audit_leakage(_recommended(), Xs, y, covariates=COV)
    (finding,) = [f for f in audit.findings if f.kind == "whole_cohort_preparation"]
    assert finding.evidence == {"check": "standardized", "columns": feats}


# --- (e) the site shortcut ----------------------------------------------------
def test_site_shortcut_is_flagged():
    X, _ = _data(label_effect=0.0)  # the features carry the site, not the label
    rng = np.random.default_rng(0)
    flip = rng.uniform(size=len(X)) < 0.85
    y = np.where(flip, X["site"] != "site_0", X["site"] == "site_0").astype(int)
    pipe = make_pipeline(
        make_column_transformer(("drop", ["site", *COV]), remainder="passthrough"),
        StandardScaler(),
        LogisticRegression(),
    )
    audit = audit_leakage(pipe, X, y)
    assert audit.kinds == {"site_shortcut"}
    ev = audit.findings[0].evidence
    assert ev["score"] >= ev["chance"] + 0.1
    assert ev["pipeline"] <= ev["score"] + 0.05
    assert ev["pipeline_within_sites"] < 0.6
    assert ev["within_sites_measure"] == "ROC AUC"
    assert audit.scores["site"] == ev["score"]


# --- bad input ----------------------------------------------------------------
def test_bad_input_names_the_column():
    X, y = _data(60, 3)
    with pytest.raises(SubjectTableError, match="'scanner'"):
        audit_leakage(_recommended(), X, y, covariates=["scanner"])
    with pytest.raises(ValueError, match="unknown thresholds"):
        audit_leakage(_recommended(), X, y, thresholds={"nope": 1})
    holes = X.assign(age=X["age"].where(X.index != X.index[7]))
    with pytest.raises(SubjectTableError, match=r"row 7, column 'age'"):
        audit_leakage(_recommended(), holes, y, covariates=COV)
    with pytest.raises(SubjectTableError, match="'visit'"):
        audit_leakage(_recommended(), X, y, subject="visit")


# --- FCON1000 (real data) -----------------------------------------------------
def _fcon1000(shared_data):
    table = pd.read_csv(shared_data / "multisite" / "pcn_fcon1000.csv")
    table = table[table["site"].map(table["site"].value_counts()) >= 5]
    table = table.reset_index(drop=True)
    feats = [c for c in table.columns if c.endswith("_thickness")][::6]
    return table[[*feats, "site", "sex"]], table["age"], feats


def test_fcon1000_recommended_clean_and_whole_cohort_combat_flagged(shared_data):
    X, y, feats = _fcon1000(shared_data)
    cv = SiteStratifiedKFold(5, shuffle=True, random_state=0)
    ridge = RidgeCV(np.logspace(-2, 4, 13))
    pipe = make_pipeline(ComBatHarmonizer(covariates=["sex"]), StandardScaler(), ridge)
    audit = audit_leakage(pipe, X, y, cv=cv, covariates=["sex"])
    assert audit.findings == [], str(audit)
    assert audit.scores["pipeline within sites"] > 0.3
    leaky = ComBatHarmonizer(covariates=["sex"]).fit(X, y).transform(X)
    leaky = leaky.assign(site=X["site"], sex=X["sex"])
    model = make_pipeline(
        make_column_transformer(("drop", ["site", "sex"]), remainder="passthrough"),
        StandardScaler(),
        ridge,
    )
    flagged = audit_leakage(model, leaky, y, cv=cv, covariates=["sex"])
    assert flagged.kinds == {"whole_cohort_preparation"}
    assert flagged.findings[0].evidence["p_value"] < 1e-6


def test_groups_are_subjects_for_the_default_site_splitter():
    X, y = _three_rois()
    patients = X.pop("subject")
    pipe = make_pipeline(
        make_column_transformer(("drop", ["site", "sex"]), remainder="passthrough"),
        LogisticRegression(),
    )
    audit = audit_leakage(pipe, X, y, groups=patients, cv=None)
    (finding,) = [f for f in audit.findings if f.kind == "subject_overlap"]
    assert finding.evidence["source"] == "groups"
    # a site splitter given by the user reads its groups as sites: no subjects
    sites = audit_leakage(
        pipe, X, y, groups=X["site"], cv=SiteStratifiedKFold(5)
    )
    assert "subject_overlap" not in sites.kinds


def test_array_input_without_sites_skips_the_site_checks():
    X, y = _data(90, 4)
    values = X[["f000", "f001", "f002", "f003"]].to_numpy()
    leak = np.column_stack([values, 2.54 * y.to_numpy() + 1.0])  # y, another unit
    audit = audit_leakage(LogisticRegression(), leak, y, cv=3)
    (finding,) = audit.findings
    assert finding.kind == "target_proxy" and finding.evidence["column"] == "x4"
    assert set(audit.skipped) == {"site"}
    assert "not checked: site" in str(audit)
    assert list(audit.scores.index) == ["pipeline"]
    assert "<b>target_proxy</b>" in audit._repr_html_()
    clean = audit_leakage(LogisticRegression(), values, y, cv=3)
    assert clean.findings == []


def test_fit_params_reach_the_steps_on_the_training_rows():
    X, y = _data(90, 4)
    weight = np.where(X["site"] == "site_0", 3.0, 1.0)
    params = {"logisticregression__sample_weight": weight}
    audit = audit_leakage(_recommended(), X, y, covariates=COV, params=params)
    from sklearn.model_selection import cross_val_score

    cv = SiteStratifiedKFold(5, stratify_y=True, shuffle=True, random_state=0)
    expected = cross_val_score(
        _recommended(),
        X,
        y,
        cv=cv,
        scoring="balanced_accuracy",
        params=params,
    )
    np.testing.assert_allclose(audit.split_scores, expected)
    unweighted = audit_leakage(_recommended(), X, y, covariates=COV)
    assert not np.allclose(unweighted.split_scores, expected)  # the weights count


def test_openneuro_age_passed_through_by_combat_is_named(shared_data):
    # issue 20's case: the table still holds age while y is age; ComBat with
    # features= hands it on (or, where it refuses it in fit, the audit says so)
    table = pd.read_csv(shared_data / "multisite" / "pcn_OpenNeuroTransfer_ct_tr.csv")
    table = table[table["site"].map(table["site"].value_counts()) >= 6]
    feats = [c for c in table.columns if c.endswith("_thickness")][:30]
    X, y = table[[*feats, "site", "sex", "age"]], table["age"]
    pipe = make_pipeline(
        ComBatHarmonizer(features=feats, covariates=["sex"]),
        StandardScaler(),
        RidgeCV(np.logspace(-2, 4, 13)),
    )
    cv = SiteStratifiedKFold(3, shuffle=True, random_state=0)
    audit = audit_leakage(pipe, X, y, cv=cv, covariates=["sex"])
    (finding,) = [f for f in audit.findings if f.kind == "target_proxy"]
    assert finding.evidence["column"] == "age"
    assert "'age'" in finding.message
    clean = audit_leakage(pipe, X.drop(columns="age"), y, cv=cv, covariates=["sex"])
    assert "target_proxy" not in clean.kinds


def test_near_proxy_is_reported_not_warned():
    X, _ = _data()
    y = X["age"]
    noise = np.random.default_rng(0).normal(0.0, 0.3, len(y))
    X = X.drop(columns="age").assign(age_scan=y + noise)  # r > 0.99, not equal
    feats = [c for c in X.columns if c.startswith("f")]
    combat = ComBatHarmonizer(features=feats, covariates=["sex"])
    pipe = make_pipeline(combat, StandardScaler(), RidgeCV())
    with pytest.warns(TargetProxyWarning, match="age_scan"):  # ComBat warns alone
        ComBatHarmonizer(features=feats, covariates=["sex"]).fit(X, y)
    audit = audit_leakage(pipe, X, y, covariates=["sex"])  # no warning escapes
    (finding,) = [f for f in audit.findings if f.kind == "target_proxy"]
    assert finding.evidence["column"] == "age_scan"
    assert finding.evidence["kinds"] == ["near"]
    r = np.corrcoef(X["age_scan"], y)[0, 1]
    assert r > 0.99 and min(finding.evidence["statistic"]) > 0.99

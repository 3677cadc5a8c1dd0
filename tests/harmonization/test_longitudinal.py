"""Longitudinal ComBat: against a direct mixed-model computation, and on a cohort."""

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from sklearn.linear_model import Ridge
from sklearn.model_selection import cross_validate
from sklearn.pipeline import make_pipeline

from sklearn_medprep import ComBatHarmonizer, LongitudinalComBatHarmonizer
from sklearn_medprep.exceptions import SubjectTableError
from sklearn_medprep.model_selection import SiteStratifiedGroupKFold

FEATURES = ["f0", "f1", "f2", "f3", "f4"]
SITE_SHIFT = np.array([[0.0, 0.5, -0.3, 1.0, 0.2],
                       [1.5, -1.0, 0.8, 0.0, -0.6],
                       [-0.8, 0.7, 0.0, -1.2, 1.1]])
SITE_SCALE = np.array([[1.0, 1.3, 0.8, 1.0, 1.2],
                       [1.6, 0.7, 1.2, 1.4, 0.9],
                       [0.7, 1.1, 1.5, 0.8, 1.0]])
SLOPE = np.array([0.5, -0.3, 0.4, 0.2, -0.6])  # change per visit (to keep)


def _cohort(n_subjects=18, n_visits=3, seed=0):
    """Visits of subjects at 3 sites: subject level + slope * time + site effect."""
    rng = np.random.default_rng(seed)
    subj = np.repeat(np.arange(n_subjects), n_visits)
    site_of = rng.permutation(np.arange(n_subjects) % 3)
    site = site_of[subj]
    time = np.tile(np.arange(n_visits, dtype=float), n_subjects)
    age = rng.uniform(40, 80, n_subjects)[subj] + time
    sex = np.where(rng.random(n_subjects) < 0.5, "F", "M")[subj]
    level = rng.normal(0, 1.0, (n_subjects, len(FEATURES)))[subj]
    noise = rng.normal(0, 0.5, (len(subj), len(FEATURES)))
    truth = level + SLOPE * time[:, None] + 0.02 * (age[:, None] - 60)
    values = truth + SITE_SHIFT[site] + SITE_SCALE[site] * noise
    table = pd.DataFrame(values, columns=FEATURES)
    table.insert(0, "subject", [f"s{i:02d}" for i in subj])
    table.insert(1, "site", np.array(["A", "B", "C"])[site])
    table.insert(2, "time", time)
    table.insert(3, "age", age)
    table.insert(4, "sex", sex)
    table.index = [f"v{i:03d}" for i in range(len(table))]
    return table, pd.DataFrame(truth, index=table.index, columns=FEATURES)


def _it_sol(s_site, g_hat, d_hat, g_bar, t2, a, b, conv=1e-4):
    """neuroCombat's it_sol, written out on the rows of one site."""
    n = s_site.shape[0]
    g_old, d_old = g_hat.copy(), d_hat.copy()
    while True:
        g_new = (t2 * n * g_hat + d_old * g_bar) / (t2 * n + d_old)
        sum2 = ((s_site - g_new) ** 2).sum(axis=0)
        d_new = (0.5 * sum2 + b) / (n / 2.0 + a - 1.0)
        change = max((np.abs(g_new - g_old) / g_old).max(),
                     (np.abs(d_new - d_old) / d_old).max())
        g_old, d_old = g_new, d_new
        if not change > conv:
            return g_new, d_new


def _reference(table, covariates="time + age + C(sex)"):
    """longCombat's steps, with statsmodels MixedLM fitted here per feature."""
    sites = sorted(table["site"].unique())
    n_i = table["site"].value_counts().reindex(sites).to_numpy()
    L = len(table)
    data_std = np.empty((L, len(FEATURES)))
    mean_u = np.empty_like(data_std)
    sigmas = np.empty(len(FEATURES))
    for v, f in enumerate(FEATURES):
        fit = smf.mixedlm(f"{f} ~ {covariates} + C(site)", table,
                          groups=table["subject"]).fit(reml=True)
        batch = np.array([0.0] + [fit.fe_params[f"C(site)[T.{s}]"]
                                  for s in sites[1:]])
        gamma1 = -(n_i[1:] @ batch[1:]) / L
        batch_adj = batch + gamma1
        sigma = np.sqrt(fit.scale)
        predicted = np.asarray(fit.fittedvalues)  # fixed + random intercept
        expanded = batch_adj[pd.Index(sites).get_indexer(table["site"])]
        data_std[:, v] = (table[f].to_numpy() - predicted + expanded) / sigma
        mean_u[:, v] = predicted - expanded
        sigmas[v] = sigma
    codes = pd.Index(sites).get_indexer(table["site"])
    out = np.empty_like(data_std)
    for i in range(len(sites)):
        s_i = data_std[codes == i]
        g_hat, d_hat = s_i.mean(axis=0), s_i.var(axis=0, ddof=1)
        g_bar, t2 = g_hat.mean(), g_hat.var(ddof=1)
        m, s2 = d_hat.mean(), d_hat.var(ddof=1)
        a, b = (2 * s2 + m**2) / s2, (m * s2 + m**3) / s2
        g_star, d_star = _it_sol(s_i, g_hat, d_hat, g_bar, t2, a, b)
        out[codes == i] = (sigmas * (s_i - g_star) / np.sqrt(d_star)
                           + mean_u[codes == i])
    return out


def test_matches_mixedlm_and_combat_steps_written_out():
    table, _ = _cohort()
    lc = LongitudinalComBatHarmonizer(covariates=["time", "age", "sex"])
    out = lc.fit_transform(table)
    assert list(out.columns) == FEATURES
    pd.testing.assert_index_equal(out.index, table.index)
    np.testing.assert_allclose(out.to_numpy(), _reference(table), atol=1e-6)
    assert (lc.mixed_.tau2 > 0).all()  # the random intercept is estimated


def test_removes_site_effects_and_keeps_within_subject_change():
    table, truth = _cohort(n_subjects=36, seed=1)
    lc = LongitudinalComBatHarmonizer(covariates=["time"], features=FEATURES)
    out = lc.fit_transform(table)

    def site_spread(frame):  # spread of the site means, per feature
        return frame.groupby(table["site"])[FEATURES].mean().std().to_numpy()

    before, after = site_spread(table), site_spread(out)
    assert (after < 0.5 * before).all(), (before, after)
    # within-subject change (last visit - first visit): its mean is 2 * SLOPE
    # before and after (site effects cancel within a subject at one site)
    first, last = table["time"] == 0, table["time"] == 2
    change = out[last].to_numpy() - out[first].to_numpy()
    change_in = table.loc[last, FEATURES].to_numpy() - table.loc[
        first, FEATURES].to_numpy()
    np.testing.assert_allclose(change.mean(axis=0), change_in.mean(axis=0),
                               atol=0.15)
    np.testing.assert_allclose(change.mean(axis=0), 2 * SLOPE, atol=0.3)
    # the subject levels are kept (random intercept not removed), freed of
    # the site shifts: closer to the true levels than before
    by = table["subject"]
    lvl_true = truth.groupby(by).mean()
    lvl_in, lvl_out = table.groupby(by)[FEATURES].mean(), out.groupby(by).mean()
    for f in FEATURES:
        r_in = np.corrcoef(lvl_true[f], lvl_in[f])[0, 1]
        r_out = np.corrcoef(lvl_true[f], lvl_out[f])[0, 1]
        assert r_out > max(r_in, 0.9), (f, r_in, r_out)


def _within_ratio(frame, table):
    """sd of the within-subject deviations per site: max / min, per feature."""
    dev = frame[FEATURES] - frame[FEATURES].groupby(table["subject"]).transform("mean")
    sd = dev.groupby(table["site"]).std()
    return (sd.max() / sd.min()).to_numpy()


def test_within_subject_scale_equalized_unlike_combat():
    table, _ = _cohort(n_subjects=36, seed=1)
    out = LongitudinalComBatHarmonizer(
        covariates=["time"], features=FEATURES
    ).fit_transform(table)
    combat = ComBatHarmonizer(covariates=["time"], features=FEATURES).fit_transform(
        table
    )
    raw, comb, lon = (_within_ratio(f, table) for f in (table, combat, out))
    # ComBat's scale comes from a spread dominated by the subject levels
    assert lon.mean() < 0.85 * min(raw.mean(), comb.mean()), (raw, comb, lon)


def test_new_visits_known_and_unknown_subjects():
    table, _ = _cohort()
    train = table[table["time"] < 2]
    new = table[table["time"] == 2]
    lc = LongitudinalComBatHarmonizer(covariates=["time"], features=FEATURES).fit(train)
    # training rows: transform equals fit_transform, row by row
    pd.testing.assert_frame_equal(lc.transform(train), lc.fit_transform(train))
    pd.testing.assert_frame_equal(lc.transform(train.iloc[[3]]),
                                  lc.transform(train).iloc[[3]])
    # the formula with the subject's fitted random intercept (known subject)
    m = lc.mixed_
    site = lc.sites_.searchsorted(new["site"])
    subj = lc.subjects_.searchsorted(new["subject"])
    mean = lc.grand_mean_ + new[["time"]].to_numpy() @ m.coef_cov
    sd = np.sqrt(m.sigma2)

    def formula(u):
        s = (new[FEATURES].to_numpy() - mean - u) / sd
        return sd * (s - lc.gamma_star_[site]) / np.sqrt(lc.delta_star_[site]) + (
            mean + u)

    np.testing.assert_allclose(lc.transform(new), formula(m.subject_effect[subj]),
                               rtol=1e-12)
    # unknown subjects: population (u = 0) or predicted from their rows
    unknown = new.assign(subject=new["subject"] + "-new")
    np.testing.assert_allclose(lc.transform(unknown), formula(0.0), rtol=1e-12)
    pred = lc.set_params(unknown_subject="predict").transform(unknown)
    fixed = m.intercept + new[["time"]].to_numpy() @ m.coef_cov + m.site_effect[site]
    shrink = m.tau2 / (m.tau2 + m.sigma2)  # one row per unknown subject
    np.testing.assert_allclose(
        pred, formula(shrink * (new[FEATURES].to_numpy() - fixed)), rtol=1e-10
    )
    # two visits of one unknown subject: its intercept from both, shrunk as n=2
    pair = table[table["subject"] == "s03"].iloc[:2].assign(subject="newcomer")
    got = lc.transform(pair).to_numpy()
    p_site = lc.sites_.searchsorted(pair["site"])
    p_mean = lc.grand_mean_ + pair[["time"]].to_numpy() @ m.coef_cov
    p_fixed = m.intercept + pair[["time"]].to_numpy() @ m.coef_cov + m.site_effect[
        p_site]
    u = m.tau2 / (m.tau2 + m.sigma2 / 2) * (pair[FEATURES].to_numpy() - p_fixed).mean(
        axis=0)
    s_pair = (pair[FEATURES].to_numpy() - p_mean - u) / sd
    want = sd * (s_pair - lc.gamma_star_[p_site]) / np.sqrt(
        lc.delta_star_[p_site]) + p_mean + u
    np.testing.assert_allclose(got, want, rtol=1e-10)
    assert not np.allclose(got[0], lc.transform(pair.iloc[[0]]).to_numpy()[0])


def test_in_a_pipeline_with_subject_group_folds():
    table, _ = _cohort(n_subjects=24, seed=2)
    y = table["f0"] + table["time"]
    X = table.drop(columns="f0")
    pipe = make_pipeline(
        LongitudinalComBatHarmonizer(covariates=["time"], features=FEATURES[1:]),
        Ridge(),
    )
    cv = SiteStratifiedGroupKFold(n_splits=3)
    folds = list(cv.split(X, groups=X["subject"]))
    res = cross_validate(pipe, X, y, cv=folds, return_estimator=True)
    assert np.isfinite(res["test_score"]).all()
    for est, (train, test) in zip(res["estimator"], folds):
        fitted = est[0].subjects_
        assert set(fitted) == set(X["subject"].iloc[train])
        assert not set(fitted) & set(X["subject"].iloc[test])


def test_clear_errors():
    table, _ = _cohort()
    lc = LongitudinalComBatHarmonizer(covariates=["time"], features=FEATURES)
    bad = table.copy()
    bad.loc["v004", "f2"] = np.nan
    with pytest.raises(SubjectTableError, match=r"v004.*f2"):
        lc.fit(bad)
    with pytest.raises(SubjectTableError, match="DataFrame"):
        lc.fit(table[FEATURES].to_numpy())
    lc.fit(table)
    other = table.iloc[:3].assign(site="Z")
    with pytest.raises(SubjectTableError, match=r"'Z'.*v000"):
        lc.transform(other)
    passed = lc.set_params(unseen_site="passthrough").transform(other)
    np.testing.assert_array_equal(passed.to_numpy(), other[FEATURES].to_numpy())
    with pytest.raises(SubjectTableError, match="2 rows per site"):
        LongitudinalComBatHarmonizer(features=FEATURES).fit(table.iloc[:7].assign(
            site=["A"] * 6 + ["B"]))

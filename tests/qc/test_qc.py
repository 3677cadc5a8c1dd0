import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from scipy import stats

from sklearn_medprep import (
    ComBatHarmonizer,
    plot_harmonization,
    plot_pca_by_site,
    plot_site_effects,
    plot_site_features,
    site_effect_report,
    site_predictability,
)
from sklearn_medprep.datasets import make_multisite_features
from sklearn_medprep.exceptions import MedprepWarning, SubjectTableError
from sklearn_medprep.qc._plot import natural_order


@pytest.fixture(scope="module")
def tables():
    df = make_multisite_features(
        n_subjects=120, n_features=6, site_effect=1.5, random_state=0
    )
    X = df.drop(columns="y")
    after = ComBatHarmonizer(covariates=["age", "sex"]).fit_transform(X)
    return df, after


def test_report_matches_scipy_anova(tables):
    df, after = tables
    report = site_effect_report(df, after, "site")
    assert list(report.index) == list(after.columns)
    groups = [g["f002"].to_numpy() for _, g in df.groupby("site")]
    f, p = stats.f_oneway(*groups)
    assert report.loc["f002", "F_before"] == pytest.approx(f, rel=1e-10)
    assert report.loc["f002", "p_before"] == pytest.approx(p, rel=1e-8)
    groups = [g.to_numpy() for _, g in after["f002"].groupby(df["site"])]
    assert report.loc["f002", "F_after"] == pytest.approx(stats.f_oneway(*groups)[0])
    assert (report["F_after"] < report["F_before"]).all()
    assert report["between_var_ratio"].median() < 0.1


def test_report_ignores_nan_cells(tables):
    df, after = tables
    with_nan = after.copy()
    with_nan.iloc[0, 0] = np.nan
    report = site_effect_report(df, with_nan, df["site"].to_numpy())
    keep = with_nan["f000"].notna()
    groups = [g.to_numpy() for _, g in with_nan.loc[keep, "f000"].groupby(df["site"])]
    assert report.loc["f000", "F_after"] == pytest.approx(stats.f_oneway(*groups)[0])


def test_site_predictability_drops_after_harmonization(tables):
    df, after = tables
    before = site_predictability(df[after.columns.tolist() + ["site"]], "site")
    harmonized = site_predictability(after, df["site"].to_numpy())
    assert before > 0.8
    assert harmonized < before - 0.3


def test_plot(tables):
    df, after = tables
    fig = plot_harmonization(df, after, "site", n_features=2)
    # 2 x 2 box plots, PCA before/after, per-feature site effect, legend
    assert len(fig.axes) == 8
    matplotlib.pyplot.close(fig)


# --- figures people can read ----------------------------------------------


def _visible_axes(fig):
    return [ax for ax in fig.axes if ax.axison]


def _harmonized(n_sites, n_subjects, seed=0):
    df = make_multisite_features(
        n_subjects=n_subjects, n_features=8, n_sites=n_sites, random_state=seed
    )
    after = ComBatHarmonizer(covariates=["age", "sex"]).fit_transform(
        df.drop(columns="y")
    )
    return df.drop(columns="y"), after


def test_natural_site_order():
    assert natural_order(["site_10", "site_2", "site_1", "b", "a"]) == [
        "a",
        "b",
        "site_1",
        "site_2",
        "site_10",
    ]
    assert natural_order([3, 10, 2]) == [2, 3, 10]


@pytest.mark.parametrize("n_sites", [2, 12, 32])
def test_harmonization_figure_structure(n_sites):
    before, after = _harmonized(n_sites, 12 * n_sites)
    covs = ["age", "sex"]
    fig = plot_harmonization(before, after, "site", n_features=3, covariates=covs)
    sites = [f"site_{k}" for k in range(n_sites)]  # natural order
    axes = _visible_axes(fig)
    assert len(axes) == 3 * 2 + 3
    for ax in axes:
        assert ax.get_title(), ax
        assert ax.get_xlabel(), ax.get_title()
        assert ax.get_ylabel(), ax.get_title()
        for text in [ax.title, ax.xaxis.label, ax.yaxis.label]:
            assert text.get_fontsize() >= 9
    # one legend, naming every site once, in natural order
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    site_legends = [lg for lg in legends if lg.get_title().get_text() == "site"]
    assert len(site_legends) == 1
    entries = [t.get_text().split(" (n=")[0] for t in site_legends[0].get_texts()]
    assert entries == sites
    # the box plots show the most site-affected features, ranked as the report
    report = site_effect_report(before, after, "site", covariates=covs)
    top = list(report["F_before"].sort_values(ascending=False).index[:3])
    boxes = {}
    for ax in axes[:6]:
        name, when = ax.get_title().rsplit("\n", 1)
        boxes[f"{name.replace(chr(10), '')}, {when.split(' (F')[0]}"] = ax
    expected = [f"{f}, {w}" for f in top for w in ("before", "after")]
    assert sorted(boxes) == sorted(expected)
    assert axes[0].get_title().startswith(f"{top[0]}\nbefore")
    for feat in top:  # before and after on one y scale
        b, a = boxes[f"{feat}, before"], boxes[f"{feat}, after"]
        assert b.get_ylim() == a.get_ylim()
        assert [t.get_text() for t in a.get_xticklabels()] == sites
    width, height = fig.get_size_inches()
    assert width <= 17 and height <= 16
    # PCA: explained variance on the axes, as sklearn's PCA computes it
    from sklearn.decomposition import PCA

    features = list(after.columns)
    values = before[features].to_numpy()
    values = (values - values.mean(axis=0)) / values.std(axis=0)
    ratio = PCA(2).fit(values).explained_variance_ratio_
    pca_before = axes[6]
    assert pca_before.get_title() == "PCA by site, before (not adjusted)"
    assert pca_before.get_xlabel() == f"PC1 ({100 * ratio[0]:.1f}% of variance)"
    assert pca_before.get_ylabel() == f"PC2 ({100 * ratio[1]:.1f}% of variance)"
    # a distinct (colour, marker) per site
    styles = {
        (tuple(c.get_facecolor()[0]), c.get_paths()[0].vertices.tobytes())
        for c in pca_before.collections
    }
    assert len(styles) == n_sites
    # the per-feature panel: one point per feature
    effect_ax = axes[8]
    assert "ANOVA F" in effect_ax.get_xlabel()
    assert effect_ax.collections[0].get_offsets().shape == (len(features), 2)
    matplotlib.pyplot.close(fig)


def test_single_panels_draw_on_given_axes(tables):
    df, after = tables
    fig, axes = matplotlib.pyplot.subplots(1, 2)
    out = plot_pca_by_site(after.assign(site=df["site"]), "site", ax=axes[0])
    assert out is fig
    labels = [t.get_text() for t in axes[0].get_legend().get_texts()]
    counts = df["site"].value_counts()
    assert labels == [f"{s} (n={counts[s]})" for s in sorted(counts.index)]
    assert plot_site_effects(df, after, "site", ax=axes[1]) is fig
    assert axes[1].get_xscale() == "log"
    report = site_effect_report(df, after, "site")
    n_after = int((report["p_after"] < 0.05).sum())
    assert f"{n_after} after, of {len(report)}" in axes[1].get_title()
    matplotlib.pyplot.close(fig)
    fig = plot_site_features(df, after, "site", n_features=2)
    assert len(fig.axes) == 4
    matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="at least 2 feature"):
        plot_pca_by_site(df[["f000", "site"]], "site")


# --- covariate adjustment -------------------------------------------------


@pytest.fixture(scope="module")
def confounded():
    # The sites differ in mean age (about 64, 61 and 42 years): ComBat keeps the
    # age effect, so the site means of the harmonized features still differ.
    df = make_multisite_features(60, 5, random_state=0)
    assert stats.f_oneway(*[g["age"] for _, g in df.groupby("site")]).pvalue < 1e-6
    after = ComBatHarmonizer(covariates=["age", "sex"]).fit_transform(
        df.drop(columns="y")
    )
    return df, after


def test_covariate_adjusted_report_on_confounded_sites(confounded):
    df, after = confounded
    raw = site_effect_report(df, after, "site")
    adjusted = site_effect_report(df, after, "site", covariates=["age", "sex"])
    # The unadjusted report blames ComBat for the age effect it protects.
    assert raw.loc["f002", "F_after"] > 3 * raw.loc["f002", "F_before"]
    assert list(adjusted.index) == list(after.columns)
    assert adjusted["F_after"].median() < 0.2 * adjusted["F_before"].median()
    assert adjusted["F_after"].median() < 0.2 * raw["F_after"].median()
    assert (adjusted["F_after"] < adjusted["F_before"]).all()
    assert (adjusted["p_after"] > 0.5).all()
    # Covariate columns present in `after` are not reported as features.
    kept = after.join(df[["age", "sex"]])
    with_cov = site_effect_report(df, kept, "site", covariates=["age", "sex"])
    assert list(with_cov.index) == list(after.columns)
    np.testing.assert_allclose(with_cov.to_numpy(), adjusted.to_numpy())


def test_covariate_residuals_match_statsmodels_ols(confounded):
    smf = pytest.importorskip("statsmodels.formula.api")
    df, after = confounded
    report = site_effect_report(df, after, "site", covariates=["age", "sex"])
    data = df.assign(after_f002=after["f002"])
    for column, stat in [("f002", "F_before"), ("after_f002", "F_after")]:
        resid = smf.ols(f"{column} ~ age + C(sex)", data=data).fit().resid
        groups = [g.to_numpy() for _, g in resid.groupby(df["site"])]
        assert report.loc["f002", stat] == pytest.approx(
            stats.f_oneway(*groups)[0], rel=1e-8
        )
    # Same with a numpy least-squares reference on a 3-level string covariate.
    scanner = np.array(["A", "B", "C"])[np.arange(len(df)) % 3]
    table = df.assign(scanner=scanner)
    design = np.column_stack(
        [np.ones(len(df)), df["age"], scanner == "B", scanner == "C"]
    ).astype(float)
    y = df["f001"].to_numpy()
    resid = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    groups = [resid[df["site"].to_numpy() == s] for s in np.unique(df["site"])]
    report = site_effect_report(
        table, after, "site", features=["f001"], covariates=["age", "scanner"]
    )
    assert report.loc["f001", "F_before"] == pytest.approx(
        stats.f_oneway(*groups)[0], rel=1e-8
    )


def test_covariate_adjustment_leaves_nan_cells_out(confounded):
    df, after = confounded
    before = df.copy()
    before.loc[3, "f000"] = np.nan
    before.loc[7, "age"] = np.nan
    with_nan = after.copy()
    with_nan.loc[5, "f001"] = np.nan
    report = site_effect_report(before, with_nan, "site", covariates=["age", "sex"])
    assert np.isfinite(report.to_numpy()).all()
    # f000 before: fitted on the rows with both the feature and the covariates.
    rows = before["f000"].notna() & before["age"].notna()
    design = np.column_stack(
        [np.ones(rows.sum()), before.loc[rows, "age"], before.loc[rows, "sex"] == "M"]
    ).astype(float)
    y = before.loc[rows, "f000"].to_numpy()
    resid = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    sites = before.loc[rows, "site"].to_numpy()
    groups = [resid[sites == s] for s in np.unique(sites)]
    assert report.loc["f000", "F_before"] == pytest.approx(
        stats.f_oneway(*groups)[0], rel=1e-8
    )
    score = site_predictability(
        before.drop(columns="y"), "site", covariates=["age", "sex"]
    )
    assert 0 <= score <= 1


def test_covariate_adjustment_aligns_rows_by_label(confounded):
    df, after = confounded
    expected = site_effect_report(df, after, "site", covariates=["age", "sex"])
    shuffled = after.sample(frac=1, random_state=0)
    assert not shuffled.index.equals(after.index)
    report = site_effect_report(df, shuffled, "site", covariates=["age", "sex"])
    np.testing.assert_allclose(report.to_numpy(), expected.to_numpy())


def test_site_predictability_with_covariates(confounded):
    df, after = confounded
    sites = df["site"].to_numpy()
    covs = ["age", "sex"]
    X = df.drop(columns="y")
    combat = ComBatHarmonizer(covariates=covs)
    # scored within held-out rows, ComBat fitted on the other rows
    raw_after = site_predictability(X, "site", harmonizer=combat)
    adj_after = site_predictability(X, "site", harmonizer=combat, covariates=covs)
    adj_before = site_predictability(X, "site", covariates=covs)
    # Chance is 1/3: age predicts the site unless it is adjusted for.
    assert raw_after.verdict == "site signal remains"
    assert adj_after < raw_after
    assert adj_after.verdict == "at chance"
    assert adj_before.verdict == "site signal remains"
    assert adj_before > adj_after + 0.1
    # Default behaviour (no covariates) is unchanged by passing None.
    assert site_predictability(after, sites, covariates=None) == (
        site_predictability(after, sites)
    )
    # the rows ComBat was fitted on, adjusted: below chance, flagged
    with pytest.warns(MedprepWarning, match="over-correction"):
        fitted_rows = site_predictability(after.join(df[covs]), sites, covariates=covs)
    assert fitted_rows.verdict == "below chance: over-correction"


def test_covariates_must_be_columns(confounded):
    from sklearn_medprep.exceptions import SubjectTableError

    df, after = confounded
    with pytest.raises(SubjectTableError, match="scanner"):
        site_effect_report(df, after, "site", covariates=["age", "scanner"])
    with pytest.raises(SubjectTableError, match="scanner"):
        site_predictability(df, "site", covariates=["scanner"])
    with pytest.raises(TypeError, match="DataFrame"):
        site_predictability(
            df[["f000", "f001"]].to_numpy(), df["site"].to_numpy(), covariates=[0]
        )


def test_before_and_after_with_different_rows_is_an_error():
    before = make_multisite_features(30, 3, 3, random_state=0)
    after = before.drop(columns=["site", "age", "sex", "y"])
    with pytest.raises(ValueError, match="same rows"):
        site_effect_report(before, after.iloc[1:], "site")
    with pytest.raises(SubjectTableError, match="first row missing after: 0"):
        site_effect_report(before, after.set_axis(after.index + 100), "site")


def test_long_feature_names_are_wrapped():
    from sklearn_medprep.qc._plot import _wrap_name

    name = "original_firstorder_RobustMeanAbsoluteDeviation"
    wrapped = _wrap_name(name)
    assert wrapped.replace("\n", "") == name
    assert wrapped == "original_firstorder_\nRobustMeanAbsoluteDeviation"
    assert _wrap_name("f001") == "f001"

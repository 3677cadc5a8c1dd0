import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from scipy import stats

from sklearn_medprep import (
    ComBatHarmonizer,
    plot_harmonization,
    site_effect_report,
    site_predictability,
)
from sklearn_medprep.datasets import make_multisite_features


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
    assert len(fig.axes) == 6
    matplotlib.pyplot.close(fig)

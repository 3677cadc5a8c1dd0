import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sklearn_medprep import CohortReport, cohort_report
from sklearn_medprep.datasets import make_multisite_cohort, make_multisite_features
from sklearn_medprep.exceptions import SubjectTableError


def _demo_cohort(confounding, random_state=0):
    # The demo's cohort (132 subjects, two hospitals, confounding=0.6): the
    # metadata are drawn before the images, so a small field of view gives the
    # same table as the demo's.
    return make_multisite_cohort(
        132,
        2,
        shape=(10, 12, 8),
        random_state=random_state,
        confounding=confounding,
        label_effect=0.15,
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_flags_site_label_confounding_of_the_demo_cohort(seed):
    table = _demo_cohort(0.6, seed)
    report = cohort_report(
        table, site="site", target="y", covariates=["age", "sex"], protected=["sex"]
    )
    assert isinstance(report, CohortReport)
    assert "site_label_confounding" in report.codes
    assert "label_predictable_from_site" in report.codes
    first = report.findings[0]
    assert first.code == "site_label_confounding" and first.severity == "warning"
    assert "confounded with the site" in first.message
    # Cramér's V and the chi-square p-value, against scipy's own
    crosstab = pd.crosstab(table["site"], table["y"])
    row = report.associations.loc[("y", "site")]
    expected_v = stats.contingency.association(crosstab.to_numpy(), method="cramer")
    assert row["effect_size"] == pytest.approx(expected_v, rel=1e-12)
    chi2, p, _, _ = stats.chi2_contingency(crosstab, correction=False)
    assert row["p_value"] == pytest.approx(p, rel=1e-10)
    assert row["effect_size"] > 0.4
    # the shortcut "predict the majority class of the patient's hospital"
    majority = crosstab.idxmax(axis=1)
    rule = table["site"].map(majority)
    reference = np.mean(
        [(rule[table["y"] == c] == c).mean() for c in sorted(table["y"].unique())]
    )
    site_score = report.shortcuts.loc["site", "score"]
    assert site_score == pytest.approx(reference, abs=0.05)
    assert report.shortcuts.loc["site", "chance"] == 0.5
    # counts per site x class, with totals
    np.testing.assert_array_equal(
        report.counts.drop(index="all", columns="all").to_numpy(), crosstab.to_numpy()
    )
    assert report.counts.loc["all", "all"] == 132


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_confounding_is_not_flagged(seed):
    table = _demo_cohort(0.0, seed)
    report = cohort_report(
        table, site="site", target="y", covariates=["age", "sex"], protected=["sex"]
    )
    assert "site_label_confounding" not in report.codes
    assert "label_predictable_from_site" not in report.codes
    assert report.shortcuts.loc["site", "score"] < 0.6
    assert report.associations.loc[("y", "site"), "effect_size"] < 0.2


def test_nothing_found_is_said():
    table = _demo_cohort(0.0, 0)
    report = cohort_report(table, site="site", target="y", covariates=["age", "sex"])
    assert report.findings == []
    assert "Nothing found at the documented thresholds" in str(report)
    assert "Nothing found" in report._repr_html_()


def test_covariate_tests_match_scipy():
    df = make_multisite_features(150, 2, n_sites=4, random_state=0)
    report = cohort_report(df, site="site", target="y", covariates=["age", "sex"])
    groups = [g["age"].to_numpy() for _, g in df.groupby("site")]
    h, p = stats.kruskal(*groups)
    row = report.associations.loc[("age", "site")]
    assert row["test"] == "Kruskal-Wallis"
    assert row["statistic"] == pytest.approx(h, rel=1e-12)
    assert row["p_value"] == pytest.approx(p, rel=1e-10)
    assert row["effect_size"] == pytest.approx((h - 4 + 1) / (150 - 4), rel=1e-12)
    # the sites differ in mean age by construction: a note, with the advice
    finding = next(f for f in report.findings if f.code == "covariate_differs_by_site")
    assert finding.severity == "note" and "ComBat" in finding.message
    sex = report.associations.loc[("sex", "y")]
    expected = stats.contingency.association(
        pd.crosstab(df["y"], df["sex"]).to_numpy(), method="cramer"
    )
    assert sex["measure"] == "Cramér's V"
    assert sex["effect_size"] == pytest.approx(expected, rel=1e-12)
    # summary per site and class: mean age and share of each sex
    cell = df[(df["site"] == "site_2") & (df["y"] == 1)]
    assert report.summary.loc[("site_2", 1), "n"] == len(cell)
    assert report.summary.loc[("site_2", 1), "age mean"] == pytest.approx(
        cell["age"].mean()
    )
    assert report.summary.loc[("site_2", 1), "sex=F %"] == pytest.approx(
        100 * (cell["sex"] == "F").mean()
    )


def test_continuous_target_on_a_feature_table():
    # Age as the target (brain-age style): the sites differ in mean age.
    df = make_multisite_features(200, 3, n_sites=5, random_state=0)
    report = cohort_report(df, site="site", target="age", covariates=["sex"])
    assert not report.classification
    assert "site_label_confounding" in report.codes
    assert "label_predictable_from_site" in report.codes
    assert report.shortcuts.loc["site", "metric"] == "R^2"
    assert report.shortcuts.loc["site", "score"] > 0.1
    assert list(report.counts.columns) == ["count", "mean", "std"]
    rho = stats.spearmanr(df["sex"] == "M", df["age"])
    assert report.associations.loc[("sex", "age"), "test"] == "Kruskal-Wallis"
    assert np.isfinite(rho.statistic)


def _imbalanced_table():
    rng = np.random.default_rng(0)
    n = 200
    site = np.repeat([f"site_{k}" for k in (1, 2, 10)], [90, 90, 20])
    y = (rng.uniform(size=n) < 0.12).astype(int)
    ethnicity = np.where(rng.uniform(size=n) < 0.06, "minority", "majority")
    y[ethnicity == "minority"] = 0
    return pd.DataFrame(
        {
            "site": site,
            "y": y,
            "age": rng.normal(60, 8, n).round(1),
            "ethnicity": ethnicity,
        },
        index=pd.Index([f"sub-{i}" for i in range(n)], name="subject"),
    )


def test_imbalance_and_under_represented_groups():
    table = _imbalanced_table()
    report = cohort_report(
        table, site="site", target="y", covariates=["age"], protected=["ethnicity"]
    )
    codes = report.codes
    assert {"class_imbalance", "under_represented_group"} <= codes
    msg = next(f.message for f in report.findings if f.code == "class_imbalance")
    assert "balanced accuracy" in msg
    group = next(f.message for f in report.findings if "ethnicity" in f.message)
    assert "ethnicity=minority" in group and "no subject with y=1" in group
    rep = report.representation.loc[("ethnicity", "minority")]
    assert rep["n"] == int((table["ethnicity"] == "minority").sum())
    assert rep["n y=1"] == 0
    # natural site order: site_2 before site_10
    assert list(report.counts.index) == ["site_1", "site_2", "site_10", "all"]
    # warnings come first
    severities = [f.severity for f in report.findings]
    assert severities == sorted(severities, key=lambda s: s != "warning")


def test_thresholds_are_parameters():
    table = _imbalanced_table()
    report = cohort_report(
        table, site="site", target="y", thresholds={"minority_fraction": 0.05}
    )
    assert "class_imbalance" not in report.codes
    assert report.thresholds["minority_fraction"] == 0.05
    with pytest.raises(ValueError, match="unknown thresholds"):
        cohort_report(table, site="site", target="y", thresholds={"alfa": 0.1})


def test_site_without_class_small_site_and_missing_values():
    table = _imbalanced_table()
    table.loc[table["site"] == "site_10", "y"] = 0
    table.iloc[3, table.columns.get_loc("age")] = np.nan
    report = cohort_report(table, site="site", target="y", covariates=["age"])
    assert {"site_without_class", "missing_values"} <= report.codes
    message = next(f.message for f in report.findings if f.code == "missing_values")
    assert "age: 1" in message
    small = cohort_report(table.iloc[:-15], site="site", target="y")
    assert "small_site" in small.codes


def test_bad_input_is_an_error():
    table = _demo_cohort(0.0)
    with pytest.raises(SubjectTableError, match="scanner"):
        cohort_report(table, site="scanner", target="y")
    with pytest.raises(ValueError, match="target 'y' cannot also"):
        cohort_report(table, site="site", target="y", covariates=["y"])
    with pytest.raises(TypeError, match="DataFrame"):
        cohort_report(table.to_numpy(), site="site", target="y")


def test_plot_structure_and_html():
    table = _demo_cohort(0.6)
    report = cohort_report(
        table, site="site", target="y", covariates=["age", "sex"], protected=["sex"]
    )
    fig = report.plot()
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 4
    for ax in axes:
        assert ax.get_title(loc="left"), ax
        assert ax.get_xlabel()
    counts_ax, shortcut_ax, age_ax, sex_ax = axes
    assert [t.get_text() for t in counts_ax.get_xticklabels()] == ["site_A", "site_B"]
    assert [t.get_text() for t in counts_ax.get_legend().get_texts()] == ["0", "1"]
    assert counts_ax.get_ylabel() == "subjects"
    assert "balanced accuracy" in shortcut_ax.get_xlabel()
    assert [t.get_text() for t in shortcut_ax.get_yticklabels()] == [
        "site",
        "covariates",
        "site + covariates",
    ]
    assert "Kruskal-Wallis" in age_ax.get_title(loc="left")
    assert [t.get_text() for t in sex_ax.get_legend().get_texts()] == ["F", "M"]
    assert "2 warnings" in fig.get_suptitle()
    plt.close(fig)
    html = report._repr_html_()
    assert "confounded with the site" in html and "<table" in html
    assert "2 warnings" in repr(report)


def test_numeric_site_codes_and_string_labels():
    rng = np.random.default_rng(0)
    n = 150
    table = pd.DataFrame(
        {
            "scanner": rng.integers(1, 13, n),
            "dx": np.where(rng.uniform(size=n) < 0.4, "cardiomegaly", "normal"),
            "age": rng.normal(60, 10, n),
        }
    )
    report = cohort_report(table, site="scanner", target="dx", covariates=["age"])
    assert list(report.counts.index) == [*range(1, 13), "all"]
    assert list(report.counts.columns) == ["cardiomegaly", "normal", "all"]
    fig = report.plot()
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert ticks == [str(k) for k in range(1, 13)]
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["cardiomegaly", "normal"]
    plt.close(fig)

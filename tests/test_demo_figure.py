"""The demo's QC figure agrees with its console: same test, same adjustment."""

import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest

from sklearn_medprep import ComBatHarmonizer, demo, site_effect_report
from sklearn_medprep.datasets import make_multisite_features

COUNTS = r"(\d+) before, (\d+) after, of (\d+)"


@pytest.fixture
def demo_tables():
    """A feature table shaped like the demo's: features, site, diagnosis."""
    table = make_multisite_features(120, 30, n_sites=2, random_state=0)
    raw, y = table.drop(columns="y"), table["y"]
    after = ComBatHarmonizer(site="site", covariates=["age", "sex"]).fit(
        raw, y
    ).transform(raw)
    before = raw[after.columns.tolist() + ["site"]].assign(diagnosis=y)
    return before, after


def _texts(fig):
    return {ax: ax.get_title() for ax in fig.axes if ax.get_title()}


def test_figure_counts_are_the_printed_counts(demo_tables, tmp_path, capsys):
    before, after = demo_tables
    report = demo._site_effect_report(before, after, tmp_path)
    printed = capsys.readouterr().out
    (line,) = [ln for ln in printed.splitlines() if "features with a site effect" in ln]
    assert "adjusted for the diagnosis" in line
    console = re.search(COUNTS, line).groups()
    fig = demo._qc_figure(before, after, None, tmp_path)
    titles = _texts(fig)
    (effect,) = [t for t in titles.values() if "p < 0.05 in" in t]
    assert re.search(COUNTS, effect).groups() == console
    assert "ANOVA adjusted for diagnosis" in effect
    # the test can fail: unadjusted, as the figure was drawn before, the counts
    # differ on this cohort
    raw_report = site_effect_report(before.drop(columns="diagnosis"), after, "site")
    unadjusted = tuple(
        str(v) for v in (int((raw_report["p_before"] < 0.05).sum()),
                         int((raw_report["p_after"] < 0.05).sum()), len(raw_report))
    )
    assert unadjusted != console
    # the box plots: the features the printed report ranks first, its F values
    # rounded for people, each title saying what its test is adjusted for
    top = report["F_before"].sort_values(ascending=False).index[:3]
    boxes = [t for t in titles.values() if "(F = " in t]
    assert len(boxes) == 6
    for feature in top:
        for when in ("before", "after"):
            f = report.loc[feature, f"F_{when}"]
            expected = f"{when} (F = {_people(f)}, adjusted for diagnosis)"
            assert f"{feature}\n{expected}" in boxes, (feature, when, boxes)
    assert (tmp_path / "qc_harmonization.png").stat().st_size > 10_000
    plt.close(fig)


def _people(value):
    if 0 < value < 0.005:
        return "< 0.01"
    return f"{value:,.0f}" if value >= 10 else (
        f"{value:.1f}" if value >= 1 else f"{value:.2f}")


def test_legend_beside_the_site_panels_not_the_feature_panel(demo_tables, tmp_path):
    before, after = demo_tables
    fig = demo._qc_figure(before, after, None, tmp_path)
    titles = _texts(fig)
    (effect,) = [ax for ax, t in titles.items() if "p < 0.05 in" in t]
    pcas = [ax for ax, t in titles.items() if t.startswith("PCA by site")]
    assert [t for ax, t in titles.items() if ax in pcas] == [
        "PCA by site, before (not adjusted)", "PCA by site, after (not adjusted)"]
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    (legend,) = [lg for lg in legends if lg.get_title().get_text() == "site"]
    legend_ax = legend.axes
    # left to right: per-feature panel, PCA before, PCA after, legend of sites
    x0 = [ax.get_position().x0 for ax in (effect, *pcas, legend_ax)]
    assert x0 == sorted(x0)
    # the per-feature panel has no site colour: its points are features
    site_colours = {tuple(c.get_facecolor()[0]) for c in pcas[0].collections}
    assert tuple(effect.collections[0].get_facecolor()[0][:3]) == (0.0, 0.0, 0.0)
    assert all(c[:3] != (0.0, 0.0, 0.0) for c in site_colours)
    plt.close(fig)


@pytest.mark.parametrize(
    "value, text",
    [(1234.4, "1,234"), (57.6, "58"), (3.46, "3.5"), (0.421, "0.42"),
     (0.001, "< 0.01"), (0.0, "0.00"), (float("nan"), "n/a")],
)
def test_statistics_rounded_for_people(value, text):
    from sklearn_medprep.qc._plot_style import _people

    assert _people(value) == text

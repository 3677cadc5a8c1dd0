"""The demo tells its story: plan, cohort audit first, what the scores mean."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from sklearn_medprep import demo
from sklearn_medprep.datasets import make_multisite_cohort


def test_plan_names_run_time_and_one_output_folder(tmp_path, capsys):
    demo._print_plan(tmp_path / "demo_output", 120, 12)
    printed = capsys.readouterr().out
    assert "132 synthetic subjects (120 for training" in printed
    assert "Expected run time" in printed
    assert f"All outputs go to one folder: {tmp_path / 'demo_output'}/" in printed


def test_audit_flags_the_demo_cohort(tmp_path, capsys):
    # the demo's cohort: the metadata do not depend on the image size
    cohort = make_multisite_cohort(
        132, 2, shape=(10, 12, 8), random_state=0, confounding=0.6, label_effect=0.15
    )
    report = demo._audit_cohort(cohort, tmp_path)
    plt.close("all")
    printed = capsys.readouterr().out
    assert "site_label_confounding" in report.codes
    assert "The label is confounded with the site" in printed
    assert "a model must beat this" in printed
    assert (tmp_path / "cohort_audit.png").stat().st_size > 10_000
    text = (tmp_path / "cohort_audit.txt").read_text(encoding="utf-8")
    assert "confounded with the site" in text


def test_site_predictability_is_explained_with_chance_and_interval(capsys):
    from sklearn_medprep import SitePredictability

    def score(value, verdict):
        return SitePredictability(
            value, chance=0.5, null_interval=(0.35, 0.64), p_value=0.5,
            verdict=verdict,
        )

    before = score(0.99, "site signal remains")
    demo._explain_site_predictability(before, score(0.21, "below chance: "
                                                          "over-correction"))
    printed = capsys.readouterr().out
    assert "before: 0.990 (chance 0.500, permuted-site interval 0.350-0.640" in (
        printed
    )
    assert "0.21 after is below the permutation interval" in printed
    assert "over-correction" in printed and "not success" in printed
    demo._explain_site_predictability(before, score(0.52, "at chance"))
    assert "no site signal left" in capsys.readouterr().out
    demo._explain_site_predictability(before, score(0.8, "site signal remains"))
    assert "some site signal remains" in capsys.readouterr().out

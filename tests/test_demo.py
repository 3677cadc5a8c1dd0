"""The README's main command runs end to end (small size)."""

import numpy as np
import pytest


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path, capsys):
    from sklearn_medprep.demo import main

    out = tmp_path / "demo"
    status = main(
        [
            "--out",
            str(out),
            "--n-subjects",
            "40",
            "--n-new",
            "4",
            "--n-jobs",
            "1",
            "--quiet",
        ]
    )
    assert status == 0
    printed = capsys.readouterr().out
    for line in (
        "leak-free (ComBat inside CV)",
        "leaky (ComBat before CV)",
        "Leakage audit: the recommended pipeline and the common mistake",
        "features with a site effect (ANOVA p < 0.05)",
        "reloaded predictions identical: True",
    ):
        assert line in printed
    for name in (
        "cohort.csv",
        "pipeline.joblib",
        "qc_harmonization.png",
        "site_effect_report.csv",
    ):
        assert (out / name).is_file(), name
    # the reloaded pipeline, in this process too, predicts what the demo printed
    import joblib
    import pandas as pd

    from sklearn_medprep import read_manifest

    # paths relative to the CSV's folder, whatever the working directory
    cohort = read_manifest(out / "cohort.csv", mask="mask", index_col=0,
                           validate=False)
    assert not pd.read_csv(out / "cohort.csv")["image"].str.startswith("/").any()
    model = joblib.load(out / "pipeline.joblib")
    proba = model.predict_proba(cohort.iloc[:5])[:, 1]
    assert np.all((proba >= 0) & (proba <= 1))
    report = pd.read_csv(out / "site_effect_report.csv", index_col=0)
    # ComBat removes the site effect of the training cohort
    assert report["F_after"].median() < report["F_before"].median() / 10

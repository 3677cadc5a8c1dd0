"""The demo audits its recommended pipeline and the common mistake for leaks."""

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_medprep import ComBatHarmonizer, demo
from sklearn_medprep.datasets import make_multisite_features
from sklearn_medprep.model_selection import SiteStratifiedKFold


def test_audit_pipelines_flags_the_common_mistake_only(capsys):
    # a feature table shaped like the demo's: features, site, age, sex
    table = make_multisite_features(120, 30, n_sites=2, random_state=0)
    raw, y = table.drop(columns="y"), table["y"]
    model = Pipeline([("scale", StandardScaler()), ("classify", LogisticRegression())])
    # the demo's common mistake: ComBat on the whole cohort, y as a covariate
    harmonized_all = ComBatHarmonizer(
        site="site", covariates=["age", "sex", "y"]
    ).fit_transform(raw.assign(y=y))
    cv = SiteStratifiedKFold(5, shuffle=True, random_state=1)
    audits = demo._audit_pipelines(model, raw, y, harmonized_all, cv)
    recommended, mistake = audits.values()
    assert recommended.findings == []
    assert mistake.kinds == {"whole_cohort_preparation"}
    printed = capsys.readouterr().out
    assert "recommended (ComBat inside CV, diagnosis protected)" in printed
    assert "no finding" in printed
    assert "whole_cohort_preparation: Per-site means of the 30 features" in printed

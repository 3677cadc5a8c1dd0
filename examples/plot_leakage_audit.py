"""
Leakage in imaging pipelines: the leakage audit
===============================================

Each estimator of sklearn-medprep keeps the leakage rules on its own, but a
pipeline can still leak through the seams between its steps.
:func:`~sklearn_medprep.audit_leakage` runs a pipeline's cross-validation and
looks for the five leaks of imaging pipelines:

(a) a column equal to the target reaching the model (``target_proxy``);
(b) rows of one subject on both sides of a split (``subject_overlap``);
(c) a step whose output for a test row depends on the other test rows
    (``transductive``);
(d) features harmonized or standardized on the whole cohort before the
    cross-validation (``whole_cohort_preparation``);
(e) a score the site alone reaches (``site_shortcut``).

This example plants each leak in a small synthetic feature table
(:func:`~sklearn_medprep.datasets.make_multisite_features`) and shows the
audit naming it, after the recommended pipeline, which reports nothing. Every
finding states its number and the documented threshold that raised it.
"""

# %%
# Settings shared by all examples: ``SKLEARN_MEDPREP_EXAMPLE_SMALL=1`` shrinks
# the data (the test suite sets it); this example writes no file.
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from sklearn_medprep import ComBatHarmonizer, audit_leakage
from sklearn_medprep.datasets import make_multisite_features
from sklearn_medprep.model_selection import SiteStratifiedKFold

SMALL = os.environ.get("SKLEARN_MEDPREP_EXAMPLE_SMALL", "") not in ("", "0")
n_subjects = 150 if SMALL else 300

# %%
# The recommended pipeline reports nothing
# ----------------------------------------
# Three sites, eight features with site effects, a binary label ``y``, age and
# sex. ComBat inside the pipeline (the label protected in ``fit``), then a
# scaler and a classifier, cross-validated with
# :class:`~sklearn_medprep.model_selection.SiteStratifiedKFold` (the default).
# start-recommended
table = make_multisite_features(n_subjects, 8, n_sites=3, random_state=0)
X, y = table.drop(columns="y"), table["y"]
features = [c for c in X.columns if c.startswith("f")]
recommended = make_pipeline(
    ComBatHarmonizer(covariates=["age", "sex"]), StandardScaler(), LogisticRegression()
)
audit = audit_leakage(recommended, X, y, covariates=["age", "sex"])
print(audit)
# end-recommended

# %%
# The scores behind it: the pipeline's cross-validated balanced accuracy, the
# label predicted from the site (and covariates) alone, chance, and what the
# pipeline's predictions carry within sites.
print(audit.scores.round(3))


# %%
# (a) A target proxy reaching the model
# -------------------------------------
# The target is age; the table still holds it in months. A column transformer
# scales the features and passes the rest through: the model receives the
# target in another unit. (The library's own steps refuse such a column in
# ``fit``; the audit reports that refusal as a finding too.)
# start-target-proxy
age = X["age"]
with_months = X.drop(columns="age").assign(age_months=12 * age)
passthrough = make_pipeline(
    make_column_transformer(
        (StandardScaler(), features),
        ("drop", ["site", "sex"]),
        remainder="passthrough",
        verbose_feature_names_out=False,
    ),
    RidgeCV(),
)
audit = audit_leakage(passthrough, with_months, age)
print(audit.findings[0])
# ComBat would hand the column on too (it is not a feature): it refuses it in
# fit, and the audit turns the refusal into a finding naming the column
combat = make_pipeline(
    ComBatHarmonizer(features=features, covariates=["sex"]), StandardScaler(), RidgeCV()
)
audit = audit_leakage(combat, with_months, age, covariates=["sex"])
print(audit.findings[0])
# end-target-proxy

# %%
# (b) Rows of one subject on both sides of a split
# ------------------------------------------------
# Three rows per subject (one per region of interest), split by site only: the
# same subject is trained and tested on. The audit reads the subjects from the
# ``subject`` column. Split by subject instead, and the finding is gone.
# start-subject-overlap
per_roi = X.iloc[:30].loc[lambda t: t.index.repeat(3)].reset_index(drop=True)
per_roi["subject"] = np.repeat([f"sub-{i:02d}" for i in range(30)], 3)
per_roi[features] += np.random.default_rng(0).normal(size=(90, len(features)))
y_roi = np.repeat(y.iloc[:30].to_numpy(), 3)
model = make_pipeline(
    make_column_transformer(
        ("drop", ["site", "subject", "sex"]), remainder="passthrough"
    ),
    StandardScaler(),
    LogisticRegression(),
)
by_site = audit_leakage(model, per_roi, y_roi, cv=SiteStratifiedKFold(3))
print(by_site.findings[0])
by_subject = audit_leakage(
    model, per_roi, y_roi, cv=GroupKFold(3), groups=per_roi["subject"]
)
print("split by subject:", by_subject.kinds or "no finding")
# end-subject-overlap


# %%
# (c) A transductive step
# -----------------------
# A step that centres each batch on its own mean: a test row's output depends
# on the other test rows. The audit transforms the test rows as a batch, in
# two halves, shuffled and one by one, and names the step that differs.
# start-transductive
def centre_on_batch(Z):
    return Z - Z.mean(axis=0)


transductive = make_pipeline(
    ComBatHarmonizer(covariates=["age", "sex"]),
    FunctionTransformer(centre_on_batch, feature_names_out="one-to-one"),
    LogisticRegression(),
)
audit = audit_leakage(transductive, X, y, covariates=["age", "sex"])
print(audit.findings[0])
# end-transductive

# %%
# (d) Harmonized on the whole cohort before the cross-validation
# --------------------------------------------------------------
# The common mistake: ComBat fitted on every row, then the cross-validation.
# Whole-cohort ComBat leaves the per-site means (adjusted for the covariates)
# more equal across sites than random sampling ever would; the audit tests
# that on X itself.
# start-whole-cohort
harmonized = ComBatHarmonizer(covariates=["age", "sex"]).fit(X, y).transform(X)
harmonized = harmonized.assign(site=X["site"], age=X["age"], sex=X["sex"])
model = make_pipeline(
    make_column_transformer(("drop", ["site", "age", "sex"]), remainder="passthrough"),
    StandardScaler(),
    LogisticRegression(),
)
audit = audit_leakage(model, harmonized, y, covariates=["age", "sex"])
print(audit.findings[0])
# end-whole-cohort

# %%
# (e) The site shortcut
# ---------------------
# A label that follows the site (85% of the time) and features that carry the
# site but not the label: the pipeline scores about what the site alone does,
# and its predictions say nothing within a site.
# start-site-shortcut
no_label = make_multisite_features(
    n_subjects, 8, n_sites=3, label_effect=0.0, random_state=0
)
keep = np.random.default_rng(0).uniform(size=n_subjects) < 0.85
follows_site = pd.Series(
    np.where(keep, no_label["site"] != "site_0", no_label["site"] == "site_0"),
    dtype=int,
)
raw_model = make_pipeline(
    make_column_transformer(("drop", ["site", "age", "sex"]), remainder="passthrough"),
    StandardScaler(),
    LogisticRegression(),
)
audit = audit_leakage(raw_model, no_label.drop(columns="y"), follows_site)
print(audit.findings[0])
# end-site-shortcut

# %%
# The report renders as HTML in a notebook (``audit._repr_html_()``), and
# ``audit.findings`` holds the records for programs: ``kind``, ``severity``,
# ``message`` and ``evidence``.
print({f.kind: sorted(f.evidence) for f in audit.findings})

# %%
# The site shortcut at a glance: the pipeline's cross-validated score next to
# what the site (and the covariates) alone reach, and chance. The pipeline
# does no better than the site alone, and its predictions carry little within
# a site (the bar "pipeline within sites", a ROC AUC within sites here).
scores = audit.scores.drop("chance")
fig, ax = plt.subplots(figsize=(6, 3))
ax.barh(scores.index, scores.to_numpy(), color="tab:blue")
ax.axvline(audit.scores["chance"], color="k", ls="--", label="chance")
ax.set_xlabel(f"score ({audit.metric})")
ax.legend(loc="lower right")
ax.set_title("site shortcut: pipeline vs site alone")
fig.tight_layout()

"""
Know your cohort before you model it: the cohort audit
======================================================

Before any model, look at the metadata. If most patients with the disease come
from one hospital, a model can score well by recognising the hospital's scanner
instead of the disease, and cross-validation will not tell. This example runs
:func:`~sklearn_medprep.cohort_report` on two synthetic two-hospital cohorts
made by :func:`~sklearn_medprep.datasets.make_multisite_cohort`: the demo's
cohort, whose diagnosis is confounded with the hospital (``confounding=0.6``),
and the same design without confounding. The audit reads only the metadata
columns (site, label, covariates): it runs on a subject table before any image
is processed, or on a feature table.

Each finding states its number and the documented threshold that raised it
(see :func:`~sklearn_medprep.cohort_report`).
"""

# %%
# Settings shared by all examples: ``SKLEARN_MEDPREP_EXAMPLE_SMALL=1`` shrinks
# the data (the test suite sets it) and ``SKLEARN_MEDPREP_EXAMPLE_OUT`` names
# the output folder (a temporary one by default).
import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from sklearn_medprep import cohort_report
from sklearn_medprep.datasets import make_multisite_cohort, make_multisite_features

SMALL = os.environ.get("SKLEARN_MEDPREP_EXAMPLE_SMALL", "") not in ("", "0")
OUT = Path(
    os.environ.get("SKLEARN_MEDPREP_EXAMPLE_OUT")
    or tempfile.mkdtemp(prefix="medprep_example_")
)
OUT.mkdir(parents=True, exist_ok=True)

# %%
# The demo's two-hospital cohort
# ------------------------------
# 132 subjects from two hospitals; ``P(y=1)`` is 0.8 at one and 0.2 at the
# other. The images are tiny here: the audit never reads them.
cohort = make_multisite_cohort(
    132, 2, shape=(10, 12, 8), random_state=0, confounding=0.6, label_effect=0.15
)
report = cohort_report(
    cohort, site="site", target="y", covariates=["age", "sex"], protected=["sex"]
)
print(report)

# %%
# The tables behind the findings are DataFrames: subjects per site and class,
# and how well the label is predicted from the metadata alone (cross-validated,
# next to chance). Any image model must beat the score from the site alone to
# show it learned more than the hospital.
print(report.counts)
print(report.shortcuts.round(2))
print(report.associations.round(3))

# %%
# The figure: subjects per site and class, the label predicted without images,
# and each covariate by site and class.
fig = report.plot()
figure = OUT / "cohort_audit.png"
fig.savefig(figure, dpi=100)
print(f"figure saved: {figure}")

# %%
# The same design without confounding
# -----------------------------------
# Nothing is flagged: the label is not predictable from the hospital.
balanced = make_multisite_cohort(
    132, 2, shape=(10, 12, 8), random_state=0, confounding=0.0, label_effect=0.15
)
print(cohort_report(balanced, site="site", target="y", covariates=["age", "sex"]))

# %%
# A feature table with many sites
# -------------------------------
# On a FreeSurfer-style table of 12 sites whose mean age differs, the audit
# notes that age differs between sites (pass it to ComBat as a covariate) and
# which sites are small. Sites are listed in natural order (``site_2`` before
# ``site_10``).
n_subjects = 240 if SMALL else 600
features = make_multisite_features(n_subjects, 5, n_sites=12, random_state=0)
many = cohort_report(features, site="site", target="y", covariates=["age", "sex"])
print(many)
print("sites:", ", ".join(many.counts.index[:-1]))

"""Cohort audit: know the cohort before modelling it.

:func:`cohort_report` looks at the metadata of a subject table (or of a
feature table: no image is read) and answers the questions to ask before any
model: how many subjects per site and class, are the classes balanced, do the
covariates differ between sites or classes, are groups of a protected
attribute under-represented, and above all: is the label confounded with the
site, so that a model could learn the scanner instead of the disease?
"""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from ..exceptions import SubjectTableError, plain
from ..table._checks import is_numeric_column
from ._cohort_findings import (
    Finding,
    _class_findings,
    _findings_site_label,
    _representation,
    _representation_findings,
    _small_site_findings,
)
from ._cohort_plot import plot_cohort
from ._plot import natural_order

__all__ = ["CohortReport", "Finding", "cohort_report", "THRESHOLDS"]

#: Thresholds of the findings; every one can be changed with ``thresholds=``.
THRESHOLDS = {
    "alpha": 0.05,
    "confounding_v": 0.2,
    "confounding_effect": 0.06,
    "shortcut_margin": 0.1,
    "covariate_v": 0.2,
    "covariate_effect": 0.06,
    "minority_fraction": 0.2,
    "min_group_fraction": 0.1,
    "min_cell": 5,
    "min_site_size": 10,
    "max_levels": 5,
}


def _is_categorical(col, max_levels):
    if not is_numeric_column(col):  # the one rule of "numeric" (table._checks)
        return True
    return col.nunique(dropna=True) <= max_levels


def _cramers_v(a, b):
    """Chi-square test of independence and Cramér's V of two label arrays."""
    table = pd.crosstab(a, b)
    if min(table.shape) < 2:
        return np.nan, np.nan, 0.0
    chi2, p, _, _ = stats.chi2_contingency(table, correction=False)
    v = np.sqrt(chi2 / (table.to_numpy().sum() * (min(table.shape) - 1)))
    return float(chi2), float(p), float(v)


def _kruskal(values, groups):
    """Kruskal-Wallis H over groups and its effect size epsilon^2 (eta^2_H)."""
    labels = pd.unique(groups)
    samples = [values[groups == g] for g in labels]
    samples = [s for s in samples if len(s)]
    k, n = len(samples), len(values)
    if k < 2 or n <= k or np.ptp(values) == 0:
        return np.nan, np.nan, 0.0
    h, p = stats.kruskal(*samples)
    return float(h), float(p), float(max(0.0, (h - k + 1) / (n - k)))


def _association(x, x_categorical, groups):
    """Test of ``x`` across ``groups``: chi-square or Kruskal-Wallis."""
    if x_categorical:
        stat, p, effect = _cramers_v(groups, x)
        return "chi-square", stat, p, effect, "Cramér's V"
    stat, p, effect = _kruskal(np.asarray(x, dtype=float), np.asarray(groups))
    return "Kruskal-Wallis", stat, p, effect, "epsilon^2"


def _design(frame, columns, max_levels):
    """Numeric design matrix: numeric columns standardized, others one-hot."""
    blocks = []
    for name in columns:
        col = frame[name]
        if _is_categorical(col, max_levels):
            blocks.append(pd.get_dummies(col.astype(str), dtype=float).to_numpy())
        else:
            x = col.to_numpy(dtype=float)
            blocks.append(((x - x.mean()) / (x.std() or 1.0))[:, None])
    return np.hstack(blocks)


def _shortcuts(frame, site, target, covariates, classification, max_levels, cv, seed):
    """Cross-validated prediction of the target from metadata alone."""
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score

    y = frame[target].to_numpy()
    if classification:
        y = y.astype(str)
        n_splits = min(cv, int(pd.Series(y).value_counts().min()))
        chance, metric = 1.0 / len(np.unique(y)), "balanced accuracy"
    else:
        y = y.astype(float)
        n_splits = min(cv, len(y) // 2)
        chance, metric = 0.0, "R^2"
    rows = {}
    inputs = {"site": [site]}
    if covariates:
        inputs["covariates"] = list(covariates)
        inputs["site + covariates"] = [site, *covariates]
    for name, columns in inputs.items():
        score = np.nan
        if n_splits >= 2:
            X = _design(frame, columns, max_levels)
            if classification:
                model = LogisticRegression(max_iter=1000, class_weight="balanced")
                split = StratifiedKFold(n_splits, shuffle=True, random_state=seed)
                scoring = "balanced_accuracy"
            else:
                model = RidgeCV()
                split = KFold(n_splits, shuffle=True, random_state=seed)
                scoring = "r2"
            score = float(
                np.mean(cross_val_score(model, X, y, cv=split, scoring=scoring))
            )
        rows[name] = {
            "metric": metric,
            "score": score,
            "chance": chance,
            "n_splits": int(n_splits),
        }
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "predicted from"
    return out

_NOTHING_FOUND = (
    "Nothing found at the documented thresholds: no site-label confounding, "
    "no shortcut from metadata, balanced classes, groups represented."
)


@dataclass
class CohortReport:
    """What :func:`cohort_report` found; see there for the tables' contents.

    Attributes
    ----------
    findings : list of Finding
        Plain-language findings, warnings first.
    counts : pandas.DataFrame
        Subjects per site (rows, natural order) and class (columns), with
        totals; for a continuous target, count, mean and sd per site.
    summary : pandas.DataFrame
        Covariate distributions per site and class.
    associations : pandas.DataFrame
        One test per (variable, by) pair.
    shortcuts : pandas.DataFrame
        How well the target is predicted from site and covariates alone.
    representation : pandas.DataFrame
        Group sizes of the protected attributes.
    thresholds : dict
        Thresholds the findings used.
    """

    site: str
    target: str
    covariates: list
    protected: list
    classification: bool
    n_subjects: int
    findings: list
    counts: pd.DataFrame
    summary: pd.DataFrame
    associations: pd.DataFrame
    shortcuts: pd.DataFrame
    representation: pd.DataFrame
    thresholds: dict
    _frame: pd.DataFrame = field(repr=False, default=None)

    @property
    def codes(self):
        """Set of the finding codes (e.g. ``{"site_label_confounding"}``)."""
        return {f.code for f in self.findings}

    @property
    def warnings(self):
        """The findings of severity ``"warning"``."""
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def n_sites(self):
        """Number of sites."""
        return int(self._frame[self.site].nunique())

    def __str__(self):
        lines = [
            f"Cohort report: {self.n_subjects} subjects, {self.n_sites} sites, "
            f"target {self.target!r}",
            *(f"- {f}" for f in self.findings),
        ]
        if not self.findings:
            lines.append(f"- {_NOTHING_FOUND}")
        return "\n".join(lines)

    def __repr__(self):
        return (
            f"<CohortReport: {self.n_subjects} subjects, "
            f"{len(self.warnings)} warnings, "
            f"{len(self.findings) - len(self.warnings)} notes>"
        )

    def _repr_html_(self):
        import html

        items = "".join(
            f"<li><b>{html.escape(f.severity)}</b>: {html.escape(f.message)}</li>"
            for f in self.findings
        ) or f"<li>{html.escape(_NOTHING_FOUND)}</li>"
        parts = [
            f"<h4>Cohort report: {self.n_subjects} subjects, target "
            f"<code>{html.escape(str(self.target))}</code></h4>",
            f"<ul>{items}</ul>",
            "<h5>Subjects per site and class</h5>",
            self.counts.to_html(),
            "<h5>Target predicted from metadata alone (cross-validated)</h5>",
            self.shortcuts.to_html(float_format="{:.3f}".format),
            "<h5>Associations</h5>",
            self.associations.to_html(float_format="{:.3g}".format),
        ]
        return "\n".join(parts)

    def plot(self, figsize=None):
        """Draw the cohort: counts, shortcut scores and covariates by site.

        Parameters
        ----------
        figsize : tuple or None, default=None
            Figure size; by default it grows with the sites and covariates.

        Returns
        -------
        fig : matplotlib.figure.Figure
            Panels: subjects per site and class (or the target per site),
            the target predicted from metadata alone next to chance, then
            one panel per covariate and protected attribute by site.
        """
        return plot_cohort(self, figsize=figsize)


def _check_columns(table, site, target, covariates, protected):
    if not isinstance(table, pd.DataFrame):
        raise TypeError(
            f"cohort_report needs a pandas DataFrame, got {type(table).__name__}."
        )
    for name in [site, target, *covariates, *protected]:
        if name not in table.columns:
            raise SubjectTableError("column not found", column=name)
    if target == site or target in covariates or target in protected:
        raise ValueError(
            f"the target {target!r} cannot also be the site, a covariate or a "
            "protected attribute."
        )
    roles = [(site, "site"), (target, "target")]
    roles += [(c, "covariate") for c in covariates]
    roles += [(c, "protected attribute") for c in protected]
    for name, role in roles:
        if table[name].isna().all():
            raise SubjectTableError(
                f"the {role} column has no value in any of the {len(table)} rows "
                f"(all missing): fill it, or leave it out of the report",
                column=name,
            )
    values = table.loc[table[site].notna(), target].dropna().unique()
    if values.size == 0:
        raise SubjectTableError(
            "no row has both a site and a target value", column=target
        )
    if values.size < 2:
        raise SubjectTableError(
            f"the target takes a single value ({plain(values[0])!r}) in every "
            "row with a site: there is nothing to predict, so no confounding, "
            "balance or shortcut to audit. Check the column (a filter that "
            "kept one class?)",
            column=target,
        )


def cohort_report(
    table,
    *,
    site,
    target,
    covariates=None,
    protected=None,
    thresholds=None,
    cv=5,
    random_state=0,
):
    """Audit a cohort's metadata before modelling: confounding, balance, groups.

    Runs on the subject table or on a feature table: only the ``site``,
    ``target``, ``covariates`` and ``protected`` columns are read (no image).
    A column is categorical when it is not numeric, is boolean or has at most
    ``max_levels`` distinct values; it is continuous otherwise. A categorical
    target is a classification target, a continuous one a regression target.

    What is computed:

    * subjects per site and class (``counts``), covariate distributions per
      site and class (``summary``: mean and sd of continuous covariates,
      percentage of each level of categorical ones);
    * tests (``associations``) of the target, each covariate and each
      protected attribute across sites, and of each covariate and protected
      attribute across classes: chi-square with Cramér's V when the tested
      variable is categorical, Kruskal-Wallis with epsilon^2 = (H - k + 1) /
      (n - k) when continuous (Spearman's rho against a continuous target);
    * the shortcut a model could learn (``shortcuts``): the target predicted
      from the site alone, the covariates alone and both, by a logistic
      regression (balanced classes; score: balanced accuracy, chance 1 / n
      classes) or a ridge regression (score: R^2, chance 0), cross-validated
      with ``cv`` shuffled (stratified) folds;
    * the size of each group of the protected attributes (``representation``;
      a continuous attribute is cut into quartiles), overall, per class and
      its smallest count over sites.

    Findings, with their default thresholds (``thresholds=`` changes them):

    * ``site_label_confounding`` (warning): the site-target association has
      p < ``alpha`` (0.05) and Cramér's V >= ``confounding_v`` (0.2), or
      epsilon^2 >= ``confounding_effect`` (0.06) for a continuous target;
    * ``label_predictable_from_site`` (warning): the target predicted from the
      site alone scores >= chance + ``shortcut_margin`` (0.1);
    * ``label_predictable_from_covariates`` (note): the same from the
      covariates alone (they may be genuine predictors);
    * ``class_imbalance`` (warning): the smallest class is under
      ``minority_fraction`` (20%) of the subjects;
    * ``site_without_class`` (warning): a site has no subject of some class;
    * ``small_site_class_cell`` (note): a site x class cell has fewer than
      ``min_cell`` (5) subjects;
    * ``small_site`` (warning): a site has fewer than ``min_site_size`` (10)
      subjects (ComBat's per-site estimates are unstable);
    * ``covariate_differs_by_site`` (note): p < ``alpha`` and Cramér's V >=
      ``covariate_v`` (0.2), or epsilon^2 >= ``covariate_effect`` (0.06);
    * ``covariate_differs_by_label`` (note): the same, across classes;
    * ``under_represented_group`` (warning): a protected group is under
      ``min_group_fraction`` (10%) of the subjects, or has no subject of some
      class;
    * ``single_site`` (warning): every subject comes from one site;
    * ``missing_values`` (warning): missing cells in the columns read (those
      rows are left out of the tests that use the column).

    Parameters
    ----------
    table : pandas.DataFrame
        Subject table or feature table, one row per subject.
    site : str
        Column of the acquisition site (scanner, hospital).
    target : str
        Column of the label to predict.
    covariates : list of str or None, default=None
        Columns of covariates (age, sex, ...).
    protected : list of str or None, default=None
        Columns of protected attributes (sex, ethnicity, age group...) whose
        groups must be represented, overall and in every class.
    thresholds : dict or None, default=None
        Overrides of :data:`THRESHOLDS` (keys as in the table above, plus
        ``max_levels``: 5).
    cv : int, default=5
        Folds of the shortcut cross-validation (fewer when a class is
        smaller).
    random_state : int, default=0
        Seed of the fold shuffle.

    Returns
    -------
    report : CohortReport
        ``findings``, the tables above, ``plot()`` and an HTML repr.

    Raises
    ------
    SubjectTableError
        Naming the column: a column not found, a site, target, covariate or
        protected column without any value (all missing), or a target that
        takes a single value (nothing to predict).

    Examples
    --------
    >>> from sklearn_medprep import cohort_report
    >>> from sklearn_medprep.datasets import make_multisite_features
    >>> df = make_multisite_features(120, 2, n_sites=3, random_state=0)
    >>> report = cohort_report(df, site="site", target="y", covariates=["age", "sex"])
    >>> "site_label_confounding" in report.codes
    False
    >>> sorted(report.codes)
    ['covariate_differs_by_site']
    >>> print(report.findings[0].message[:43])
    age differs between sites (Kruskal-Wallis p
    """
    covariates = [covariates] if isinstance(covariates, str) else list(covariates or [])
    protected = [protected] if isinstance(protected, str) else list(protected or [])
    _check_columns(table, site, target, covariates, protected)
    th = {**THRESHOLDS, **(thresholds or {})}
    unknown = set(th) - set(THRESHOLDS)
    if unknown:
        raise ValueError(f"unknown thresholds: {sorted(unknown)}")
    variables = list(dict.fromkeys([*covariates, *protected]))
    findings = []
    columns = [site, target, *variables]
    missing = table[columns].isna().sum()
    missing = missing[missing > 0]
    if len(missing):
        cells = ", ".join(f"{c}: {int(n)}" for c, n in missing.items())
        findings.append(
            Finding(
                "missing_values",
                "warning",
                f"Missing values ({cells}): those rows are left out of the tests "
                "that use the column, and ComBat refuses missing site or "
                "covariate values.",
            )
        )
    frame = table.loc[table[[site, target]].notna().all(axis=1), columns].copy()
    max_levels = int(th["max_levels"])
    classification = _is_categorical(frame[target], max_levels)
    sites = natural_order(frame[site])
    frame[site] = pd.Categorical(frame[site], categories=sites, ordered=True)
    kinds = {v: _is_categorical(frame[v].dropna(), max_levels) for v in variables}

    # --- counts, summary ----------------------------------------------------
    if classification:
        classes = natural_order(frame[target])
        frame[target] = pd.Categorical(frame[target], categories=classes)
        counts = pd.crosstab(
            frame[site], frame[target], margins=True, margins_name="all"
        )
    else:
        counts = frame.groupby(site, observed=True)[target].agg(
            ["count", "mean", "std"]
        )
    groups = [site, target] if classification else [site]
    grouped = frame.groupby(groups, observed=False)
    summary = pd.DataFrame({"n": grouped.size()})
    for v in variables:
        if kinds[v]:
            share = pd.crosstab(
                [frame[g] for g in groups], frame[v].astype(str), normalize="index"
            )
            for level in natural_order(share.columns):
                summary[f"{v}={level} %"] = 100 * share[level]
        else:
            summary[f"{v} mean"] = grouped[v].mean()
            summary[f"{v} sd"] = grouped[v].std()

    # --- associations -------------------------------------------------------
    rows = {}
    site_codes = frame[site].astype(str).to_numpy()
    test = _association(frame[target].astype(str), True, site_codes)
    if not classification:
        test = _association(frame[target].to_numpy(dtype=float), False, site_codes)
    rows[(target, site)] = test
    for v in variables:
        ok = frame[v].notna().to_numpy()
        x = frame.loc[ok, v]
        rows[(v, site)] = _association(
            x.astype(str) if kinds[v] else x, kinds[v], site_codes[ok]
        )
        if classification:
            rows[(v, target)] = _association(
                x.astype(str) if kinds[v] else x,
                kinds[v],
                frame.loc[ok, target].astype(str).to_numpy(),
            )
        elif kinds[v]:
            stat, p, eff = _kruskal(
                frame.loc[ok, target].to_numpy(dtype=float), x.astype(str).to_numpy()
            )
            rows[(v, target)] = ("Kruskal-Wallis", stat, p, eff, "epsilon^2")
        else:
            rho, p = stats.spearmanr(x, frame.loc[ok, target])
            rows[(v, target)] = ("Spearman", float(rho), float(p), abs(rho), "|rho|")
    associations = pd.DataFrame.from_dict(
        rows,
        orient="index",
        columns=["test", "statistic", "p_value", "effect_size", "measure"],
    )
    associations.index = pd.MultiIndex.from_tuples(
        associations.index, names=["variable", "by"]
    )
    records = associations.to_dict("index")

    # --- findings -----------------------------------------------------------
    findings += _findings_site_label(records, counts, th, classification, site, target)
    complete = frame.dropna(subset=variables)
    shortcuts = _shortcuts(
        complete, site, target, variables, classification, max_levels, cv, random_state
    )
    for name, code, severity in [
        ("site", "label_predictable_from_site", "warning"),
        ("covariates", "label_predictable_from_covariates", "note"),
    ]:
        if name not in shortcuts.index:
            continue
        r = shortcuts.loc[name]
        if r["score"] >= r["chance"] + th["shortcut_margin"]:
            why = (
                "a model can reach it by recognising the site alone"
                if name == "site"
                else "they may be genuine predictors, or confounders to adjust for"
            )
            findings.append(
                Finding(
                    code,
                    severity,
                    f"The label is predicted from the {name} alone with "
                    f"{r['metric']} {r['score']:.2f} (chance {r['chance']:.2f}; "
                    f"flagged at chance + {th['shortcut_margin']}), cross-validated "
                    f"over {int(r['n_splits'])} folds: {why}. An image model must "
                    "beat this score to show it learned more than the metadata.",
                )
            )
    if len(sites) < 2:
        findings.append(
            Finding(
                "single_site",
                "warning",
                f"All {len(frame)} subjects come from one site "
                f"({plain(sites[0])!r}): site effects cannot be measured or "
                "harmonized (ComBat needs two sites or more), and a model "
                "validated on this cohort says nothing about other sites.",
            )
        )
    if classification:
        findings += _class_findings(counts, th, site, target)
    else:
        small = counts["count"][counts["count"] < th["min_site_size"]]
        findings += _small_site_findings(small, th)
    for v in variables:
        for by, code in [
            (site, "covariate_differs_by_site"),
            (target, "covariate_differs_by_label"),
        ]:
            r = records[(v, by)]
            limit = th["covariate_v"] if kinds[v] else th["covariate_effect"]
            if r["p_value"] < th["alpha"] and r["effect_size"] >= limit:
                what = "sites" if by == site else "classes"
                advice = (
                    "pass it to ComBat as a covariate and to site_effect_report "
                    "(covariates=) so that its effect is kept, not removed"
                    if by == site
                    else "a model can use it as a shortcut; report results "
                    "adjusted for or stratified by it"
                )
                findings.append(
                    Finding(
                        code,
                        "note",
                        f"{v} differs between {what} ({r['test']} p = "
                        f"{r['p_value']:.2g}, {r['measure']} = {r['effect_size']:.2f}; "
                        f"flagged at p < {th['alpha']} and >= {limit}): {advice}.",
                    )
                )
    representation = _representation(
        frame, protected, kinds, target, classification, site
    )
    findings += _representation_findings(representation, th, classification)
    findings.sort(key=lambda f: f.severity != "warning")
    return CohortReport(
        site=site,
        target=target,
        covariates=covariates,
        protected=protected,
        classification=classification,
        n_subjects=len(frame),
        findings=findings,
        counts=counts,
        summary=summary,
        associations=associations,
        shortcuts=shortcuts,
        representation=representation,
        thresholds=th,
        _frame=frame,
    )

"""Leakage audit: run a pipeline's cross-validation and look for the leaks.

:func:`audit_leakage` looks where leaks live: in the seams between steps (a
column equal to the target handed on to the model, a step that uses the test
batch's own statistics), in the splits (a subject's rows on both sides) and
before the pipeline (X harmonized or standardized on the whole cohort), and
puts the pipeline's score next to the score of the site alone.
"""

import html
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import clone, is_classifier
from sklearn.metrics import get_scorer
from sklearn.model_selection import KFold, StratifiedKFold, check_cv
from sklearn.pipeline import Pipeline

from ..exceptions import (
    SubjectOverlapWarning,
    SubjectTableError,
    TargetProxyError,
    TargetProxyWarning,
)
from ..model_selection import LeaveOneSiteOut, SiteStratifiedKFold
from ..table import find_target_proxies
from ._cohort_report import THRESHOLDS as COHORT_THRESHOLDS
from ._cohort_report import _shortcuts
from ._leakage_checks import (
    KINDS,
    LEAKAGE_THRESHOLDS,
    overlap_findings,
    proxy_findings,
    shortcut_findings,
    subject_ids,
    transductive_findings,
    whole_cohort_findings,
    within_site_score,
)

__all__ = ["LeakageAudit", "audit_leakage"]

_NOTHING_FOUND = (
    "Nothing found at the documented thresholds: no target proxy reaches the "
    "model, no subject on both sides of a split, no transductive step, no sign "
    "of whole-cohort preparation, the score does not come from the site alone."
)


@dataclass
class LeakageAudit:
    """What :func:`audit_leakage` found; see there for the checks.

    Attributes
    ----------
    findings : list of LeakageFinding
        One record per leak found: ``kind``, ``severity``, ``message`` (naming
        the column, step or subjects) and ``evidence`` (a dict of numbers).
    scores : pandas.Series
        ``pipeline`` (mean cross-validated score), ``site``, ``covariates``,
        ``site + covariates`` (the target predicted from them alone, as
        :func:`cohort_report` computes it) and ``chance``, in ``metric``;
        ``pipeline within sites``: what the pipeline's out-of-fold
        predictions carry within sites (ROC AUC, balanced accuracy or r; see
        (e) of :func:`audit_leakage`). Only ``pipeline`` without sites.
    split_scores : numpy.ndarray
        The pipeline's score on each split (NaN where a step refused a target
        proxy in fit).
    metric : str
        The score's name (``"balanced_accuracy"``, ``"r2"``, or ``scoring``).
    n_splits : int
        Number of splits run.
    skipped : dict
        Checks that could not run, with the reason (e.g. no site column).
    thresholds : dict
        The thresholds the findings used.
    """

    findings: list
    scores: pd.Series
    split_scores: np.ndarray
    metric: str
    n_splits: int
    skipped: dict = field(default_factory=dict)
    thresholds: dict = field(default_factory=dict)

    @property
    def kinds(self):
        """Set of the kinds found (e.g. ``{"target_proxy"}``)."""
        return {f.kind for f in self.findings}

    def __str__(self):
        s = self.scores
        head = f"Leakage audit: {self.n_splits} splits, pipeline {self.metric} "
        head += f"{s['pipeline']:.3f}"
        if "site" in s.index:
            head += (
                f", site alone {s['site']:.3f} (chance {s['chance']:.2f}), "
                f"pipeline within sites {s['pipeline within sites']:.3f}"
            )
        lines = [
            head,
            *(f"- {f}" for f in self.findings),
        ]
        if not self.findings:
            lines.append(f"- {_NOTHING_FOUND}")
        lines += [f"- (not checked: {k}: {why})" for k, why in self.skipped.items()]
        return "\n".join(lines)

    def __repr__(self):
        return (
            f"<LeakageAudit: {self.n_splits} splits, {len(self.findings)} "
            f"findings {sorted(self.kinds)}>"
        )

    def _repr_html_(self):
        items = "".join(
            f"<li><b>{html.escape(f.kind)}</b> ({html.escape(f.severity)}): "
            f"{html.escape(f.message)}</li>"
            for f in self.findings
        ) or f"<li>{html.escape(_NOTHING_FOUND)}</li>"
        skipped = "".join(
            f"<li>not checked: {html.escape(k)}: {html.escape(v)}</li>"
            for k, v in self.skipped.items()
        )
        scores = self.scores.to_frame("score").to_html(float_format="{:.3f}".format)
        return "\n".join(
            [
                f"<h4>Leakage audit: {self.n_splits} splits</h4>",
                f"<ul>{items}{skipped}</ul>",
                f"<h5>Cross-validated {html.escape(self.metric)}</h5>",
                scores,
            ]
        )


def _frame(out, step):
    if isinstance(out, pd.DataFrame):
        return out
    if hasattr(out, "toarray"):
        out = out.toarray()
    out = np.asarray(out)
    try:
        names = list(step.get_feature_names_out())
    except Exception:  # no step, or one without feature names: positions
        names = None
    if names is None or len(names) != out.shape[1]:
        names = [f"x{j}" for j in range(out.shape[1])]
    return pd.DataFrame(out, columns=names)


def _fit_prefix(estimator, X, y, pandas, params):
    est = clone(estimator)
    prefix = est[:-1]
    if pandas:
        prefix.set_output(transform="pandas")
    Z = prefix.fit_transform(X, y, **params)
    return est, prefix, Z


def _out_of_fold(model, Z):
    """(values, positive class): scores of a binary classifier, else labels."""
    classes = getattr(model, "classes_", None)
    if classes is not None and len(classes) == 2:
        for method in ("predict_proba", "decision_function"):
            if hasattr(model, method):
                values = np.asarray(getattr(model, method)(Z))
                return (values[:, 1] if values.ndim == 2 else values), classes[1]
    return np.asarray(model.predict(Z)), None


def _split_params(params, n, train):
    """The fit parameters of the training rows (per-row arrays indexed)."""
    out = {}
    for name, value in (params or {}).items():
        if hasattr(value, "__len__") and not isinstance(value, str) and len(value) == n:
            value = _take(value, train)
        out[name] = value
    return out


def _run_split(estimator, X, y, train, test, scorer, th, params):
    """Fit on ``train``; return (score, predictions, steps, proxies, refusal)."""
    Xtr, ytr = _take(X, train), _take(y, train)
    Xte, yte = _take(X, test), _take(y, test)
    params = _split_params(params, len(y), train)
    try:
        if isinstance(estimator, Pipeline) and len(estimator.steps) > 1:
            final_name = estimator.steps[-1][0]
            last = f"{final_name}__"
            final_params = {
                k[len(last):]: v for k, v in params.items() if k.startswith(last)
            }
            params = {k: v for k, v in params.items() if not k.startswith(last)}
            try:
                est, prefix, Z = _fit_prefix(estimator, Xtr, ytr, True, params)
            except TargetProxyError:
                raise
            except Exception:  # a step without pandas output: arrays then
                est, prefix, Z = _fit_prefix(estimator, Xtr, ytr, False, params)
            final = est.steps[-1][1]
            final.fit(Z, ytr, **final_params)
            Zte = prefix.transform(Xte)
            score, pred = scorer(final, Zte, yte), _out_of_fold(final, Zte)
            steps = [*prefix.steps, (final_name, final)]
            Z = _frame(Z, prefix)
        else:
            est = clone(estimator).fit(Xtr, ytr, **params)
            score, steps = scorer(est, Xte, yte), [("estimator", est)]
            pred = _out_of_fold(est, Xte)
            Z = Xtr if isinstance(Xtr, pd.DataFrame) else _frame(Xtr, None)
    except TargetProxyError as exc:
        return np.nan, None, None, [], (exc.column, exc.bare_message)
    records = find_target_proxies(
        Z.reset_index(drop=True), np.asarray(ytr), near=th["proxy_near"]
    )
    return float(score), pred, steps, records, None


def _take(a, rows):
    return a.iloc[rows] if hasattr(a, "iloc") else np.asarray(a)[rows]


def _default_cv(cv, sites, classification, seed, groups):
    """The splitter and the groups its ``split`` gets."""
    if cv is not None and not isinstance(cv, int):
        return check_cv(cv), groups
    n = 5 if cv is None else int(cv)
    if sites is not None:
        splitter = SiteStratifiedKFold(
            n,
            site=sites[1] or "site",
            stratify_y=classification,
            shuffle=True,
            random_state=seed,
        )
        # the default splitter reads the site; the user's groups are subjects
        return splitter, (None if sites[1] is not None else sites[0])
    split = StratifiedKFold if classification else KFold
    return split(n, shuffle=True, random_state=seed), groups


def _check_inputs(X, y, site):
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} rows and y {len(y)} values.")
    if isinstance(site, str):
        if isinstance(X, pd.DataFrame) and site in X.columns:
            sites = X[site].to_numpy()
            if pd.isna(sites).any():
                row = X.index[int(np.flatnonzero(pd.isna(sites))[0])]
                raise SubjectTableError("site is missing", row=row, column=site)
            return (sites, site)
        return None
    sites = np.asarray(site)
    if sites.shape != (len(X),):
        raise ValueError(
            f"site must be a column name or one label per row ({len(X)}), got "
            f"shape {sites.shape}."
        )
    return (sites, None)


def audit_leakage(
    estimator,
    X,
    y,
    *,
    cv=None,
    groups=None,
    site="site",
    subject=None,
    covariates=None,
    scoring=None,
    params=None,
    thresholds=None,
    random_state=0,
):
    """Cross-validate a pipeline and report the leaks found, with evidence.

    Runs ``estimator``'s cross-validation split by split (each split fits a
    clone on the training rows) and five checks; each finding names the
    column, step or subjects at fault and carries its numbers in
    ``evidence``. The library's
    :class:`~sklearn_medprep.exceptions.TargetProxyWarning` and
    :class:`~sklearn_medprep.exceptions.SubjectOverlapWarning`, raised by the
    steps or the splitter, are not repeated: what they warn about is checked
    and reported as findings. Thresholds (keys of ``thresholds=``,
    defaults in brackets):

    (a) ``target_proxy``: for a :class:`~sklearn.pipeline.Pipeline`, what the
        final estimator receives in fit (the output of ``estimator[:-1]`` on
        the training rows, with pandas output where the steps allow it, else
        ``get_feature_names_out``) is searched with
        :func:`~sklearn_medprep.table.find_target_proxies`: a column equal to
        ``y`` up to relabelling, a change of unit or a monotone map, or
        ``|r| >= proxy_near`` (0.99) with it. A step that refuses a proxy in
        fit (:class:`~sklearn_medprep.exceptions.TargetProxyError`) is
        reported too, naming the column (that split's score is NaN). For
        another estimator, X itself is searched.
    (b) ``subject_overlap``: a subject with rows in train and test of any
        split (flagged from 1). Subjects are ``subject`` (a column name or one
        id per row); else the ``"subject"`` column of X; else ``groups``
        unless ``cv`` is a
        :class:`~sklearn_medprep.model_selection.SiteStratifiedKFold` or
        :class:`~sklearn_medprep.model_selection.LeaveOneSiteOut`, whose
        groups are sites; else the index of X when it repeats. The count per
        split and examples are reported.
    (c) ``transductive``: on the first split's test rows, each fitted step's
        ``transform`` (and the final ``predict``) of the whole test batch is
        compared with the same rows transformed in two halves, in a shuffled
        batch and ``transductive_rows`` (5) rows one by one; a difference
        above ``transductive_tol`` (1e-6) of the column's scale (its largest
        absolute value, at least 1) names the step.
    (d) ``whole_cohort_preparation``: X's numeric feature columns (not the
        site, subject or covariates) standardized to mean 0 and sd 1 over all
        rows within ``standardized_tol`` (1e-6); or per-site means or
        variances more equal across sites than random sampling allows, as
        whole-cohort ComBat leaves them, adjusted for nothing, for
        ``covariates`` and for ``covariates`` + y: the MANOVA of the site
        term (Wilks' lambda, Bartlett's chi-square; the features standardized
        and, past half the residual degrees of freedom, projected on their
        leading within-site principal axes) or Bartlett's statistics of the
        residual variances summed over the features (matched to a scaled
        chi-square with the features' residual correlations, Satterthwaite)
        has a left-tail probability under ``equal_sites_p`` (1e-6).
        Correlated features thus do not count as independent evidence. The
        columns named are those whose own left-tail probability (ANCOVA F
        or Bartlett) is under 0.01.
    (e) ``site_shortcut``: the target predicted from the site alone, and from
        the site and ``covariates``, as :func:`cohort_report` computes it
        (logistic or ridge regression, ``n_splits`` shuffled folds) scores at
        least chance + ``shortcut_margin`` (0.1), the pipeline no more than
        ``pipeline_margin`` (0.05) above it, and the pipeline's out-of-fold
        predictions carry nothing within sites: their ROC AUC within each
        site for a binary classifier with ``predict_proba`` or
        ``decision_function`` (balanced accuracy of the labels otherwise;
        averaged, weighted by the site's rows), or for a regression their
        correlation with y after both are centred per site, is under chance
        + ``within_site_min`` (0.1; r = 0.1 for a regression). A
        cohort whose sites differ in the target (FCON1000's sites in age)
        is not flagged when the pipeline predicts within sites.

    Parameters
    ----------
    estimator : estimator or Pipeline
        The unfitted model, usually a Pipeline ending in a predictor.
    X : pandas.DataFrame or array-like
        The table the pipeline is cross-validated on.
    y : array-like of shape (n_samples,)
        The target.
    cv : int, cross-validation generator or None, default=None
        Splits; None or an int:
        :class:`~sklearn_medprep.model_selection.SiteStratifiedKFold` (5 or
        ``cv`` shuffled folds, stratified by class for a classifier) on the
        sites when they are known, else (stratified) k-fold.
    groups : array-like or None, default=None
        Passed to ``cv.split`` when ``cv`` is a splitter (not to the default
        site splitter); the subjects for (b) unless ``cv`` is a
        :class:`~sklearn_medprep.model_selection.SiteStratifiedKFold` or
        :class:`~sklearn_medprep.model_selection.LeaveOneSiteOut`.
    site : str or array-like, default="site"
        Column of X (or one label per row) of the acquisition site, for (d)
        and (e); those checks are skipped when X has no such column.
    subject : str, array-like or None, default=None
        Subject of each row, for (b); see above.
    covariates : list of str or None, default=None
        Columns of X of covariates (age, sex) for (d) and (e).
    scoring : str or None, default=None
        Scorer name; None: ``"balanced_accuracy"`` for a classifier, ``"r2"``
        otherwise (the metrics of the site shortcut).
    params : dict or None, default=None
        Fit parameters, in the Pipeline's ``step__name`` form (plain names for
        another estimator); a value with one entry per row (e.g.
        ``sample_weight``) is indexed to each split's training rows.
    thresholds : dict or None, default=None
        Overrides of the thresholds above.
    random_state : int, default=0
        Seed of the default folds and of the batches of (c).

    Returns
    -------
    audit : LeakageAudit
        ``findings``, ``scores``, a text summary (``str``) and an HTML repr.

    Raises
    ------
    SubjectTableError
        When a covariate or the ``subject`` column is absent, or a covariate
        or the site has a missing value (the message names the row and
        column). An absent site column only skips (d) and (e).

    See Also
    --------
    cohort_report : The cohort's metadata audited before any model.

    Examples
    --------
    >>> from sklearn.compose import make_column_transformer
    >>> from sklearn.linear_model import RidgeCV
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn_medprep import audit_leakage
    >>> from sklearn_medprep.datasets import make_multisite_features
    >>> df = make_multisite_features(90, 5, n_sites=3, random_state=0)
    >>> X, y = df.drop(columns=["y", "age"]), df["age"]
    >>> X["age_months"] = 12 * y  # the target in another unit
    >>> features = [f"f00{i}" for i in range(5)]
    >>> scale_features = make_column_transformer(
    ...     (StandardScaler(), features), ("drop", ["site", "sex"]),
    ...     remainder="passthrough", verbose_feature_names_out=False)
    >>> pipe = make_pipeline(scale_features, RidgeCV())
    >>> audit = audit_leakage(pipe, X, y, cv=3)
    >>> sorted(audit.kinds)
    ['target_proxy']
    >>> audit.findings[0].evidence["column"]
    'age_months'
    >>> audit_leakage(pipe, X.drop(columns="age_months"), y, cv=3).findings
    []
    """
    th = {**LEAKAGE_THRESHOLDS, **(thresholds or {})}
    unknown = set(th) - set(LEAKAGE_THRESHOLDS)
    if unknown:
        raise ValueError(f"unknown thresholds: {sorted(unknown)}")
    covariates = [covariates] if isinstance(covariates, str) else list(covariates or [])
    if not isinstance(X, pd.DataFrame) and covariates:
        raise TypeError("covariates need a pandas DataFrame X holding those columns.")
    for name in covariates:
        if name not in X.columns:
            raise SubjectTableError("covariate column not found", column=name)
        missing = X[name].isna().to_numpy()
        if missing.any():
            row = X.index[int(np.flatnonzero(missing)[0])]
            raise SubjectTableError("covariate is missing", row=row, column=name)
    y = pd.Series(np.asarray(y), index=X.index if hasattr(X, "index") else None)
    sites = _check_inputs(X, y, site)
    classification = is_classifier(estimator)
    metric = scoring or ("balanced_accuracy" if classification else "r2")
    scorer = get_scorer(metric)
    splitter, split_groups = _default_cv(
        cv, sites, classification, random_state, groups
    )
    skipped = {}
    scores, records, refused, fitted = [], {}, {}, None
    predictions = pd.Series(np.nan, index=range(len(y)), dtype=object)
    positives = set()
    with warnings.catch_warnings():
        # what these warn about is reported as findings, with the evidence
        warnings.simplefilter("ignore", TargetProxyWarning)
        warnings.simplefilter("ignore", SubjectOverlapWarning)
        splits = list(splitter.split(X, y, split_groups))
        runs = [
            _run_split(estimator, X, y, train, test, scorer, th, params)
            for train, test in splits
        ]
    for k, ((_, test), run) in enumerate(zip(splits, runs)):
        score, pred, steps, found, refusal = run
        scores.append(score)
        if pred is not None:
            predictions.iloc[test] = list(pred[0])
            positives.add(pred[1])
        if refusal is not None:
            refused.setdefault(refusal[0], []).append((k, refusal[1]))
        for r in found:
            records.setdefault(r.column, []).append((k, r.kind, r.detail, r.statistic))
        if fitted is None and steps is not None:
            fitted = (steps, test)
    findings = proxy_findings(records, refused, th)

    # groups are subjects unless they went to a splitter whose groups are sites
    site_groups = cv is not None and not isinstance(cv, int)
    site_groups = site_groups and isinstance(
        splitter, (SiteStratifiedKFold, LeaveOneSiteOut)
    )
    ids, source = subject_ids(X, subject, None if site_groups else groups)
    findings += overlap_findings(ids, source, splits, th)

    if fitted is None:
        skipped["transductive"] = "every split refused a target proxy in fit"
    else:
        steps, test = fitted
        findings += transductive_findings(steps, _take(X, test), th, random_state)

    exclude = [c for c in [site if isinstance(site, str) else None, subject
               if isinstance(subject, str) else "subject", *covariates] if c]
    sites_arr = None if sites is None else sites[0]
    if sites is None:
        skipped["site"] = f"X has no site column {site!r}"
    findings += whole_cohort_findings(
        X, y, sites_arr, site, covariates, exclude, th
    )

    pipeline_score = float(np.nanmean(scores)) if np.isfinite(scores).any() else np.nan
    out_scores = {"pipeline": pipeline_score}
    if sites is not None:
        frame = pd.DataFrame({c: X[c].to_numpy() for c in covariates}).assign(
            __site__=sites_arr.astype(str), __target__=y.to_numpy()
        )
        short = _shortcuts(
            frame, "__site__", "__target__", covariates, classification,
            COHORT_THRESHOLDS["max_levels"], len(splits), random_state,
        )
        for name in short.index:
            out_scores[name] = float(short.loc[name, "score"])
        out_scores["chance"] = float(short["chance"].iloc[0])
        positive = positives.pop() if len(positives) == 1 else None
        within = within_site_score(
            y, predictions, sites_arr, classification, positive
        )
        out_scores["pipeline within sites"] = within[0]
        if not np.isfinite(pipeline_score):
            skipped["site_shortcut"] = "the pipeline has no score"
        elif metric in ("balanced_accuracy", "r2"):
            findings += shortcut_findings(short, pipeline_score, within, th)
        else:
            skipped["site_shortcut"] = (
                f"scoring={metric!r} is not the shortcut's metric"
            )
    findings.sort(key=lambda f: KINDS.index(f.kind))
    return LeakageAudit(
        findings=findings,
        scores=pd.Series(out_scores, name=metric),
        split_scores=np.array(scores),
        metric=metric,
        n_splits=len(splits),
        skipped=skipped,
        thresholds=th,
    )


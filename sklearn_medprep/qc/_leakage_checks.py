"""The five checks of :func:`audit_leakage`, one function per kind of leak.

Each check returns a list of :class:`LeakageFinding`; the thresholds are the
keys of :data:`LEAKAGE_THRESHOLDS` (documented in :func:`audit_leakage`).
"""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from ..exceptions import SubjectTableError, plain
from ..table._checks import is_numeric_column, numeric_columns
from ._leakage_stats import (
    design_matrix,
    left_tail_of_sum,
    site_tests,
    wilks_left_tail,
)

__all__ = ["LEAKAGE_THRESHOLDS", "LeakageFinding"]

#: Thresholds of the audit's findings; ``thresholds=`` changes any of them.
LEAKAGE_THRESHOLDS = {
    "proxy_near": 0.99,
    "transductive_tol": 1e-6,
    "transductive_rows": 5,
    "equal_sites_p": 1e-6,
    "standardized_tol": 1e-6,
    "shortcut_margin": 0.1,
    "pipeline_margin": 0.05,
    "within_site_min": 0.1,
    "max_examples": 5,
}

KINDS = (
    "target_proxy",
    "subject_overlap",
    "transductive",
    "whole_cohort_preparation",
    "site_shortcut",
)


@dataclass(frozen=True)
class LeakageFinding:
    """One finding of a :class:`LeakageAudit`.

    Attributes
    ----------
    kind : str
        One of ``"target_proxy"``, ``"subject_overlap"``, ``"transductive"``,
        ``"whole_cohort_preparation"``, ``"site_shortcut"``.
    severity : {"warning", "note"}
        ``"warning"``: the cross-validated score is not to be trusted;
        ``"note"``: a check could not run (the message says why).
    message : str
        The finding in plain language, naming the column, step or subjects,
        with the numbers and the threshold.
    evidence : dict
        The numbers behind the message (per split, per column).
    """

    kind: str
    severity: str
    message: str
    evidence: dict = field(default_factory=dict, compare=False)

    @property
    def code(self):
        """Alias of ``kind`` (the name :class:`CohortReport` findings use)."""
        return self.kind

    def __str__(self):
        return f"[{self.severity}] {self.kind}: {self.message}"


def _names(items, limit):
    items = [plain(i) for i in items]
    shown = ", ".join(repr(i) for i in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


# --- (a) target proxies ----------------------------------------------------
def proxy_findings(records, refused, th):
    """Findings from per-split proxy records and refusals in ``fit``.

    ``records`` maps a column to a list of ``(split, kind, detail, statistic)``;
    ``refused`` maps a column (or None) to a list of ``(split, message)``.
    """
    out = []
    for column, hits in records.items():
        kinds = sorted({h[1] for h in hits})
        splits = sorted({h[0] for h in hits})
        out.append(
            LeakageFinding(
                "target_proxy",
                "warning",
                f"Column {plain(column)!r} reaches the final estimator and is the "
                f"target in disguise (as the estimator receives it, "
                f"{', '.join(kinds)}: {hits[0][2]}) in "
                f"{len(splits)} split(s); flagged when equal to y up to "
                "relabelling, unit or a monotone map, or |r| >= "
                f"{th['proxy_near']}. Drop it from X.",
                {
                    "column": plain(column),
                    "kinds": kinds,
                    "splits": splits,
                    "statistic": [float(h[3]) for h in hits],
                },
            )
        )
    for column, hits in refused.items():
        where = f"column {plain(column)!r}" if column is not None else "a column"
        out.append(
            LeakageFinding(
                "target_proxy",
                "warning",
                f"A step refused {where} as a target proxy in fit "
                f"({len(hits)} split(s); {hits[0][1]}). Drop it from X: the "
                "pipeline cannot be scored with it.",
                {
                    "column": plain(column),
                    "splits": [h[0] for h in hits],
                    "refused_in_fit": True,
                    "error": hits[0][1],
                },
            )
        )
    return out


# --- (b) subject overlap ---------------------------------------------------
def subject_ids(X, subject, groups):
    """Subject of each row and where it came from, or ``(None, None)``."""
    if subject is not None and not isinstance(subject, str):
        ids = np.asarray(subject)
        if ids.shape != (len(X),):
            raise ValueError(
                f"subject must be a column name or one id per row ({len(X)}), "
                f"got shape {ids.shape}."
            )
        return ids, "subject="
    name = "subject" if subject is None else subject
    if isinstance(X, pd.DataFrame) and name in X.columns:
        return X[name].to_numpy(), f"column {name!r}"
    if subject is not None:
        raise SubjectTableError("subject column not found", column=subject)
    if groups is not None:
        return np.asarray(groups), "groups"
    if isinstance(X, pd.DataFrame) and X.index.has_duplicates:
        return X.index.to_numpy(), "the index (it repeats)"
    return None, None


def overlap_findings(ids, source, splits, th):
    """Subjects with rows on both sides of a split."""
    if ids is None:
        return []
    per_split, examples = {}, []
    for k, (train, test) in enumerate(splits):
        both = np.intersect1d(pd.unique(ids[train]), pd.unique(ids[test]))
        if both.size:
            per_split[k] = int(both.size)
            examples += [plain(s) for s in both[: th["max_examples"]]]
    if not per_split:
        return []
    examples = list(dict.fromkeys(examples))[: th["max_examples"]]
    counts = ", ".join(f"split {k}: {n}" for k, n in per_split.items())
    return [
        LeakageFinding(
            "subject_overlap",
            "warning",
            f"Subjects (from {source}) have rows in both train and test "
            f"({counts}; flagged from 1), e.g. {_names(examples, len(examples))}: "
            "the model is tested on subjects it was trained on. Split by "
            "subject (a group-aware splitter with the subject as groups).",
            {"source": source, "per_split": per_split, "examples": examples},
        )
    ]


# --- (c) transductive steps ------------------------------------------------
def _frame(out):
    if isinstance(out, pd.DataFrame):
        return out.reset_index(drop=True)
    if hasattr(out, "toarray"):
        out = out.toarray()
    arr = np.asarray(out)
    return pd.DataFrame(arr.reshape(len(arr), -1))


def _difference(batch, other):
    """Largest difference between two outputs of the same rows, relative."""
    a, b = _frame(batch), _frame(other)
    if a.shape != b.shape:
        return np.inf, None
    worst, where = 0.0, None
    for j, name in enumerate(a.columns):
        x, z = a.iloc[:, j], b.iloc[:, j]
        if is_numeric_column(x) and is_numeric_column(z):
            x, z = x.to_numpy(dtype=float), z.to_numpy(dtype=float)
            scale = max(float(np.nanmax(np.abs(x), initial=0.0)), 1.0)
            same_nan = np.isnan(x) == np.isnan(z)
            diff = np.abs(np.nan_to_num(x - z)) / scale
            d = float(diff.max(initial=0.0)) if same_nan.all() else np.inf
        else:
            same = (x.astype(str).to_numpy() == z.astype(str).to_numpy()).all()
            d = 0.0 if same else np.inf
        if d > worst:
            worst, where = d, name
    return worst, where


def _take(Z, rows):
    return Z.iloc[rows] if hasattr(Z, "iloc") else Z[rows]


def _alternatives(n, n_rows, rng):
    """Other batches of the same rows: halves, a shuffle, single rows."""
    half = n // 2
    out = []
    if half >= 1:
        out.append(("two halves", [np.arange(half), np.arange(half, n)]))
    out.append(("shuffled batch", [rng.permutation(n)]))
    rows = np.sort(rng.choice(n, min(n_rows, n), replace=False))
    out.append((f"{rows.size} rows one by one", [np.array([r]) for r in rows]))
    return out


def _compare(apply, Z, n_rows, rng):
    """Worst (difference, how, column) of ``apply`` on other batches of ``Z``."""
    batch = _frame(apply(Z))
    worst = (0.0, None, None)
    for how, parts in _alternatives(len(Z), n_rows, rng):
        try:
            pieces = [_frame(apply(_take(Z, p))) for p in parts]
        except Exception:  # a step may refuse a one-row batch: not a leak
            continue
        order = np.concatenate(parts)
        other = pd.concat(pieces, ignore_index=True)
        d, col = _difference(batch.iloc[order].reset_index(drop=True), other)
        if d > worst[0]:
            worst = (d, how, col)
    return worst


def transductive_findings(fitted_steps, X_test, th, seed):
    """Steps whose output for a row depends on the other rows of the batch.

    ``fitted_steps`` is a list of ``(name, fitted step)``, the last one the
    final estimator (compared through ``predict``).
    """
    rng = np.random.default_rng(seed)
    out, Z = [], X_test
    for i, (name, step) in enumerate(fitted_steps):
        if step is None or step == "passthrough":
            continue
        last = i == len(fitted_steps) - 1
        apply = step.predict if last else step.transform
        d, how, col = _compare(apply, Z, th["transductive_rows"], rng)
        if d > th["transductive_tol"]:
            what = "predictions" if last else f"output column {plain(col)!r}"
            out.append(
                LeakageFinding(
                    "transductive",
                    "warning",
                    f"Step {name!r} is transductive: its {what} for the same test "
                    f"rows changes with the batch ({how}: largest difference "
                    f"{d:.3g} of the column's scale; flagged above "
                    f"{th['transductive_tol']:g}). A test row's result depends on "
                    "the other test rows: learn such statistics in fit.",
                    {
                        "step": name,
                        "compared_with": how,
                        "difference": float(d),
                        "column": plain(col),
                    },
                )
            )
        if not last:
            Z = step.transform(Z)
    return out


# --- (d) X prepared on the whole cohort -----------------------------------
def what_is_worse(worst, what, p):
    """Whether ``p`` is smaller than the one kept for ``what``."""
    return what not in worst or p < worst[what][1]


def whole_cohort_findings(X, y, sites, site, covariates, exclude, th):
    """Signs that X was harmonized or standardized on all rows before the CV."""
    if not isinstance(X, pd.DataFrame):
        X = pd.DataFrame(np.asarray(X))
    features = [c for c in numeric_columns(X, exclude=exclude) if X[c].notna().all()]
    features = [c for c in features if X[c].nunique() > 2]
    out = []
    if not features:
        return out
    values = X[features].to_numpy(dtype=float)
    mean = values.mean(axis=0)
    sd0, sd1 = values.std(axis=0), values.std(axis=0, ddof=1)
    tol = th["standardized_tol"]
    unit = (np.abs(sd0 - 1) < tol) | (np.abs(sd1 - 1) < tol)
    standardized = [f for f, ok in zip(features, (np.abs(mean) < tol) & unit) if ok]
    if standardized:
        out.append(
            LeakageFinding(
                "whole_cohort_preparation",
                "warning",
                f"{len(standardized)} feature(s) have mean 0 and sd 1 over all "
                f"rows (within {tol:g}), e.g. "
                f"{_names(standardized, th['max_examples'])}: "
                "X was standardized on the whole cohort before the "
                "cross-validation. Scale inside the pipeline.",
                {"check": "standardized", "columns": [plain(c) for c in standardized]},
            )
        )
    if sites is None or np.unique(sites).size < 2:
        return out
    frame = X.assign(__y__=np.asarray(y)) if y is not None else X
    designs = {"nothing": []}
    if covariates:
        designs["the covariates"] = list(covariates)
    if y is not None:
        designs["the covariates and y" if covariates else "y"] = [*covariates, "__y__"]
    k = np.unique(sites).size
    m = len(features)
    worst = {}
    for label, columns in designs.items():
        design = design_matrix(frame, columns)
        F, p_mean, T, p_var, resid = site_tests(values, sites, design)
        total, _, p = wilks_left_tail(values, sites, design)
        if what_is_worse(worst, "means", p):
            worst["means"] = (total, p, label, p_mean)
        ok = np.isfinite(T)
        if ok.any():
            total = float(T[ok].sum())
            p = left_tail_of_sum(total, resid[:, ok], k - 1, 4)
            if what_is_worse(worst, "variances", p):
                worst["variances"] = (total, p, label, p_var)
    tests = {
        "means": "MANOVA of the site term, Wilks' lambda as chi-square",
        "variances": "Bartlett's statistics summed over the features",
    }
    for what, test in tests.items():
        if what not in worst or not worst[what][1] < th["equal_sites_p"]:
            continue
        total, p, label, p_each = worst[what]
        order = np.argsort(p_each)
        cols = [features[j] for j in order if p_each[j] < 0.01]
        out.append(
            LeakageFinding(
                "whole_cohort_preparation",
                "warning",
                f"Per-site {what} of the {m} features are more equal across the "
                f"{k} sites than random sampling allows ({test} {total:.3g}, "
                f"adjusted for {label}: P(so equal) = {p:.2g}; flagged "
                f"under {th['equal_sites_p']:g}), as whole-cohort ComBat leaves "
                f"them; most equal: {_names(cols, th['max_examples']) or 'none alone'}"
                ". X was harmonized before the cross-validation: harmonize "
                "inside it.",
                {
                    "check": f"equal site {what}",
                    "statistic": total,
                    "p_value": p,
                    "adjusted_for": label,
                    "columns": {plain(c): float(p_each[features.index(c)])
                                for c in cols},
                },
            )
        )
    return out


# --- (e) the site shortcut ------------------------------------------------
def within_site_score(y, predictions, sites, classification, positive=None):
    """What the out-of-fold predictions carry within sites: (value, measure).

    For a classifier's scores (``positive`` is the positive class): ROC AUC
    within each site with both classes, weighted by its rows; for its labels:
    balanced accuracy the same way; for a regression: Pearson's r of
    predictions and target after both are centred per site. NaN when
    undefined.
    """
    ok = predictions.notna().to_numpy()
    if not classification:
        measure = "r"
    else:
        measure = "ROC AUC" if positive is not None else "balanced accuracy"
    if ok.sum() < 3:
        return np.nan, measure
    y, pred = np.asarray(y)[ok], predictions.to_numpy()[ok]
    sites = np.asarray(sites)[ok]
    if classification:
        total, weight = 0.0, 0
        for s in pd.unique(sites):
            member = sites == s
            if pd.unique(y[member]).size < 2:
                continue
            if positive is not None:
                value = roc_auc_score(
                    y[member] == positive, pred[member].astype(float)
                )
            else:
                value = balanced_accuracy_score(
                    y[member].astype(str), pred[member].astype(str)
                )
            total += member.sum() * value
            weight += member.sum()
        return (total / weight if weight else np.nan), measure
    y, pred = y.astype(float), pred.astype(float)
    yc = y - pd.Series(y).groupby(sites).transform("mean").to_numpy()
    pc = pred - pd.Series(pred).groupby(sites).transform("mean").to_numpy()
    if yc.std() == 0 or pc.std() == 0:
        return 0.0, measure
    return float(np.corrcoef(yc, pc)[0, 1]), measure


def shortcut_findings(shortcuts, pipeline_score, within, th):
    """The site (and covariates) alone explain the pipeline's score.

    ``within`` is ``(value, measure)`` of :func:`within_site_score`.
    """
    within, within_what = within
    chance_within = {"r": 0.0, "ROC AUC": 0.5}
    out = []
    for name in ("site", "site + covariates"):
        if name not in shortcuts.index:
            continue
        r = shortcuts.loc[name]
        if not np.isfinite(r["score"]):
            continue
        floor = chance_within.get(within_what, r["chance"]) + th["within_site_min"]
        above_chance = r["score"] >= r["chance"] + th["shortcut_margin"]
        close = not pipeline_score > r["score"] + th["pipeline_margin"]
        nothing_within = not within >= floor
        if above_chance and close and nothing_within:
            out.append(
                LeakageFinding(
                    "site_shortcut",
                    "warning",
                    f"The {name} alone reaches {r['metric']} {r['score']:.3f} "
                    f"(chance {r['chance']:.2f}), the pipeline {pipeline_score:.3f}, "
                    f"and within sites the pipeline's predictions reach "
                    f"{within_what} {within:.3f}; flagged when the {name} alone is "
                    f"at least chance + {th['shortcut_margin']}, the pipeline "
                    f"within {th['pipeline_margin']} of it and under {floor:.2f} "
                    "within sites: the score comes from recognising the site, "
                    "not from the images.",
                    {
                        "from": name,
                        "score": float(r["score"]),
                        "chance": float(r["chance"]),
                        "pipeline": float(pipeline_score),
                        "pipeline_within_sites": float(within),
                        "within_sites_measure": within_what,
                    },
                )
            )
            break
    return out

"""Covariate design of ComBat: one module for every design decision.

The library's one rule for "is this column numeric"
(:mod:`sklearn_medprep.table._checks`) applied to ComBat's columns
(:func:`is_numeric_dtypes`), the one site encoder (:func:`fit_sites` in
``fit``, :func:`encode_sites` after it), the levels and one-hot encoding of the
categorical covariates, the interaction terms, and the design columns of
``fit`` and ``transform`` (:func:`encode_covariates`). ComBat-GAM's smooth
terms are fitted in :mod:`._gam`; the protected target is added by
:mod:`._target`.
"""

from typing import NamedTuple

import numpy as np
import pandas as pd

from ..exceptions import SubjectTableError, plain
from ..table._checks import is_numeric_column, is_numeric_dtype

#: Fewest rows of a new site that ``unseen_site="estimate"`` accepts.
MIN_NEW_SITE_SUBJECTS = 5

__all__ = [
    "CovariateDesign",
    "SiteCoding",
    "covariate_levels",
    "design_names",
    "singular_design_message",
    "encode_covariates",
    "encode_sites",
    "first_row",
    "fit_sites",
    "new_site_rows",
    "interaction_names",
    "is_numeric_dtypes",
]


def is_numeric_dtypes(dtypes):
    """The one rule for "is this column numeric", for many dtypes at once.

    :func:`sklearn_medprep.table._checks.is_numeric_dtype` applied to each
    dtype: integer, unsigned and real float dtypes (numpy or pandas nullable)
    are numeric; booleans, strings, objects and categories are not (covariates
    of those dtypes are categorical).
    """
    codes, uniques = pd.factorize(pd.Series(list(dtypes), dtype=object))
    numeric = np.array([is_numeric_dtype(dt) for dt in uniques], dtype=bool)
    return numeric[codes] if len(codes) else np.zeros(0, dtype=bool)


def _is_numeric(series):
    """The one rule (:func:`~sklearn_medprep.table._checks.is_numeric_column`)."""
    return is_numeric_column(
        series, advice="; or declare it categorical=[...] (by name)"
    )


def first_row(index, mask):
    """Label of the first row where ``mask`` is True (for error messages)."""
    return index[int(np.flatnonzero(mask)[0])]


_first_row = first_row


def covariate_levels(cov, index, smooth):
    """Sorted levels of each categorical (non-numeric) covariate column."""
    for name in smooth:
        if name not in cov.columns:
            raise SubjectTableError("smooth term is not a covariate", column=name)
    levels = {}
    for name in cov.columns:
        if _is_numeric(cov[name]):
            continue
        if name in smooth:
            raise SubjectTableError("smooth term must be numeric", column=name)
        # an object column of numbers was refused by the rule above
        missing = pd.isna(cov[name]).to_numpy()
        if missing.any():
            raise SubjectTableError(
                "covariate is missing", row=_first_row(index, missing), column=name
            )
        levels[name] = np.array(
            sorted(pd.unique(cov[name].to_numpy()), key=str), dtype=object
        )
    return levels


def _encode(cov, index, levels, smooth):
    """Linear design columns (one-hot, first level dropped) and smooth columns."""
    linear, spline = [], []
    for name in cov.columns:
        values = cov[name]
        missing = pd.isna(values).to_numpy()
        if missing.any():
            raise SubjectTableError(
                "covariate is missing", row=_first_row(index, missing), column=name
            )
        if name in levels:
            vals = values.to_numpy()
            known = pd.Series(vals).isin(levels[name]).to_numpy()
            if not known.all():
                raise SubjectTableError(
                    f"level {plain(vals[~known][0])!r} of categorical covariate was "
                    "not seen "
                    f"in fit (known levels: {plain(levels[name])})",
                    row=_first_row(index, ~known),
                    column=name,
                )
            for level in levels[name][1:]:
                linear.append((vals == level).astype(np.float64))
        elif name in smooth:
            spline.append(values.to_numpy(dtype=np.float64))
        else:
            linear.append(values.to_numpy(dtype=np.float64))
    n = len(index)
    linear = np.column_stack(linear) if linear else np.empty((n, 0))
    spline = np.column_stack(spline) if spline else np.empty((n, 0))
    return linear, spline


def _pairs(interactions):
    """``[("a", "b"), "c:d"]`` as a list of name pairs."""
    pairs = []
    for term in interactions or []:
        if isinstance(term, str):
            term = term.replace("*", ":").split(":")
        term = tuple(term)
        if len(term) != 2:
            raise ValueError(
                f"interaction {term!r} must name two covariates, e.g. ('age', 'sex') "
                "or 'age:sex'."
            )
        pairs.append(term)
    return pairs


def _columns_of(name, cov, levels):
    """Design columns and their labels of one covariate."""
    values = cov[name].to_numpy()
    if name in levels:
        return (
            [(values == lv).astype(np.float64) for lv in levels[name][1:]],
            [f"{name}={lv}" for lv in levels[name][1:]],
        )
    return [values.astype(np.float64)], [str(name)]


def interaction_names(interactions, levels):
    """Labels of the interaction columns (for messages)."""
    names = []
    for a, b in _pairs(interactions):
        la = [f"{a}={lv}" for lv in levels[a][1:]] if a in levels else [str(a)]
        lb = [f"{b}={lv}" for lv in levels[b][1:]] if b in levels else [str(b)]
        names += [f"{x}:{y}" for x in la for y in lb]
    return names


def _interaction_columns(cov, levels, smooth, interactions):
    columns = []
    for a, b in _pairs(interactions):
        for name in (a, b):
            if name not in cov.columns:
                raise SubjectTableError(
                    "interaction term names a column that is not a covariate",
                    column=name,
                )
            if name in smooth:
                raise SubjectTableError(
                    "interaction term with a smooth covariate is not supported",
                    column=name,
                )
        cols_a, _ = _columns_of(a, cov, levels)
        cols_b, _ = _columns_of(b, cov, levels)
        columns += [x * y for x in cols_a for y in cols_b]
    return columns


class CovariateDesign(NamedTuple):
    """The covariates' design columns (:func:`encode_covariates`).

    ``linear`` and ``spline`` (``(n_samples, n)`` arrays: the linear design
    columns and the raw values of the smooth terms) and the categorical
    ``levels`` used (dict).
    """

    linear: np.ndarray
    spline: np.ndarray
    levels: dict


class SiteCoding(NamedTuple):
    """The training sites of ComBat (:func:`fit_sites`).

    ``labels`` (the sorted training sites), ``codes`` (int64, the position of
    each row's site in ``labels``), ``counts`` (rows per site) and
    ``ref_level`` (code of the reference site, or None).
    """

    labels: np.ndarray
    codes: np.ndarray
    counts: np.ndarray
    ref_level: int = None


def encode_covariates(
    cov, index, smooth_terms, *, levels=None, seen=None, interactions=None
):
    """Design columns of the covariates (no intercept).

    Parameters
    ----------
    cov : pandas.DataFrame
        Covariates of each row.
    index : pandas.Index
        Row labels, for error messages.
    smooth_terms : list of str or None
        Covariates modelled as smooth terms.
    levels : dict or None, default=None
        Levels of the categorical covariates learned in fit
        (``covariate_levels_``); None in fit, where they are learned.
    seen : list of str or None, default=None
        Covariate names seen in fit (``covariates_``); with ``levels``.
    interactions : list or None, default=None
        Pairs of covariates whose products are added (after the covariates'
        own columns).

    Returns
    -------
    CovariateDesign
        ``(linear, spline, levels)``: the linear and smooth design columns and
        the levels used.
    """
    smooth = list(smooth_terms or [])
    if levels is None:
        levels = covariate_levels(cov, index, smooth)
    elif list(cov.columns) != seen:
        raise ValueError(
            f"covariates {list(cov.columns)} differ from those seen in fit {seen}."
        )
    linear, spline = _encode(cov, index, levels, smooth)
    if interactions:
        extra = _interaction_columns(cov, levels, smooth, interactions)
        linear = np.column_stack([linear, *extra])
    return CovariateDesign(linear, spline, levels)


def design_names(
    site, labels, covariates, levels, smooth_terms, interactions, target_term, n_cov
):
    """Names of ComBat's design columns, for the error on a singular design.

    Site indicators (``site=label``), covariates (``name=level`` for the
    levels of a categorical one after the first), interactions, the protected
    target (``y=class`` or ``y``), then the smooth bases.
    """
    names = [f"{site}={plain(label)}" for label in labels]
    for name in covariates:
        if name in levels:
            names += [f"{name}={plain(lv)}" for lv in levels[name][1:]]
        elif name not in (smooth_terms or []):
            names.append(str(name))
    names += interaction_names(interactions, levels)
    if target_term is not None and target_term.kind == "classes":
        names += [f"y={plain(lv)}" for lv in target_term.levels[1:]]
    elif target_term is not None and target_term.kind == "linear":
        names.append("y")
    names += [f"smooth basis {k}" for k in range(len(labels) + n_cov - len(names))]
    return names


def singular_design_message(design, names=None):
    """Name the design columns that the earlier ones already span."""
    names = list(names) if names is not None else [
        f"column {j}" for j in range(design.shape[1])
    ]
    kept, redundant = [], []
    for j in range(design.shape[1]):
        trial = design[:, kept + [j]]
        if np.linalg.matrix_rank(trial) < len(kept) + 1:
            redundant.append(names[j])
        else:
            kept.append(j)
    which = ", ".join(repr(str(r)) for r in redundant) or "?"
    return (
        "The ComBat design (site indicators, covariates and protected target) "
        f"is singular: design column(s) {which} are constant or collinear with "
        "the site indicators and the columns before them (a covariate that "
        "identifies the site, or two covariates equal up to a linear change). "
        "Drop or merge that covariate; for the protected target y, which then "
        "cannot be told apart from the site, set protect_target='none'."
    )


def encode_sites(labels, values):
    """Position of each row's site among the fitted ``labels``.

    Returns
    -------
    codes : ndarray of int64
        Position of the row's site in ``labels`` (0 where not ``seen``).
    seen : ndarray of bool
        Rows whose site is among ``labels``.
    """
    if len(values) > 256:
        codes = pd.Index(labels).get_indexer(pd.Index(values)).astype(np.int64)
        seen = codes >= 0
    else:
        lookup = {label: k for k, label in enumerate(labels)}
        found = [lookup.get(v) for v in values]
        seen = np.fromiter((k is not None for k in found), dtype=bool, count=len(found))
        codes = np.fromiter(
            (k or 0 for k in found), dtype=np.int64, count=len(found)
        )
    codes[~seen] = 0
    return codes, seen


def fit_sites(values, reference_site, column):
    """Encode the training rows' sites, with ComBat's checks on them.

    Parameters
    ----------
    values : ndarray of shape (n_samples,)
        Site of each training row.
    reference_site : object or None
        The reference site, which must be among the training sites.
    column : str or None
        Site column, for error messages.

    Returns
    -------
    SiteCoding
        ``labels`` (the sorted training sites), ``codes`` (int64: each row's
        site as its position in ``labels``), ``counts`` (rows per site) and
        ``ref_level`` (code of ``reference_site``, or None).
    """
    labels, codes, counts = np.unique(values, return_inverse=True, return_counts=True)
    codes = np.asarray(codes, dtype=np.int64).ravel()
    if labels.size < 2:
        raise SubjectTableError(
            f"ComBat needs at least 2 sites, all rows are from {plain(labels[0])!r}",
            column=column,
        )
    small = labels[counts < 2]
    if small.size:
        raise SubjectTableError(
            f"site {plain(small[0])!r} has {plain(counts[counts < 2][0])} "
            "subject(s) in fit; ComBat needs at least 2 per site (use "
            "SiteStratifiedKFold to keep every site in every training fold)",
            column=column,
        )
    ref_level = None
    if reference_site is not None:
        hits = np.flatnonzero(labels == reference_site)
        if hits.size == 0:
            raise ValueError(
                f"reference_site {reference_site!r} is not among the training "
                f"sites {plain(labels)}."
            )
        ref_level = int(hits[0])
    return SiteCoding(labels, codes, counts, ref_level)


def new_site_rows(site_values, label, index, column):
    """Positions of the rows of the new site ``label``, at least enough of them.

    Parameters
    ----------
    site_values : ndarray of shape (n_samples,)
        Site of each row of the batch.
    label : object
        A site not seen in ``fit``.
    index : pandas.Index
        Row labels, for error messages.
    column : str or None
        Site column, for error messages.

    Returns
    -------
    ndarray of int
    """
    rows = np.flatnonzero(site_values == label)
    if rows.size < MIN_NEW_SITE_SUBJECTS:
        raise SubjectTableError(
            f"site {plain(label)!r} was not seen in fit and has only {rows.size} "
            f"row(s) in this batch; unseen_site='estimate' needs at least "
            f"{MIN_NEW_SITE_SUBJECTS}",
            row=index[rows[0]],
            column=column,
        )
    return rows

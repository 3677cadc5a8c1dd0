"""Reading and checking the input of :class:`~sklearn_medprep.ComBatHarmonizer`.

The subject table (or array) is split into the feature block, the sites, the
covariates and the pass-through columns; the covariates become design
columns; the features are read block by block as float64. The estimator's
parameters are passed explicitly, so that these functions never change it
(except for the ``n_features_in_``/``feature_names_in_`` that
:func:`~sklearn.utils.validation.validate_data` records).
"""

import warnings

import numpy as np
import pandas as pd
from sklearn.utils import check_array
from sklearn.utils.validation import validate_data

from . import _combat_gam as design
from ._table import align_rows
from .exceptions import MedprepWarning, SubjectTableError

__all__ = [
    "check_feature_columns",
    "encode_covariates",
    "feature_getter",
    "read_table",
    "rows_getter",
]


def _rows_of(X):
    return X.index if isinstance(X, pd.DataFrame) else None


def _read_sites(X, sites, site, n, index, from_table):
    """Site of each row, from ``sites=`` or the site column of ``X``."""
    if sites is not None:
        sites = align_rows(sites, _rows_of(X), what="sites=", reference="X")
        site_values = check_array(
            sites,
            input_name="sites",
            ensure_2d=False,
            dtype=None,
            ensure_all_finite=False,
        )
        if site_values.ndim != 1 or site_values.shape[0] != n:
            raise ValueError(
                f"sites must have one value per row of X ({n}), got shape "
                f"{site_values.shape}."
            )
    elif isinstance(X, pd.DataFrame) and site in X.columns:
        site_values = X[site].to_numpy()
    elif isinstance(X, pd.DataFrame):
        raise SubjectTableError(
            f"ComBatHarmonizer needs the site of each row: X has no column "
            f"{site!r} and no sites= were passed.",
            column=site,
        )
    else:
        raise ValueError(
            "ComBatHarmonizer needs the site of each row: X is an array without "
            "named columns; pass a DataFrame with a site column or route sites= "
            "(metadata routing)."
        )
    if isinstance(X, pd.DataFrame) and site in X.columns:
        from_table.append(site)
    missing = pd.isna(site_values)
    if missing.any():
        raise SubjectTableError(
            "site is missing", row=design._first_row(index, missing), column=site
        )
    return site_values


def _read_covariates(X, covariates, names, n, index, from_table):
    """Covariates of each row, from ``covariates=`` or the columns ``names``."""
    if covariates is not None:
        covariates = align_rows(
            covariates, _rows_of(X), what="covariates=", reference="X"
        )
        if isinstance(covariates, pd.DataFrame):
            cov = covariates.set_axis(index, axis=0)
        elif isinstance(covariates, pd.Series):
            cov = covariates.to_frame().set_axis(index, axis=0)
        else:
            arr = np.asarray(covariates)
            arr = arr.reshape(n, -1) if arr.ndim < 2 else arr
            cov = pd.DataFrame(
                arr,
                index=index,
                columns=[f"covariate{j}" for j in range(arr.shape[1])],
            )
        if cov.shape[0] != n:
            raise ValueError("covariates must have one row per row of X.")
        return cov
    names = list(names or [])
    for name in names:
        if not isinstance(X, pd.DataFrame) or name not in X.columns:
            raise SubjectTableError("covariate column not found in X", column=name)
    from_table.extend(names)
    return X[names] if names else pd.DataFrame(index=index)


def _select_features(table, features, features_seen, from_table, *, reset):
    """Names of the columns to harmonize."""
    if features is not None:
        feats = list(features)
        for name in feats:
            if name not in table.columns:
                raise SubjectTableError("feature column not found in X", column=name)
            if not design._is_numeric(table[name]):
                raise SubjectTableError(
                    f"feature column has non-numeric dtype {table[name].dtype}",
                    column=name,
                )
    elif reset:
        feats = [
            c
            for c, dt in zip(table.columns, table.dtypes)
            if c not in from_table and dt.kind in "iuf"
        ]
    else:
        feats = list(features_seen)
        for name in feats:
            if name not in table.columns:
                raise SubjectTableError("feature column not found in X", column=name)
    if not feats:
        raise ValueError(
            "ComBatHarmonizer found no numeric feature column to harmonize."
        )
    return feats


def read_table(
    estimator,
    X,
    sites,
    covariates,
    *,
    site,
    covariate_columns,
    features,
    features_seen,
    reset,
):
    """Split ``X`` into features, sites, covariates and pass-through columns.

    Parameters
    ----------
    estimator : ComBatHarmonizer
        Passed to :func:`~sklearn.utils.validation.validate_data`, which
        records (``reset=True``) or checks the input columns.
    X : pandas.DataFrame or array-like
        The subject table or a numeric array.
    sites, covariates : array-like, DataFrame or None
        Routed metadata; override the ``site`` and ``covariate_columns``.
    site : str or int
        Site column (the ``site`` parameter).
    covariate_columns : list of str or None
        Covariate columns (the ``covariates`` parameter).
    features : list of str or None
        Feature columns (the ``features`` parameter).
    features_seen : array-like of str or None
        Features learned in fit (``features_``); used when ``reset=False``.
    reset : bool
        True in fit, False in transform.

    Returns
    -------
    tuple
        ``(table, feats, site_values, cov, from_table)``: the table as a
        DataFrame, the feature names, the site of each row, the covariates and
        the names of the site/covariate columns read from ``X``.
    """
    if isinstance(X, pd.DataFrame):
        validate_data(estimator, X, skip_check_array=True, reset=reset)
        table = X
    else:
        arr = validate_data(
            estimator,
            X,
            reset=reset,
            dtype=np.float64,
            ensure_all_finite="allow-nan",
        )
        table = pd.DataFrame(arr, columns=[f"x{j}" for j in range(arr.shape[1])])
    index = table.index
    n = table.shape[0]
    from_table = []
    site_values = _read_sites(X, sites, site, n, index, from_table)
    cov = _read_covariates(X, covariates, covariate_columns, n, index, from_table)
    feats = _select_features(table, features, features_seen, from_table, reset=reset)
    return table, feats, site_values, cov, from_table


def encode_covariates(cov, index, smooth_terms, *, levels=None, seen=None):
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

    Returns
    -------
    tuple
        ``(linear, spline, levels)``: the linear and smooth design columns and
        the levels used.
    """
    smooth = list(smooth_terms or [])
    if levels is None:
        levels = design.covariate_levels(cov, index, smooth)
    elif list(cov.columns) != seen:
        raise ValueError(
            f"covariates {list(cov.columns)} differ from those seen in fit {seen}."
        )
    linear, spline = design.encode_covariates(cov, index, levels, smooth)
    return linear, spline, levels


def feature_getter(table, feats):
    """Return ``get(a, b)``: features ``a`` to ``b`` of every row as float64."""
    positions = table.columns.get_indexer(feats)
    if table.shape[1] == len(feats) and (table.dtypes == np.float64).all():
        arr = table.to_numpy()
        return lambda a, b: arr[:, a:b]
    if positions.size > 1 and (np.diff(positions) == 1).all():
        # a run of columns: slices of pandas blocks are views, not copies
        first = int(positions[0])
        return lambda a, b: table.iloc[:, first + a : first + b].to_numpy(
            dtype=np.float64
        )
    return lambda a, b: table.iloc[:, positions[a:b]].to_numpy(dtype=np.float64)


def rows_getter(get, rows):
    """Restrict a getter of :func:`feature_getter` to ``rows``."""
    return lambda a, b: get(a, b)[rows]


def check_feature_columns(table, feats, y, from_table, *, features):
    """Refuse the target among the features; warn on binary auto-features.

    Only when site or covariates were read from the table (``from_table``);
    the warning is given only when ``features`` (the parameter) is None.
    """
    if not from_table:
        return
    block = table[list(feats)]
    if y is not None and np.ndim(y) == 1 and len(y) == len(block):
        target = np.asarray(y, dtype=object)
        for name in block.columns:
            if np.array_equal(block[name].to_numpy(dtype=object), target):
                raise SubjectTableError(
                    "this feature column equals the target y: it would be "
                    "harmonized and handed on to the model as a feature; drop "
                    "it from X (or set features=)",
                    column=name,
                )
    if features is None:
        binary = [c for c in block.columns if block[c].nunique(dropna=True) <= 2]
        if binary:
            warnings.warn(
                f"ComBatHarmonizer harmonizes every numeric column by default, "
                f"including {binary}, which take at most two values (a label "
                "or a binary covariate?): list them in covariates, drop them, "
                "or set features=",
                MedprepWarning,
                # check_feature_columns < fit < _fit_context wrapper < caller
                stacklevel=4,
            )

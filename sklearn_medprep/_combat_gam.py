"""Covariate design of ComBat: categorical encoding and ComBat-GAM smooth terms.

ComBat-GAM (Pomponio et al. 2020) models smooth covariate effects with statsmodels.

The regression step of ComBat is replaced, feature by feature, by a penalized
B-spline GAM (:class:`statsmodels.gam.api.GLMGam`) whose penalty weight is chosen
by 5-fold cross-validation, exactly as neuroHarmonize does; the rest of ComBat is
unchanged. Only the knots are kept (not statsmodels' smoother, which stores the
training data), so the fitted model does not grow with the number of subjects.
"""

import numbers

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state

from .exceptions import SubjectTableError, plain

__all__ = [
    "fit_gam_coef",
    "spline_basis",
    "covariate_levels",
    "encode_covariates",
]

_DF = 10
_DEGREE = 3


def spline_basis(x, knots):
    """B-spline basis of the smooth covariates ``x`` (n x k) on fitted knots."""
    from statsmodels.gam.smooth_basis import _eval_bspline_basis

    x = np.asarray(x, dtype=np.float64)
    blocks = [
        _eval_bspline_basis(
            x[:, i], knots[i], _DEGREE, deriv=0, include_intercept=False
        )
        for i in range(x.shape[1])
    ]
    return np.hstack(blocks)


def _rng(random_state):
    if random_state is None:
        return None
    if isinstance(random_state, (int, np.integer)):
        return np.random.default_rng(random_state)
    return check_random_state(random_state)


def fit_gam_coef(
    get,
    n_features,
    site_codes,
    n_sites,
    linear,
    spline,
    *,
    ref_level=None,
    bounds=None,
    random_state=None,
):
    """GAM coefficients of every feature.

    Parameters
    ----------
    get : callable
        Column-block getter of the data.
    n_features : int
        Number of features.
    site_codes : ndarray of int
        Site code per row.
    n_sites : int
        Number of sites.
    linear : ndarray of shape (n_samples, n_linear)
        Covariates entering linearly.
    spline : ndarray of shape (n_samples, n_smooth)
        Smooth covariates.
    ref_level : int or None
        Reference site code (its indicator column is all ones).
    bounds : tuple or None
        ``(lower, upper)`` boundary knots (single smooth term only).
    random_state : int, RandomState, Generator or None
        Seeds the k-fold choice of the penalty weight.

    Returns
    -------
    coef : ndarray of shape (n_sites + n_linear + n_basis, n_features)
    knots : list of ndarray
    """
    from statsmodels.gam.api import BSplines, GLMGam

    k = spline.shape[1]
    if k == 1:
        lower, upper = bounds if bounds is not None else (None, None)
        smoother = BSplines(
            spline,
            df=_DF,
            degree=_DEGREE,
            knot_kwds=[{"lower_bound": lower, "upper_bound": upper}],
        )
    else:
        if bounds is not None and any(b is not None for b in bounds):
            raise ValueError("smooth_term_bounds supports a single smooth term only.")
        smoother = BSplines(spline, df=[_DF] * k, degree=[_DEGREE] * k)
    knots = [np.array(s.knots, dtype=np.float64) for s in smoother.smoothers]

    site_design = np.zeros((site_codes.shape[0], n_sites))
    site_design[np.arange(site_codes.shape[0]), site_codes] = 1.0
    if ref_level is not None:
        site_design[:, ref_level] = 1.0
    exog = np.hstack([site_design, linear])
    rng = _rng(random_state)
    coef = np.empty((exog.shape[1] + smoother.dim_basis, n_features))
    alpha = np.ones(k)
    for j in range(n_features):
        y = get(j, j + 1)[:, 0]
        rows = np.isfinite(y)
        if rows.all():
            gam = GLMGam(y, exog=exog, smoother=smoother, alpha=alpha)
        else:
            sub = BSplines(
                spline[rows],
                df=[_DF] * k,
                degree=[_DEGREE] * k,
                knot_kwds=[{"all_knots": kn} for kn in knots],
            )
            gam = GLMGam(y[rows], exog=exog[rows], smoother=sub, alpha=alpha)
        gam.alpha = gam.select_penweight_kfold(rng=rng)[0]
        coef[:, j] = gam.fit().params
    return coef, knots


def is_numeric_dtypes(dtypes):
    """The one rule for "is this column numeric" (features and covariates).

    Integer, unsigned and float dtypes (numpy or pandas nullable) are numeric;
    booleans, strings, objects and categories are not (covariates of those
    dtypes are categorical).
    """
    return np.fromiter(
        (getattr(dt, "kind", "O") in "iuf" for dt in dtypes),
        dtype=bool,
        count=len(dtypes),
    )


def _is_numeric(series):
    return bool(is_numeric_dtypes([series.dtype])[0])


def _first_row(index, mask):
    return index[int(np.flatnonzero(mask)[0])]


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
        values = cov[name].to_numpy()
        if values.dtype == object and all(
            isinstance(v, numbers.Number) and not isinstance(v, (bool, np.bool_))
            for v in values
        ):
            raise SubjectTableError(
                "covariate holds numbers in a column of object dtype (mixed "
                "types): it is ambiguous whether it is numeric or categorical. "
                "Give it a numeric dtype (df[col].astype(float)) or a string or "
                "category dtype (df[col].astype('category'))",
                column=name,
            )
        missing = pd.isna(cov[name]).to_numpy()
        if missing.any():
            raise SubjectTableError(
                "covariate is missing", row=_first_row(index, missing), column=name
            )
        levels[name] = np.array(
            sorted(pd.unique(cov[name].to_numpy()), key=str), dtype=object
        )
    return levels


def encode_covariates(cov, index, levels, smooth):
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

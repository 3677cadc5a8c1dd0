"""ComBat-GAM smooth terms (the rest of the design is in :mod:`._design`).

ComBat-GAM (Pomponio et al. 2020) models smooth covariate effects with statsmodels.

The regression step of ComBat is replaced, feature by feature, by a penalized
B-spline GAM (:class:`statsmodels.gam.api.GLMGam`) whose penalty weight is chosen
by 5-fold cross-validation, exactly as neuroHarmonize does; the rest of ComBat is
unchanged. Only the knots are kept (not statsmodels' smoother, which stores the
training data), so the fitted model does not grow with the number of subjects.
"""

import numpy as np
from sklearn.utils import check_random_state

__all__ = [
    "fit_gam_coef",
    "spline_basis",
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
    if isinstance(random_state, np.random.Generator):  # voxel ComBat's chunks
        return random_state
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

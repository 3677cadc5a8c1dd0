"""A new site's mean split between its site effect and its target shift.

``unseen_site="estimate_prior"``. Standardized with the fitted model (the
protected target at its training centre), the mean of a new site's rows over
its ``n`` rows is ``m = gamma + s C + noise``: ``gamma`` the site's location,
``s`` the mean over its rows of a centred cubic-spline basis of its (unknown)
target and ``C`` the target's effect on the standardized features in that
basis. Without the site's labels the two are told apart only by what the
training sites say of each:

- site locations: ``gamma ~ N(0, G' G / n_sites)``, ``G`` the training sites'
  location estimates (``gamma_hat``, ``n_sites x n_features``): the directions
  in which sites are seen to differ;
- target shifts: ``s ~ N(0, S' S / n_sites)``, ``S`` the training sites' mean
  spline vectors: how far a site's target distribution is seen to move;
- ``noise ~ N(0, diag(v) / n)``, ``v`` the new site's per-feature variance.

The posterior mean of ``s`` (generalized least squares with that prior) is
``s_hat = (C W C' + P)^-1 C W m``, ``W`` the inverse covariance of ``gamma +
noise`` (Woodbury: ``n_sites x n_sites`` solves, never ``n_features``
squared), ``P`` the pseudo-inverse of the target shifts' covariance; the
location is ``m - s_hat C`` and the scale the variance of the rows outside the
span of ``C`` (:func:`~._sites.outside_target_moments`), both then shrunk by
empirical Bayes as for ``"estimate"``. Every quantity of the prior is learned
in ``fit`` from the training rows; the new site's labels are never read.
"""

from dataclasses import dataclass

import numpy as np
from sklearn.preprocessing import SplineTransformer

from ._core import standardize

__all__ = ["NewSitePrior", "fit_new_site_prior", "prior_location"]

#: Interior knots of the cubic spline of a numeric protected target.
PRIOR_SPLINE_KNOTS = 5


@dataclass(frozen=True, eq=False)
class NewSitePrior:
    """What ``fit`` learns for ``unseen_site="estimate_prior"``.

    Attributes
    ----------
    effect : ndarray of shape (n_basis, n_features)
        ``C``: the target's effect on the standardized features, one row per
        basis column (zero where a feature is not harmonized).
    shift_precision : ndarray of shape (n_basis, n_basis)
        ``P``: pseudo-inverse of the covariance of the training sites' mean
        basis vectors.
    site_locations : ndarray of shape (n_sites, n_features)
        ``G``: the training sites' location estimates (zero where a feature is
        not harmonized).
    """

    effect: np.ndarray
    shift_precision: np.ndarray
    site_locations: np.ndarray


def _target_basis_rows(design_cov, target_mask, kind):
    """Centred basis of the training rows' target: a spline of a numeric one."""
    t = design_cov[:, target_mask]
    if kind == "linear":
        t = SplineTransformer(
            n_knots=PRIOR_SPLINE_KNOTS, degree=3, include_bias=False
        ).fit_transform(t[:, :1])
    return t - t.mean(axis=0)


def fit_new_site_prior(get, n_features, design_cov, codes, n_sites, model,
                       target_mask, kind):
    """Learn :class:`NewSitePrior` from the training rows.

    Parameters
    ----------
    get : callable
        ``get(start, stop)`` -> the training rows' feature columns.
    n_features : int
    design_cov : ndarray of shape (n_samples, n_design)
        The training rows' covariate design, target at each row's own value.
    codes : ndarray of int of shape (n_samples,)
        Training site of each row.
    n_sites : int
    model : ComBatModel
        The fitted model.
    target_mask : ndarray of bool of shape (n_design,)
        The target's design columns.
    kind : str
        The target term's kind (``"linear"`` gets a spline, ``"classes"``
        and ``"smooth"`` keep their design columns).

    Returns
    -------
    NewSitePrior
    """
    ok = np.asarray(model["ok"], dtype=bool)
    mask = np.asarray(target_mask, dtype=bool)
    centred = design_cov.copy()
    centred[:, mask] = design_cov[:, mask].mean(axis=0)
    z = standardize(get(0, n_features), centred, model["coef_cov"],
                    model["grand_mean"], model["var_pooled"])
    locations = np.where(ok, np.nan_to_num(np.asarray(model["gamma_hat"])), 0.0)
    residual = np.nan_to_num(z - locations[codes])  # NaN cells on the mean
    basis = _target_basis_rows(design_cov, mask, kind)
    effect = np.linalg.lstsq(basis, residual - residual.mean(axis=0),
                             rcond=None)[0]
    site_means = np.stack([basis[codes == j].mean(axis=0)
                           for j in range(n_sites)])
    precision = np.linalg.pinv(site_means.T @ site_means / n_sites)
    return NewSitePrior(np.where(ok, effect, 0.0), precision, locations)


def prior_location(mean, var, counts, prior):
    """The new site's location: its mean less the posterior target shift.

    ``mean``, ``var``, ``counts`` (``(n_features,)``): the site's standardized
    per-feature mean, ddof=1 variance and rows. Features with a non-finite
    mean or variance, or outside the prior (zero effect and locations), are
    left out of the split and keep their mean.
    """
    effect, locations = prior.effect, prior.site_locations
    use = (np.isfinite(mean) & np.isfinite(var) & (counts > 0)
           & ((effect != 0).any(axis=0) | (locations != 0).any(axis=0)))
    c, g, m = effect[:, use], locations[:, use], mean[use]
    noise = np.maximum(var[use], 1e-12) / counts[use]  # diagonal of the noise
    n_sites = g.shape[0]
    # W = (D + G'G / n_sites)^-1 by Woodbury: W x = D^-1 x - D^-1 G' K^-1 G D^-1 x
    inner = n_sites * np.eye(n_sites) + (g / noise) @ g.T

    def w(a):
        a = a / noise
        return a - (np.linalg.solve(inner, g @ a.T).T @ g) / noise

    wc = w(c)
    shift = np.linalg.solve(wc @ c.T + prior.shift_precision, wc @ m)
    return mean - shift @ effect
